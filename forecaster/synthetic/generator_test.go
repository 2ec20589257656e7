package synthetic

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/topology"
)

// t0 is a fixed, arbitrary instant (not aligned to anything in particular).
var t0 = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

func newGen(t testing.TB, cfg Config) *Generator {
	t.Helper()
	g, err := New(cfg, topology.OnlineBoutique())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return g
}

func series(t testing.TB, g *Generator, start, end time.Time, step time.Duration) []State {
	t.Helper()
	s, err := g.Series(context.Background(), start, end, step)
	if err != nil {
		t.Fatalf("Series(%v, %v, %v): %v", start, end, step, err)
	}
	return s
}

// quiet is the default world without noise or bursts: values follow the
// formulas exactly.
func quiet() Config {
	c := DefaultConfig()
	c.NoiseFraction = 0
	c.Bursts.PerHour = 0
	return c
}

func equalStates(t *testing.T, what string, a, b []State) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d states vs %d", what, len(a), len(b))
	}
	for i := range a {
		if !a[i].Time.Equal(b[i].Time) {
			t.Fatalf("%s: state %d at %v vs %v", what, i, a[i].Time, b[i].Time)
		}
		for j := range a[i].Services {
			if a[i].Services[j] != b[i].Services[j] {
				t.Fatalf("%s: at %v: %+v vs %+v", what, a[i].Time, a[i].Services[j], b[i].Services[j])
			}
		}
	}
}

func TestDeterminism(t *testing.T) {
	tests := []struct {
		name  string
		cfg   func() Config
		start time.Time
		span  time.Duration
		step  time.Duration
		split int // index of the first state of the second piece
	}{
		{"default 1s", DefaultConfig, t0, 20 * time.Minute, time.Second, 377},
		{"default 30s across a day", DefaultConfig, t0, 26 * time.Hour, 30 * time.Second, 1111},
		{"sub-resolution step", DefaultConfig, t0, 2 * time.Minute, 250 * time.Millisecond, 101},
		{"before the Unix epoch", DefaultConfig, time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), 2 * time.Hour, 15 * time.Second, 240},
		{"long lag and window", func() Config {
			c := DefaultConfig()
			c.Replicas.Lag = 2 * time.Minute
			c.Replicas.ScaleDownWindow = 10 * time.Minute
			return c
		}, t0, 3 * time.Hour, 10 * time.Second, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			end := tt.start.Add(tt.span)
			whole := series(t, newGen(t, tt.cfg()), tt.start, end, tt.step)
			again := series(t, newGen(t, tt.cfg()), tt.start, end, tt.step)
			equalStates(t, "same config twice", whole, again)

			g := newGen(t, tt.cfg())
			mid := tt.start.Add(time.Duration(tt.split) * tt.step)
			first := series(t, g, tt.start, mid.Add(-tt.step), tt.step)
			second := series(t, g, mid, end, tt.step)
			equalStates(t, "pieces vs whole", append(first, second...), whole)

			for _, i := range []int{0, tt.split, len(whole) - 1} {
				at := g.At(whole[i].Time)
				equalStates(t, "At vs Series", []State{at}, whole[i:i+1])
			}
		})
	}
}

func TestValuesDependOnlyOnTheTick(t *testing.T) {
	g := newGen(t, DefaultConfig())
	tick := t0.Truncate(time.Second)
	base := g.At(tick)
	for _, offset := range []time.Duration{time.Nanosecond, 300 * time.Millisecond, 999 * time.Millisecond} {
		got := g.At(tick.Add(offset))
		got.Time = base.Time
		equalStates(t, "within one tick", []State{got}, []State{base})
	}
	next := g.At(tick.Add(time.Second))
	if next.Services[0].Requests == base.Services[0].Requests {
		t.Errorf("the next tick has the same noisy request rate %v as this one", base.Services[0].Requests)
	}
}

