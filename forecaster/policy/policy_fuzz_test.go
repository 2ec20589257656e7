package policy

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// FuzzDecide: for every policy that passes Validate, DecideBursty either
// refuses a non-finite forecast with ErrBadForecast (or a burst factor
// outside [1, MaxBurst]) or returns replicas within [min, max], and max
// whenever the load, burst included, exceeds what max pods serve.
func FuzzDecide(f *testing.F) {
	type seed struct {
		f0, f1, f2                    float64
		capacity, headroom, scaleDown float64
		lo, hi, previous              int64
		podRate, latencySeconds       float64
		burst                         float64
	}
	seeds := []seed{
		{10, 50, 20, 10, 0.2, 25, 1, 100, 0, 0, 0, 1},
		// Issue 12, defect 2: 1e25 req/s after 4 replicas; 1e300; MaxFloat64.
		{1e25, 1e25, 1e25, 10, 0.2, 25, 1, 100, 4, 0, 0, 1},
		{1, 1e300, 1, 10, 0.2, 25, 1, 100, 4, 0, 0, 1},
		{math.MaxFloat64, 0, 0, 10, 10, 25, 1, 100, 4, 0, 0, 1},
		{9.3e19, 0, 0, 10, 0, 25, 1, 100, 4, 0, 0, 1},
		{1000, 0, 0, 1e-6, 0.2, 25, 1, 1_000_000, 999_999, 0, 0, 1},
		{1, 1, 1, 1e-300, 0.2, 25, 1, 100, 4, 0, 0, 1}, // refused by Validate
		{math.NaN(), 1, 1, 10, 0.2, 25, 1, 100, 4, 0, 0, 1},
		{1, math.Inf(1), 1, 10, 0.2, 25, 1, 100, 4, 0, 0, 1},
		{math.Inf(-1), 1, 1, 10, 0.2, 25, 1, 100, 4, 0, 0, 1},
		{-5, -3, -1, 10, 0.2, 25, 1, 100, 20, 0, 0, 1},
		{10, 10, 10, 10, 0.2, 25, 1, 100, 20, 0, 0, 1},
		{10, 10, 10, 10, 0.2, 100, 3, 7, math.MaxInt64, 0, 0, 1},
		// Queueing sizing: ordinary, huge, just past max.
		{1000, 0, 0, 0, 0, 25, 1, 50, 0, 100, 0.1, 1},
		{1e25, 0, 0, 0, 0, 25, 1, 50, 4, 100, 0.1, 1},
		{5000, 0, 0, 0, 0.2, 25, 1, 50, 40, 100, 0.1, 1},
		// Burst factors: ordinary, the bound, past it, below 1, NaN.
		{100, 120, 90, 10, 0.2, 25, 1, 100, 0, 0, 0, 1.3},
		{100, 0, 0, 10, 0.2, 25, 1, 100, 0, 0, 0, MaxBurst},
		{100, 0, 0, 10, 0.2, 25, 1, 100, 0, 0, 0, 5},
		{100, 0, 0, 10, 0.2, 25, 1, 100, 0, 0, 0, 0.5},
		{100, 0, 0, 10, 0.2, 25, 1, 100, 0, 0, 0, math.NaN()},
		{1e25, 0, 0, 0, 0, 25, 1, 50, 4, 100, 0.1, 3},
	}
	for _, s := range seeds {
		f.Add(s.f0, s.f1, s.f2, s.capacity, s.headroom, s.scaleDown, s.lo, s.hi, s.previous, s.podRate, s.latencySeconds, s.burst)
	}
	f.Fuzz(func(t *testing.T, f0, f1, f2, capacity, headroom, scaleDown float64, lo, hi, previous int64, podRate, latencySeconds, burst float64) {
		c := Default()
		c.Headroom, c.MaxScaleDownPercent = headroom, scaleDown
		c.MinReplicas, c.MaxReplicas = lo, hi
		c.CapacityPerPod = capacity
		queueing := podRate != 0 || latencySeconds != 0
		if queueing {
			if !(latencySeconds > 0 && latencySeconds <= 3600) {
				return // not a duration Validate could be given
			}
			// The M/M/c search costs O(pods²) for a load just below a very
			// large max (seconds at 600k pods); that is ServersFor's cost,
			// not a wrong number, so keep the fuzzer's inputs fast.
			if hi > 10_000 {
				return
			}
			c.Services = map[string]ServiceConfig{"svc": {PodRate: podRate, LatencyP99: model.Duration(latencySeconds * float64(time.Second))}}
		}
		if c.Validate([]string{"svc"}) != nil {
			return
		}
		forecast := []float64{f0, f1, f2}
		d, err := c.DecideBursty("svc", forecast, burst, 30*time.Second, previous)
		if !(burst >= 1 && burst <= MaxBurst) {
			if err == nil {
				t.Fatalf("burst factor %v accepted: %+v", burst, d)
			}
			return
		}
		finite := true
		for _, v := range forecast[:c.LeadSteps(30*time.Second, len(forecast))] {
			finite = finite && !math.IsNaN(v) && !math.IsInf(v, 0)
		}
		if !finite {
			if !errors.Is(err, ErrBadForecast) {
				t.Fatalf("forecast %v: error %v, want ErrBadForecast", forecast, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("forecast %v with a valid policy %+v: %v", forecast, c, err)
		}
		if d.Replicas < lo || d.Replicas > hi {
			t.Fatalf("Decide = %+v, outside [%d, %d]", d, lo, hi)
		}
		if d.Raw < 0 {
			t.Fatalf("Raw = %d wrapped negative", d.Raw)
		}
		if math.IsNaN(d.PeakRequests) || math.IsInf(d.PeakRequests, 0) || d.PeakRequests < 0 {
			t.Fatalf("PeakRequests = %v", d.PeakRequests)
		}
		if d.Saturated != (d.Raw > hi) || d.Saturated && (d.Replicas != hi || d.Limited != "max") {
			t.Fatalf("Decide = %+v: Saturated must mean Raw > max %d and Replicas = max", d, hi)
		}
		// The load is what max pods cannot serve, so the answer is max
		// (in float64, as Decide must; +Inf counts).
		perPod := capacity
		if queueing {
			perPod = podRate // at 100 % busy: the queue needs even more
		}
		load := d.PeakRequests * burst * (1 + headroom) / perPod
		if load > float64(hi) && d.Replicas != hi {
			t.Fatalf("load of %v pods over max %d gave %+v, want max", load, hi, d)
		}
		// Never fewer pods than the load needs at full use, unless max.
		if need := math.Min(math.Ceil(load), float64(hi)); float64(d.Replicas) < need {
			t.Fatalf("load of %v pods gave %+v, want at least %v", load, d, need)
		}
		// Sizing from CPU is the same rule with cores per pod.
		if !queueing && burst == 1 && capacity >= minCores && capacity <= maxCores {
			cpu := c
			cpu.CapacityPerPod, cpu.CPUPerPod = 0, capacity
			if dc, err := cpu.DecideCPU("svc", forecast, 30*time.Second, previous); err != nil || dc != d {
				t.Fatalf("DecideCPU = %+v, %v; want Decide's %+v", dc, err, d)
			}
		}
	})
}
