package synthetic

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/topology"
)

func TestDefaultConfigIsValid(t *testing.T) {
	short := DefaultConfig()
	short.Diurnal.Period = 10 * time.Minute // a demo's compressed day
	negative := DefaultConfig()
	negative.Diurnal.PeakAt = -3 * time.Hour
	for name, c := range map[string]Config{"default": DefaultConfig(), "compressed day": short, "negative peak": negative} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := New(c, topology.OnlineBoutique()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The peak lands at PeakAt modulo Period, the trough half a period later.
func TestDiurnalPeak(t *testing.T) {
	tests := []struct {
		period, peakAt, wantPeak time.Duration // wantPeak: offset into the period
	}{
		{24 * time.Hour, 15 * time.Hour, 15 * time.Hour},
		{10 * time.Minute, 15 * time.Hour, 0},
		{10 * time.Minute, 15*time.Hour + 3*time.Minute, 3 * time.Minute},
		{time.Hour, -15 * time.Minute, 45 * time.Minute},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		c.Diurnal.Period, c.Diurnal.PeakAt = tt.period, tt.peakAt
		g := newGen(t, c)
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // a multiple of every period here
		peak := start.Add(tt.wantPeak)
		trough := peak.Add(tt.period / 2)
		d := c.Diurnal
		if got := g.diurnal(peak.UnixNano()); !approxEqual(got, d.Base+d.Amplitude, 1e-12) {
			t.Errorf("period %v peakAt %v: load %v at %v, want the peak %v", tt.period, tt.peakAt, got, peak, d.Base+d.Amplitude)
		}
		if got := g.diurnal(trough.UnixNano()); !approxEqual(got, d.Base-d.Amplitude, 1e-9) {
			t.Errorf("period %v peakAt %v: load %v at %v, want the trough %v", tt.period, tt.peakAt, got, trough, d.Base-d.Amplitude)
		}
	}
}

func TestConfigValidationNamesTheField(t *testing.T) {
	tests := []struct {
		field  string
		mutate func(*Config)
	}{
		{"Resolution", func(c *Config) { c.Resolution = 0 }},
		{"Diurnal.Period", func(c *Config) { c.Diurnal.Period = time.Millisecond }},
		{"Diurnal.Base", func(c *Config) { c.Diurnal.Base = 0 }},
		{"Diurnal.Base", func(c *Config) { c.Diurnal.Base = math.NaN() }},
		{"Diurnal.Base", func(c *Config) { c.Diurnal.Base = math.Inf(1) }},
		{"Diurnal.Amplitude", func(c *Config) { c.Diurnal.Amplitude = c.Diurnal.Base + 1 }},
		{"Diurnal.Amplitude", func(c *Config) { c.Diurnal.Amplitude = -1 }},
		{"Bursts.PerHour", func(c *Config) { c.Bursts.PerHour = -1 }},
		{"Bursts.PerHour", func(c *Config) { c.Bursts.PerHour = 1000 }},
		{"Bursts.Epoch", func(c *Config) { c.Bursts.Epoch = 0 }},
		{"Bursts.MinDuration", func(c *Config) { c.Bursts.MinDuration = 0 }},
		{"Bursts.MaxDuration", func(c *Config) { c.Bursts.MaxDuration = c.Bursts.MinDuration - 1 }},
		{"Bursts.MaxDuration", func(c *Config) { c.Bursts.MaxDuration = 2 * c.Bursts.Epoch }},
		{"Bursts.MinHeight", func(c *Config) { c.Bursts.MinHeight = -5 }},
		{"Bursts.MaxHeight", func(c *Config) { c.Bursts.MaxHeight = c.Bursts.MinHeight - 1 }},
		{"NoiseFraction", func(c *Config) { c.NoiseFraction = 0.5 }},
		{"NoiseFraction", func(c *Config) { c.NoiseFraction = math.NaN() }},
		{"TargetUtilisation", func(c *Config) { c.TargetUtilisation = 0 }},
		{"TargetUtilisation", func(c *Config) { c.TargetUtilisation = 1 }},
		{"Replicas.SyncPeriod", func(c *Config) { c.Replicas.SyncPeriod = 0 }},
		{"Replicas.Lag", func(c *Config) { c.Replicas.Lag = 20 * time.Second }},
		{"Replicas.ScaleDownWindow", func(c *Config) { c.Replicas.ScaleDownWindow = -c.Replicas.SyncPeriod }},
		{"Replicas.ScaleDownWindow", func(c *Config) { c.Replicas.ScaleDownWindow = 10000 * c.Replicas.SyncPeriod }},
		{"DefaultService.WorkPerRequest", func(c *Config) { c.DefaultService.WorkPerRequest = 0 }},
		{"DefaultService.MemoryBytesPerPod", func(c *Config) { c.DefaultService.MemoryBytesPerPod = math.Inf(1) }},
		{`Services["frontend"].CapacityPerPod`, func(c *Config) { setProfile(c, "frontend", func(p *ServiceProfile) { p.CapacityPerPod = -1 }) }},
		{`Services["cartservice"].MinReplicas`, func(c *Config) { setProfile(c, "cartservice", func(p *ServiceProfile) { p.MinReplicas = 0 }) }},
		{`Services["adservice"].MaxReplicas`, func(c *Config) { setProfile(c, "adservice", func(p *ServiceProfile) { p.MaxReplicas = 0 }) }},
		{`Services["adservice"].IdleCoresPerPod`, func(c *Config) { setProfile(c, "adservice", func(p *ServiceProfile) { p.IdleCoresPerPod = -0.1 }) }},
		{`Services["adservice"].MemoryBytesPerRPS`, func(c *Config) {
			setProfile(c, "adservice", func(p *ServiceProfile) { p.MemoryBytesPerRPS = math.NaN() })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Validate() = %v, want a *ConfigError", err)
			}
			if ce.Field != tt.field || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q names field %q, want %q", err, ce.Field, tt.field)
			}
			if _, err := New(c, topology.OnlineBoutique()); !errors.As(err, &ce) {
				t.Fatalf("New accepted an invalid config: %v", err)
			}
		})
	}
}

