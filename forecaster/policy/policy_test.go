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
			Decision{Replicas: 4, Raw: 24, PeakRequests: 100, Limited: "max"}},
		{"scale down limited to 25%", "frontend", []float64{10, 10, 10, 10}, 20,
			Decision{Replicas: 15, Raw: 2, PeakRequests: 10, Limited: "scale_down_step"}},
		{"scale down at least one replica", "frontend", []float64{1}, 2,
			Decision{Replicas: 1, Raw: 1, PeakRequests: 1}},
		{"scale up unlimited", "frontend", []float64{100}, 1,
			Decision{Replicas: 12, Raw: 12, PeakRequests: 100}},
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
	if d.Replicas != 50 || d.Limited != "max" {
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
		{"unknown service", func(c *Config) { c.Services["nope"] = ServiceConfig{CapacityPerPod: 1} }, "policy.services.nope: not a service"},
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