func TestSeedChangesNoise(t *testing.T) {
	a := DefaultConfig()
	b := DefaultConfig()
	b.Seed = a.Seed + 1
	sa := series(t, newGen(t, a), t0, t0.Add(time.Hour), 10*time.Second)
	sb := series(t, newGen(t, b), t0, t0.Add(time.Hour), 10*time.Second)
	for _, metric := range []struct {
		name string
		get  func(ServiceState) float64
	}{
		{"requests", func(s ServiceState) float64 { return s.Requests }},
		{"cpu", func(s ServiceState) float64 { return s.CPUCores }},
		{"latency", func(s ServiceState) float64 { return s.LatencySeconds }},
	} {
		same, total := 0, 0
		for i := range sa {
			for j := range sa[i].Services {
				total++
				if metric.get(sa[i].Services[j]) == metric.get(sb[i].Services[j]) {
					same++
				}
			}
		}
		if same > total/100 {
			t.Errorf("%s: %d of %d values identical across seeds", metric.name, same, total)
		}
	}
}

func TestPropagation(t *testing.T) {
	graph := topology.OnlineBoutique()
	tests := []struct {
		name string
		cfg  func() Config
	}{
		{"no bursts", quiet},
		{"with bursts", func() Config { c := quiet(); c.Bursts.PerHour = 6; return c }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGen(t, tt.cfg())
			for _, st := range series(t, g, t0, t0.Add(6*time.Hour), 7*time.Second) {
				want := make(map[string]float64)
				for _, e := range graph.Edges {
					caller, _ := st.Service(e.Caller)
					want[e.Callee] += caller.Requests * e.FanOut
				}
				for _, root := range graph.Roots() {
					s, _ := st.Service(root)
					want[root] = s.Requests
					if tt.name == "no bursts" {
						d := g.cfg.Diurnal
						phase := 2 * math.Pi * float64(st.Time.Sub(time.Unix(0, 0))-d.PeakAt) / float64(d.Period)
						want[root] = d.Base + d.Amplitude*math.Cos(phase)
					}
				}
				for _, s := range st.Services {
					if !approxEqual(s.Requests, want[s.Service], 1e-9) {
						t.Fatalf("at %v: %s receives %v req/s, callers × fan-out give %v", st.Time, s.Service, s.Requests, want[s.Service])
					}
				}
			}
		})
	}
}

func approxEqual(a, b, rel float64) bool {
	return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b))
}

func TestAllValuesFiniteAndNonNegative(t *testing.T) {
	tests := []struct {
		name string
		cfg  func() Config
	}{
		{"default", DefaultConfig},
		{"stress: max noise, many tall bursts, tiny pods", func() Config {
			c := DefaultConfig()
			c.NoiseFraction = maxNoiseFraction
			c.Diurnal.Amplitude = c.Diurnal.Base // trough at zero load
			c.Bursts.PerHour = 20
			c.Bursts.MaxHeight = 1000
			c.DefaultService.CapacityPerPod = 0.5
			c.DefaultService.MaxReplicas = 3
			c.Services = nil
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGen(t, tt.cfg())
			states := series(t, g, t0, t0.Add(72*time.Hour), 30*time.Second)
			if len(states) != 72*120+1 {
				t.Fatalf("got %d states for 3 days at 30s, want %d", len(states), 72*120+1)
			}
			for _, st := range states {
				for _, s := range st.Services {
					p, _ := g.Profile(s.Service)
					for _, v := range []struct {
						name string
						x    float64
					}{{"requests", s.Requests}, {"cpu", s.CPUCores}, {"memory", s.MemoryBytes}, {"latency", s.LatencySeconds}, {"utilisation", s.Utilisation}} {
						if math.IsNaN(v.x) || math.IsInf(v.x, 0) || v.x < 0 {
							t.Fatalf("at %v: %s %s = %v", st.Time, s.Service, v.name, v.x)
						}
					}
					if s.LatencySeconds == 0 || s.MemoryBytes == 0 || s.CPUCores == 0 {
						t.Fatalf("at %v: %s has a zero latency, memory or CPU: %+v", st.Time, s.Service, s)
					}
					if s.Replicas < p.MinReplicas || s.Replicas > p.MaxReplicas {
						t.Fatalf("at %v: %s has %d replicas outside [%d, %d]", st.Time, s.Service, s.Replicas, p.MinReplicas, p.MaxReplicas)
					}
				}
			}
		})
	}
}

