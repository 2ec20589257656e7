package simulator

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/queueing"
	"github.com/foresightscale/foresight/forecaster/simulator/workload"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/topology"
)

// chainApp is web → api → db, every request visiting each once.
func chainApp() App {
	svc := func(name string, work float64) Service {
		return Service{Name: name, WorkPerRequest: work, CoresPerPod: 0.5, MinReplicas: 1, MaxReplicas: 10}
	}
	return App{
		Name: "chain", Entry: "web", TypicalFanOut: 0.5,
		Services: []Service{svc("web", 0.01), svc("api", 0.02), svc("db", 0.005)},
		Calls:    []topology.Edge{{Caller: "web", Callee: "api", FanOut: 1}, {Caller: "api", Callee: "db", FanOut: 1}},
	}
}

// TestSourceLatencyP99 runs 10 req/s for 30 s then 20 req/s for 30 s through
// web → api → db on two pods each (never overloaded, so no backlog and each
// second's p99 is the M/M/2 quantile of its rate), and reads latency_p99
// back: a step's sample is the worst second's p99 as the service's sidecar
// measures it, the entry's being the end-to-end p99.
func TestSourceLatencyP99(t *testing.T) {
	cfg := DefaultConfig()
	cfg.App, cfg.WarmUp, cfg.StartupJitter = chainApp(), 0, 0
	trace := &workload.Trace{Name: "step", Step: time.Second, RPS: make([]float64, 60)}
	for i := range trace.RPS {
		trace.RPS[i] = 10
		if i >= 30 {
			trace.RPS[i] = 20
		}
	}
	_, run, err := Simulate(context.Background(), cfg, trace, &fixed{n: []int32{2, 2, 2}})
	if err != nil {
		t.Fatal(err)
	}

	// Each service's own p99 at a rate, and as its sidecar sees it (its
	// callees' added).
	timeout := cfg.Timeout.Seconds()
	own := func(i int, rps float64) float64 {
		return queueing.Station{Servers: 2, Mu: cfg.App.Services[i].PodRate(), Lambda: rps}.Quantile(0.99, timeout)
	}
	sidecar := func(service string, rps float64) float64 {
		db := own(2, rps)
		api := own(1, rps) + db
		return map[string]float64{"web": own(0, rps) + api, "api": api, "db": db}[service]
	}
	if low, high := sidecar("web", 10), sidecar("web", 20); !(low < high) || !near(run.P99[0], low) || !near(run.P99[59], high) {
		t.Fatalf("end-to-end p99 %v then %v, want %v then %v (and rising)", run.P99[0], run.P99[59], low, high)
	}

	tests := []struct {
		name    string
		service string
		step    time.Duration
		at      int // seconds
		rps     float64
	}{
		{"entry, quiet step", "web", 10 * time.Second, 30, 10},
		{"entry, busy step", "web", 10 * time.Second, 60, 20},
		{"entry, step across the change: the worst second", "web", 20 * time.Second, 40, 20},
		{"middle service", "api", 10 * time.Second, 20, 10},
		{"middle service across the change", "api", 20 * time.Second, 40, 20},
		{"leaf service", "db", 10 * time.Second, 50, 20},
		{"leaf service across the change", "db", 30 * time.Second, 40, 20},
	}
	src := &Source{Run: run}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := At(tt.at)
			data, err := src.Fetch(context.Background(), source.Query{
				Services: []string{tt.service}, Features: []source.Feature{source.LatencyP99, source.Latency},
				Start: at, End: at, Step: tt.step,
			})
			if err != nil {
				t.Fatal(err)
			}
			got := data[source.LatencyP99][tt.service]
			if len(got) != 1 || !got[0].Time.Equal(at) {
				t.Fatalf("samples %v, want one at %v", got, at)
			}
			if want := sidecar(tt.service, tt.rps); !near(got[0].Value, want) {
				t.Errorf("p99 %v, want %v", got[0].Value, want)
			}
			if tt.service == cfg.App.Entry {
				from := tt.at - int(tt.step/time.Second)
				if want := slices.Max(run.P99[from:tt.at]); got[0].Value != want {
					t.Errorf("entry p99 %v, want the largest end-to-end p99 of seconds %d..%d, %v", got[0].Value, from, tt.at-1, want)
				}
			}
			// The mean-latency feature is unchanged: the own median, averaged.
			if mean := data[source.Latency][tt.service]; len(mean) != 1 || !(mean[0].Value < got[0].Value) {
				t.Errorf("mean latency %v, want one sample below the p99 %v", mean, got[0].Value)
			}
		})
	}

	// Times not simulated yet, and unknown services, have no samples.
	data, err := src.Fetch(context.Background(), source.Query{
		Services: []string{"web", "nosuch"}, Features: []source.Feature{source.LatencyP99},
		Start: At(60), End: At(90), Step: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := data[source.LatencyP99]; len(got) != 1 || len(got["web"]) != 1 {
		t.Errorf("samples %v, want one for web (at 60 s) and none for nosuch", got)
	}
}

// TestSourceRequestsPeak: requests_peak is the largest PeakResolution-second
// mean rate within the step, as a Prometheus scraping at that interval
// sees it; bursts shorter than that are averaged, as in a cluster.
func TestSourceRequestsPeak(t *testing.T) {
	cfg := DefaultConfig()
	cfg.App, cfg.WarmUp, cfg.StartupJitter = chainApp(), 0, 0
	trace := &workload.Trace{Name: "bursts", Step: time.Second, RPS: make([]float64, 120)}
	for i := range trace.RPS {
		trace.RPS[i] = 10
	}
	for i := 40; i < 50; i++ { // a 10 s burst at 40 req/s in step 30..59
		trace.RPS[i] = 40
	}
	trace.RPS[95] = 100 // a one-second spike in step 90..119
	_, run, err := Simulate(context.Background(), cfg, trace, &fixed{n: []int32{10, 10, 10}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		resolution time.Duration
		at         int // end of the 30 s step, seconds
		mean, peak float64
	}{
		{"calm step", 15 * time.Second, 30, 10, 10},
		{"a 10 s burst in 15 s windows: averaged with 5 calm seconds", 15 * time.Second, 60, 20, (10*40 + 5*10) / 15.0},
		{"burst seen whole at 10 s", 10 * time.Second, 60, 20, 40},
		{"one-second spike at 15 s", 15 * time.Second, 120, 13, (14*10 + 100) / 15.0},
		{"one-second spike at 1 s", time.Second, 120, 13, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run.Config.PeakResolution = tt.resolution
			data, err := (&Source{Run: run}).Fetch(context.Background(), source.Query{
				Services: []string{"web", "db"}, Features: []source.Feature{source.Requests, source.RequestsPeak},
				Start: At(tt.at), End: At(tt.at), Step: 30 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, svc := range []string{"web", "db"} { // every request visits db once
				mean, peak := data[source.Requests][svc], data[source.RequestsPeak][svc]
				if len(mean) != 1 || len(peak) != 1 || !near(mean[0].Value, tt.mean) || !near(peak[0].Value, tt.peak) {
					t.Errorf("%s: mean %v peak %v, want %v and %v", svc, mean, peak, tt.mean, tt.peak)
				}
			}
		})
	}
	cfg.PeakResolution = 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "peakResolution") {
		t.Errorf("peak resolution 0 accepted: %v", err)
	}
}