func setProfile(c *Config, name string, f func(*ServiceProfile)) {
	p := c.Services[name]
	f(&p)
	c.Services[name] = p
}

func TestNewRejectsBadTopologies(t *testing.T) {
	quietCfg := func() Config { c := DefaultConfig(); c.Services = nil; return c }
	tests := []struct {
		name  string
		cfg   Config
		graph topology.Graph
		want  string
	}{
		{"empty", quietCfg(), topology.Graph{}, "no services"},
		{"cycle", quietCfg(), topology.Graph{Services: []string{"a", "b"}, Edges: []topology.Edge{{Caller: "a", Callee: "b", FanOut: 1}, {Caller: "b", Callee: "a", FanOut: 1}}}, "cycle"},
		{"NaN fan-out", quietCfg(), topology.Graph{Services: []string{"a", "b"}, Edges: []topology.Edge{{Caller: "a", Callee: "b", FanOut: math.NaN()}}}, "edges[0]"},
		{"infinite fan-out", quietCfg(), topology.Graph{Services: []string{"a", "b"}, Edges: []topology.Edge{{Caller: "a", Callee: "b", FanOut: math.Inf(1)}}}, "edges[0]"},
		{"overflowing chain", quietCfg(), chain(3, 1e6), `"s2"`},
		{"profile for an unknown service", DefaultConfig(), topology.Graph{Services: []string{"a"}}, `Services["adservice"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, tt.graph)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New() = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// chain is s0 → s1 → … with the given fan-out on every hop.
func chain(n int, fanOut float64) topology.Graph {
	var g topology.Graph
	for i := range n {
		g.Services = append(g.Services, "s"+string(rune('0'+i)))
		if i > 0 {
			g.Edges = append(g.Edges, topology.Edge{Caller: g.Services[i-1], Callee: g.Services[i], FanOut: fanOut})
		}
	}
	return g
}