func TestLatencyGrowsWithUtilisation(t *testing.T) {
	const capacity = 30.0
	// One pod, constant load: utilisation = base / (capacity/target).
	var prev float64
	for _, base := range []float64{1, 10, 20, 30, 38, 42, 43, 60, 500} {
		c := quiet()
		c.Diurnal.Base, c.Diurnal.Amplitude = base, 0
		c.Services = nil
		c.DefaultService.CapacityPerPod = capacity
		c.DefaultService.MaxReplicas = 1
		g, err := New(c, topology.Graph{Services: []string{"api"}})
		if err != nil {
			t.Fatal(err)
		}
		s := g.At(t0).Services[0]
		saturation := capacity / c.TargetUtilisation
		wantUtil := base / saturation
		serviceTime := 1 / saturation
		wantLatency := serviceTime / (1 - math.Min(wantUtil, maxUtilisation))
		if !approxEqual(s.Utilisation, wantUtil, 1e-12) || !approxEqual(s.LatencySeconds, wantLatency, 1e-12) {
			t.Errorf("load %v: utilisation %v latency %v, want %v and %v", base, s.Utilisation, s.LatencySeconds, wantUtil, wantLatency)
		}
		switch {
		case wantUtil < maxUtilisation && s.LatencySeconds <= prev:
			t.Errorf("load %v (utilisation %.3f): latency %v did not grow from %v", base, wantUtil, s.LatencySeconds, prev)
		case wantUtil >= maxUtilisation && !approxEqual(s.LatencySeconds, serviceTime/(1-maxUtilisation), 1e-12):
			t.Errorf("load %v (utilisation %.3f): latency %v, want the cap %v", base, wantUtil, s.LatencySeconds, serviceTime/(1-maxUtilisation))
		}
		prev = s.LatencySeconds
	}
}

// The observed replicas follow the load Lag late when it rises and
// Lag+ScaleDownWindow late when it falls.
func TestReplicasLagTheLoad(t *testing.T) {
	c := quiet()
	c.Diurnal.Period = 2 * time.Hour // steep enough to change replicas often
	c.Diurnal.PeakAt = time.Hour
	g := newGen(t, c)
	lag, window := c.Replicas.Lag, c.Replicas.ScaleDownWindow
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // trough at 00:00, peak at 01:00
	tests := []struct {
		name     string
		from, to time.Time
		seenAgo  time.Duration
	}{
		{"rising", day.Add(window + lag), day.Add(time.Hour), lag},
		{"falling", day.Add(time.Hour + window + lag), day.Add(2 * time.Hour), lag + window},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes := 0
			prev := -1
			for _, st := range series(t, g, tt.from, tt.to, c.Replicas.SyncPeriod) {
				seen := g.At(st.Time.Add(-tt.seenAgo))
				for i, s := range st.Services {
					p, _ := g.Profile(s.Service)
					want := int(math.Max(float64(p.MinReplicas), math.Min(float64(p.MaxReplicas), math.Ceil(seen.Services[i].Requests/p.CapacityPerPod))))
					if s.Replicas != want {
						t.Fatalf("at %v: %s has %d replicas, want %d (load %v seen %v earlier)",
							st.Time, s.Service, s.Replicas, want, seen.Services[i].Requests, tt.seenAgo)
					}
				}
				if fe, _ := st.Service("frontend"); fe.Replicas != prev {
					changes++
					prev = fe.Replicas
				}
			}
			if changes < 3 {
				t.Fatalf("frontend replicas changed only %d times; the test does not exercise the rule", changes)
			}
		})
	}
}

