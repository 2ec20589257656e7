package policy

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func testConfig() Config {
	c := Default()
	c.CapacityPerPod = 10
	c.Services = map[string]ServiceConfig{"cart": {CapacityPerPod: 5, MaxReplicas: 4}}
	return c
}

func TestDecide(t *testing.T) {
	step := 30 * time.Second // default lead time 2m = 4 steps
	tests := []struct {
		name     string
		service  string
		forecast []float64
		previous int64
		want     Decision
	}{
		{"peak within lead time", "frontend", []float64{10, 50, 20, 30, 1000}, 0,
			Decision{Replicas: 6, Raw: 6, PeakRequests: 50}}, // ceil(50*1.2/10)
		{"beyond lead time ignored", "frontend", []float64{1, 1, 1, 1, 500}, 0,
			Decision{Replicas: 1, Raw: 1, PeakRequests: 1}},
		{"zero load gives min, not zero", "frontend", []float64{0, 0, 0, 0}, 0,
			Decision{Replicas: 1, Raw: 0, PeakRequests: 0, Limited: "min"}},
		{"negative forecast treated as no load", "frontend", []float64{-5, -3, -1, -2}, 0,
			Decision{Replicas: 1, Raw: 0, PeakRequests: 0, Limited: "min"}},
		{"service capacity and max", "cart", []float64{100}, 0,
			Decision{Replicas: 4, Raw: 24, PeakRequests: 100, Limited: "max", Saturated: true}},
		{"scale down limited to 25%", "frontend", []float64{10, 10, 10, 10}, 20,
			Decision{Replicas: 15, Raw: 2, PeakRequests: 10, Limited: "scale_down_step"}},
		{"scale down at least one replica", "frontend", []float64{1}, 2,
			Decision{Replicas: 1, Raw: 1, PeakRequests: 1}},
		{"scale up unlimited", "frontend", []float64{100}, 1,
			Decision{Replicas: 12, Raw: 12, PeakRequests: 100}},
		// Item 3 of issue 16: a dip shorter than the lead time (pod start-up
		// plus the HPA's reaction) does not give back pods the load after
		// it needs again.
		{"no scale-down through a dip within the lead time", "frontend", []float64{5, 5, 50, 50}, 6,
			Decision{Replicas: 6, Raw: 6, PeakRequests: 50}},
		{"scale-down once the lead time holds no peak", "frontend", []float64{5, 5, 5, 5, 50}, 6,
			Decision{Replicas: 5, Raw: 1, PeakRequests: 5, Limited: "scale_down_step"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := testConfig().Decide(tc.service, tc.forecast, step, tc.previous)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDecideBursty: the burst factor multiplies the forecast peak before
// the headroom; PeakRequests stays the forecast's; a factor outside [1,
// MaxBurst] is refused, not clamped into a number.
func TestDecideBursty(t *testing.T) {
	step := 30 * time.Second
	tests := []struct {
		name    string
		burst   float64
		want    Decision
		wantErr bool
	}{
		{"no burst is Decide", 1, Decision{Replicas: 6, Raw: 6, PeakRequests: 50}, false},    // ceil(50*1.2/10)
		{"peaks 1.5x the mean", 1.5, Decision{Replicas: 9, Raw: 9, PeakRequests: 50}, false}, // ceil(50*1.5*1.2/10)
		{"the bound", MaxBurst, Decision{Replicas: 24, Raw: 24, PeakRequests: 50}, false},
		{"below 1", 0.9, Decision{}, true},
		{"above the bound", MaxBurst + 0.1, Decision{}, true},
		{"NaN", math.NaN(), Decision{}, true},
		{"Inf", math.Inf(1), Decision{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := testConfig().DecideBursty("frontend", []float64{10, 50, 20}, tc.burst, step, 0)
			if (err != nil) != tc.wantErr {
				t.Fatalf("DecideBursty(burst %v) error = %v, want error %v", tc.burst, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("DecideBursty(burst %v) = %+v, want %+v", tc.burst, got, tc.want)
			}
		})
	}
}

// TestDecideWithQueueing: a service with podRate and latencyP99 gets the
// fewest pods whose M/M/c p99 meets the budget, so at a higher load it runs
// each pod hotter than at a low one (the point of queueing sizing).
func TestDecideWithQueueing(t *testing.T) {
	c := testConfig()
	c.Headroom = 0
	c.Services["frontend"] = ServiceConfig{PodRate: 100, LatencyP99: model.Duration(100 * time.Millisecond), MaxReplicas: 50}
	tests := []struct {
		load float64
		want int64
	}{
		// M/M/1 at 50 req/s: p99 = ln(100)/(100−50) ≈ 92 ms ≤ 100 ms.
		{50, 1},
		// At 60 req/s one pod's p99 is 115 ms: two pods.
		{60, 2},
		// At 1000 req/s 11 pods (91 % busy) keep the p99 within 100 ms,
		// where a fixed capacity at 60 % would take 17.
		{1000, 11},
	}
	for _, tc := range tests {
		d, err := c.Decide("frontend", []float64{tc.load}, 30*time.Second, 0)
		if err != nil {
			t.Fatal(err)
		}
		if d.Replicas != tc.want {
			t.Errorf("%v req/s: %d replicas, want %d", tc.load, d.Replicas, tc.want)
		}
	}
	// Beyond maxReplicas: clamped and said so.
	d, err := c.Decide("frontend", []float64{1e6}, 30*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Replicas != 50 || d.Limited != "max" || !d.Saturated {
		t.Errorf("1e6 req/s: %+v, want 50 replicas limited by max", d)
	}
}

func TestDecideRefusesBadForecasts(t *testing.T) {
	for _, forecast := range [][]float64{nil, {math.NaN()}, {1, math.Inf(1)}, {math.Inf(-1)}} {
		_, err := testConfig().Decide("frontend", forecast, 30*time.Second, 3)
		if !errors.Is(err, ErrBadForecast) {
			t.Errorf("Decide(%v) error = %v, want ErrBadForecast", forecast, err)
		}
	}
}

func TestLeadSteps(t *testing.T) {
	tests := []struct {
		lead    time.Duration
		horizon int
		want    int
	}{
		{2 * time.Minute, 10, 4},
		{100 * time.Second, 10, 4}, // rounds up
		{time.Second, 10, 1},
		{time.Hour, 10, 10}, // capped at the horizon
	}
	for _, tc := range tests {
		c := Default()
		c.LeadTime = model.Duration(tc.lead)
		if got := c.LeadSteps(30*time.Second, tc.horizon); got != tc.want {
			t.Errorf("LeadSteps(%v, %d) = %d, want %d", tc.lead, tc.horizon, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	services := []string{"frontend", "cart"}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; empty for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"min zero", func(c *Config) { c.MinReplicas = 0 }, "policy.minReplicas"},
		{"max below min", func(c *Config) { c.MaxReplicas = 0 }, "policy.maxReplicas"},
		{"negative headroom", func(c *Config) { c.Headroom = -1 }, "policy.headroom"},
		{"no capacity", func(c *Config) { c.CapacityPerPod = 0 }, "policy.services.frontend.capacityPerPod"},
		{"negative cpuPerPod", func(c *Config) { c.CPUPerPod = -1 }, "policy.cpuPerPod: must be CPU cores"},
		{"NaN service cpuPerPod", func(c *Config) { c.Services["nope"] = ServiceConfig{CPUPerPod: math.NaN()} }, "policy.services.nope.cpuPerPod: must be CPU cores"},
		{"scale-down percent", func(c *Config) { c.MaxScaleDownPercent = 0 }, "policy.maxScaleDownPercent"},
		{"lead time", func(c *Config) { c.LeadTime = 0 }, "policy.leadTime"},
		{"queueing instead of capacity", func(c *Config) {
			c.CapacityPerPod = 0
			c.Services["frontend"] = ServiceConfig{PodRate: 100, LatencyP99: model.Duration(100 * time.Millisecond)}
		}, ""},
		{"podRate without latency", func(c *Config) {
			c.Services["frontend"] = ServiceConfig{PodRate: 100}
		}, "policy.services.frontend: podRate and latencyP99 go together"},
		{"latency below the service time", func(c *Config) {
			// ln(100)/100 req/s ≈ 46 ms on an idle pod.
			c.Services["frontend"] = ServiceConfig{PodRate: 100, LatencyP99: model.Duration(40 * time.Millisecond)}
		}, "policy.services.frontend.latencyP99"},
		{"negative pod rate", func(c *Config) {
			c.Services["frontend"] = ServiceConfig{PodRate: -1, LatencyP99: model.Duration(time.Second)}
		}, "policy.services.frontend.podRate"},
		// Issue 12, defect 2: every numeric is bounded and named.
		{"capacity 1e-300", func(c *Config) { c.CapacityPerPod = 1e-300 }, "policy.capacityPerPod"},
		{"capacity too large", func(c *Config) { c.CapacityPerPod = 1e10 }, "policy.capacityPerPod"},
		{"capacity NaN", func(c *Config) { c.CapacityPerPod = math.NaN() }, "policy.capacityPerPod"},
		{"capacity Inf", func(c *Config) { c.CapacityPerPod = math.Inf(1) }, "policy.capacityPerPod"},
		{"capacity negative", func(c *Config) { c.CapacityPerPod = -1 }, "policy.capacityPerPod"},
		{"smallest capacity", func(c *Config) { c.CapacityPerPod = 1e-6 }, ""},
		{"service capacity 1e-300", func(c *Config) { c.Services["cart"] = ServiceConfig{CapacityPerPod: 1e-300} }, "policy.services.cart.capacityPerPod"},
		{"pod rate 1e-300", func(c *Config) {
			c.Services["frontend"] = ServiceConfig{PodRate: 1e-300, LatencyP99: model.Duration(time.Second)}
		}, "policy.services.frontend.podRate"},
		{"pod rate too large", func(c *Config) {
			c.Services["frontend"] = ServiceConfig{PodRate: 1e12, LatencyP99: model.Duration(time.Second)}
		}, "policy.services.frontend.podRate"},
		{"latency over an hour", func(c *Config) {
			c.Services["frontend"] = ServiceConfig{PodRate: 100, LatencyP99: model.Duration(2 * time.Hour)}
		}, "policy.services.frontend.latencyP99"},
		{"negative service max", func(c *Config) { c.Services["cart"] = ServiceConfig{MaxReplicas: -1} }, "policy.services.cart.maxReplicas"},
		{"negative service min", func(c *Config) { c.Services["cart"] = ServiceConfig{MinReplicas: -1} }, "policy.services.cart.minReplicas"},
		{"service max too large", func(c *Config) { c.Services["cart"] = ServiceConfig{MaxReplicas: 2_000_000} }, "policy.services.cart.maxReplicas"},
		{"max too large", func(c *Config) { c.MaxReplicas = 2_000_000 }, "policy.maxReplicas"},
		{"lead time 100y", func(c *Config) { c.LeadTime = model.Duration(100 * 365 * 24 * time.Hour) }, "policy.leadTime"},
		{"lead time 24h", func(c *Config) { c.LeadTime = model.Duration(24 * time.Hour) }, ""},
		{"headroom NaN", func(c *Config) { c.Headroom = math.NaN() }, "policy.headroom"},
		{"headroom Inf", func(c *Config) { c.Headroom = math.Inf(1) }, "policy.headroom"},
		{"quantile NaN", func(c *Config) { c.Quantile = math.NaN() }, "policy.quantile"},
		{"scale-down percent NaN", func(c *Config) { c.MaxScaleDownPercent = math.NaN() }, "policy.maxScaleDownPercent"},
		{"scale-down percent above 100", func(c *Config) { c.MaxScaleDownPercent = 101 }, "policy.maxScaleDownPercent"},
		{"burst quantile 0", func(c *Config) { c.Burst.Quantile = 0 }, "policy.burst.quantile"},
		{"burst quantile NaN", func(c *Config) { c.Burst.Quantile = math.NaN() }, "policy.burst.quantile"},
		{"burst quantile 1", func(c *Config) { c.Burst.Quantile = 1 }, ""},
		{"burst steps 2", func(c *Config) { c.Burst.Steps = 2 }, "policy.burst.steps"},
		{"burst steps a million", func(c *Config) { c.Burst.Steps = 1_000_000 }, "policy.burst.steps"},
		{"burst off ignores its settings", func(c *Config) { c.Burst = BurstConfig{Enabled: false} }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.mutate(&c)
			err := c.Validate(services)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// TestDecideSaturatesAtMax is issue 12's defect 2: load/capacity past ~9.2e18
// overflowed int64 to MinInt64, which the clamp turned into minReplicas (or
// a 25 % step down from the last prediction). However large the load, the
// answer is maxReplicas, and Raw never wraps negative.
func TestDecideSaturatesAtMax(t *testing.T) {
	step := 30 * time.Second
	capacity := func(rate float64) func(*Config) {
		return func(c *Config) { c.CapacityPerPod = rate }
	}
	queueing := func(c *Config) {
		c.Services["frontend"] = ServiceConfig{PodRate: 100, LatencyP99: model.Duration(100 * time.Millisecond), MaxReplicas: 50}
	}
	tests := []struct {
		name     string
		mutate   func(*Config)
		forecast []float64
		previous int64
		wantMax  int64
		wantRaw  int64 // 0: only check Raw > max
	}{
		{"1e25 req/s", capacity(10), []float64{1e25}, 0, 100, math.MaxInt64},
		{"1e25 req/s after 4 replicas", capacity(10), []float64{1e25}, 4, 100, math.MaxInt64},
		{"1e25 req/s after more than max", capacity(10), []float64{1e25}, 150, 100, math.MaxInt64},
		{"just past int64", capacity(10), []float64{1e20}, 4, 100, math.MaxInt64},
		{"1e300 req/s", capacity(10), []float64{1, 1e300, 1}, 4, 100, math.MaxInt64},
		{"MaxFloat64 (load +Inf after headroom)", capacity(10), []float64{math.MaxFloat64}, 4, 100, math.MaxInt64},
		{"capacity 1e-300 (unvalidated)", capacity(1e-300), []float64{1}, 4, 100, math.MaxInt64},
		{"smallest valid capacity", capacity(1e-6), []float64{1000}, 4, 100, 1_200_000_000},
		{"per-service max", capacity(10), []float64{1e25}, 3, 4, 0}, // cart: max 4
		{"queueing, huge load", queueing, []float64{1e25}, 4, 50, math.MaxInt64},
		{"queueing, MaxFloat64", queueing, []float64{math.MaxFloat64}, 4, 50, math.MaxInt64},
		{"queueing, just past max", queueing, []float64{5000}, 40, 50, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.mutate(&c)
			service := "frontend"
			if tc.wantMax == 4 {
				service = "cart"
			}
			d, err := c.Decide(service, tc.forecast, step, tc.previous)
			if err != nil {
				t.Fatal(err)
			}
			if d.Replicas != tc.wantMax || d.Limited != "max" || !d.Saturated {
				t.Errorf("Decide = %+v, want %d replicas, limited by max, saturated", d, tc.wantMax)
			}
			if d.Raw <= tc.wantMax || (tc.wantRaw != 0 && d.Raw != tc.wantRaw) {
				t.Errorf("Raw = %d, want above max %d (exactly %d if set)", d.Raw, tc.wantMax, tc.wantRaw)
			}
		})
	}
}

// TestDecideNotSaturated: a load within max is not flagged, nor is a cap at
// max that comes from stepping down from a prediction above a lowered max.
func TestDecideNotSaturated(t *testing.T) {
	c := testConfig()
	for _, tc := range []struct {
		forecast []float64
		previous int64
		want     Decision
	}{
		{[]float64{800}, 0, Decision{Replicas: 96, Raw: 96, PeakRequests: 800}},
		{[]float64{10}, 1000, Decision{Replicas: 100, Raw: 2, PeakRequests: 10, Limited: "max"}},
	} {
		d, err := c.Decide("frontend", tc.forecast, 30*time.Second, tc.previous)
		if err != nil {
			t.Fatal(err)
		}
		if d != tc.want {
			t.Errorf("Decide(%v, previous %d) = %+v, want %+v", tc.forecast, tc.previous, d, tc.want)
		}
	}
}

// TestDecideRefusesUnvalidatedBounds: a policy that skipped Validate must
// get an error, not 0 replicas or a wrapped maxReplicas+1.
func TestDecideRefusesUnvalidatedBounds(t *testing.T) {
	for _, mutate := range []func(*Config){
		func(c *Config) { c.MinReplicas = 0 },
		func(c *Config) { c.MaxReplicas = 0 },
		func(c *Config) { c.MaxReplicas = math.MaxInt64 },
	} {
		c := testConfig()
		mutate(&c)
		if d, err := c.Decide("frontend", []float64{1e25}, 30*time.Second, 0); err == nil {
			t.Errorf("min %d max %d: Decide = %+v, want an error", c.MinReplicas, c.MaxReplicas, d)
		}
	}
}

func TestCeilInt64(t *testing.T) {
	tests := []struct {
		x    float64
		want int64
	}{
		{0, 0},
		{-1, 0},
		{0.1, 1},
		{2, 2},
		{1 << 62, 1 << 62},
		{0x1p63 - 1024, math.MaxInt64 - 1023}, // largest float64 below 2^63
		{0x1p63, math.MaxInt64},
		{1e25, math.MaxInt64},
		{math.MaxFloat64, math.MaxInt64},
		{math.Inf(1), math.MaxInt64},
	}
	for _, tc := range tests {
		if got := ceilInt64(tc.x); got != tc.want {
			t.Errorf("ceilInt64(%v) = %d, want %d", tc.x, got, tc.want)
		}
	}
}

// TestValidateSettings checks the bounds without the model's services: a
// config file is checked with it when read, so it must not need capacities
// for services it does not know yet.
func TestValidateSettings(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"defaults without a capacity", func(*Config) {}, ""},
		{"service with only a max", func(c *Config) { c.Services = map[string]ServiceConfig{"frontend": {MaxReplicas: 10}} }, ""},
		{"capacity 1e-300", func(c *Config) { c.CapacityPerPod = 1e-300 }, "policy.capacityPerPod"},
		{"lead time 100y", func(c *Config) { c.LeadTime = model.Duration(100 * 365 * 24 * time.Hour) }, "policy.leadTime"},
		{"negative service max", func(c *Config) { c.Services = map[string]ServiceConfig{"frontend": {MaxReplicas: -3}} }, "policy.services.frontend.maxReplicas"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			err := c.ValidateSettings()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestUnknownAndCPUSizing(t *testing.T) {
	c := Default()
	c.CapacityPerPod = 10
	c.Services = map[string]ServiceConfig{"web": {CapacityPerPod: 5}, "new-svc": {CPUPerPod: 0.5}, "typo": {}}
	if got := c.Unknown([]string{"web"}); len(got) != 2 || got[0] != "new-svc" || got[1] != "typo" {
		t.Errorf("Unknown = %v, want [new-svc typo]", got)
	}
	if err := c.Validate([]string{"web"}); err != nil {
		t.Errorf("entries for services the model does not know must be allowed: %v", err)
	}
	d, err := c.DecideCPU("new-svc", []float64{1, 2, 1.2}, 30*time.Second, 0)
	if err != nil || d.Replicas != 5 { // 2 cores × 1.2 headroom / 0.5 cores per pod = 4.8
		t.Errorf("DecideCPU = %+v, %v; want 5 replicas", d, err)
	}
	if _, err := c.DecideCPU("web", []float64{1}, 30*time.Second, 0); err == nil || !strings.Contains(err.Error(), "no cpuPerPod") {
		t.Errorf("DecideCPU without cpuPerPod: %v", err)
	}
}

func TestSLOSettings(t *testing.T) {
	zero, half, neg := 0.0, 0.5, -0.1
	tests := []struct {
		name     string
		slo      SLOConfig
		headroom float64
		want     string // "" valid
		lo, hi   float64
	}{
		{"defaults", SLOConfig{LatencyP99: model.Duration(250 * time.Millisecond), Service: "gateway"}, 0.2, "", 0.2, 1},
		{"explicit bounds", SLOConfig{LatencyP99: model.Duration(time.Second), Service: "gateway", MinHeadroom: &zero, MaxHeadroom: 0.6}, 0.2, "", 0, 0.6},
		{"headroom above 1 raises the default max", SLOConfig{LatencyP99: model.Duration(time.Second), Service: "gateway"}, 2, "", 2, 2},
		{"no latency", SLOConfig{Service: "gateway"}, 0.2, "policy.slo.latencyP99", 0, 0},
		{"no service", SLOConfig{LatencyP99: model.Duration(time.Second)}, 0.2, "policy.slo.service", 0, 0},
		{"negative min", SLOConfig{LatencyP99: model.Duration(time.Second), Service: "g", MinHeadroom: &neg}, 0.2, "policy.slo.minHeadroom", 0, 0},
		{"max below min", SLOConfig{LatencyP99: model.Duration(time.Second), Service: "g", MinHeadroom: &half, MaxHeadroom: 0.3}, 0.4, "policy.slo.maxHeadroom", 0, 0},
		{"headroom outside", SLOConfig{LatencyP99: model.Duration(time.Second), Service: "g", MinHeadroom: &half}, 0.2, "policy.headroom: 0.2 is outside", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Headroom, c.SLO = tc.headroom, &tc.slo
			err := c.ValidateSettings()
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if lo, hi := tc.slo.Bounds(tc.headroom); lo != tc.lo || hi != tc.hi {
				t.Errorf("bounds [%v, %v], want [%v, %v]", lo, hi, tc.lo, tc.hi)
			}
		})
	}
}