func TestBursts(t *testing.T) {
	with := DefaultConfig()
	with.NoiseFraction = 0
	with.Bursts.PerHour = 1
	without := with
	without.Bursts.PerHour = 0
	gw, gn := newGen(t, with), newGen(t, without)
	days := 4
	sw := series(t, gw, t0, t0.Add(time.Duration(days)*24*time.Hour), 10*time.Second)
	sn := series(t, gn, t0, t0.Add(time.Duration(days)*24*time.Hour), 10*time.Second)
	fe := gw.index["frontend"]
	runs, inRun, peak := 0, false, 0.0
	for i := range sw {
		extra := sw[i].Services[fe].Requests - sn[i].Services[fe].Requests
		if extra < -1e-9 {
			t.Fatalf("at %v: a burst lowered the load by %v", sw[i].Time, -extra)
		}
		if extra > 1e-9 && !inRun {
			runs++
		}
		inRun = extra > 1e-9
		peak = math.Max(peak, extra)
	}
	// Poisson with mean 96 over four days; overlapping bursts merge.
	if runs < 60 || runs > 135 {
		t.Errorf("%d bursts in %d days at %v per hour", runs, days, with.Bursts.PerHour)
	}
	if peak < with.Bursts.MinHeight || peak > 2*with.Bursts.MaxHeight {
		t.Errorf("tallest burst %v req/s, want within [%v, %v]", peak, with.Bursts.MinHeight, 2*with.Bursts.MaxHeight)
	}
}

func TestSeriesErrors(t *testing.T) {
	g := newGen(t, DefaultConfig())
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name       string
		ctx        context.Context
		start, end time.Time
		step       time.Duration
		want       string
	}{
		{"zero step", context.Background(), t0, t0.Add(time.Hour), 0, "step"},
		{"end before start", context.Background(), t0, t0.Add(-time.Second), time.Second, "before start"},
		{"too many points", context.Background(), t0, t0.Add(30 * 24 * time.Hour), time.Second, "points"},
		{"cancelled", cancelled, t0, t0.Add(time.Hour), time.Second, "interrupted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := g.Series(tt.ctx, tt.start, tt.end, tt.step)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := g.Series(cancelled, t0, t0, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v, want context.Canceled", err)
	}
}

func TestCapacityPerPod(t *testing.T) {
	c := DefaultConfig()
	_, err := New(c, topology.Graph{
		Services: []string{"frontend", "extra"},
		Edges:    []topology.Edge{{Caller: "frontend", Callee: "extra"}},
	})
	if err == nil {
		t.Fatalf("New accepted profiles for services missing from the topology")
	}
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(ce.Field, "Services[") {
		t.Fatalf("got %v, want a ConfigError naming the profile", err)
	}
	c.Services = map[string]ServiceProfile{"frontend": c.Services["frontend"]}
	g, err := New(c, topology.Graph{
		Services: []string{"frontend", "extra"},
		Edges:    []topology.Edge{{Caller: "frontend", Callee: "extra"}}, // FanOut 0 = unknown = 1
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		service string
		want    float64
		wantErr bool
	}{
		{"frontend", c.Services["frontend"].CapacityPerPod, false},
		{"extra", c.DefaultService.CapacityPerPod, false},
		{"nope", 0, true},
	} {
		got, err := g.CapacityPerPod(tt.service)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("CapacityPerPod(%q) = %v, %v; want %v (error %v)", tt.service, got, err, tt.want, tt.wantErr)
		}
	}
	st := g.At(t0)
	fe, _ := st.Service("frontend")
	ex, _ := st.Service("extra")
	if want := fe.Requests * noiseOf(g, "extra", t0); !approxEqual(ex.Requests, want, 1e-12) {
		t.Errorf("extra receives %v req/s for frontend's %v with an unknown (=1) fan-out", ex.Requests, fe.Requests)
	}
}

// noiseOf is the load noise factor of one service at t.
func noiseOf(g *Generator, service string, t time.Time) float64 {
	return g.newEvaluator().noise(g.loadStream[g.index[service]], g.tick(t))
}

func BenchmarkSeries(b *testing.B) {
	g := newGen(b, DefaultConfig())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Series(context.Background(), t0, t0.Add(time.Hour), time.Second); err != nil {
			b.Fatal(err)
		}
	}
}
