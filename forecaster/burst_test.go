package forecaster

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
)

// burstData builds requests and requests_peak samples at a 30 s step
// ending at end, one pair per element (NaN leaves a value out).
func burstData(end time.Time, svc string, means, peaks []float64) source.Data {
	d := source.Data{}
	n := len(means)
	for i := range n {
		at := end.Add(-time.Duration(n-1-i) * 30 * time.Second)
		if !math.IsNaN(means[i]) {
			d.Add(source.Requests, svc, source.Sample{Time: at, Value: means[i]})
		}
		if !math.IsNaN(peaks[i]) {
			d.Add(source.RequestsPeak, svc, source.Sample{Time: at, Value: peaks[i]})
		}
	}
	return d
}

func TestBurstFactors(t *testing.T) {
	end := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	nan := math.NaN()
	cfg := policy.BurstConfig{Enabled: true, Quantile: 0.75, Steps: 8}
	tests := []struct {
		name         string
		means, peaks []float64
		cfg          policy.BurstConfig
		want         float64 // 0: no entry (factor 1)
	}{
		{"steady load", []float64{100, 100, 100, 100}, []float64{100, 100, 100, 100}, cfg, 1},
		{"peaks 1.2x", []float64{100, 100, 100, 100}, []float64{120, 120, 120, 120}, cfg, 1.2},
		// Ratios 1.1 1.2 1.3 1.4: the smallest with 75 % at or below it.
		{"quantile of the ratios", []float64{100, 100, 100, 100}, []float64{110, 140, 120, 130}, cfg, 1.3},
		// One onset (4x) among calm steps does not set the factor.
		{"one onset", []float64{100, 100, 100, 100, 100, 100, 100, 100}, []float64{105, 105, 105, 400, 105, 105, 105, 105}, cfg, 1.05},
		// Only the last Steps steps count: the old 2x is forgotten.
		{"old steps forgotten", []float64{100, 100, 100, 100, 100, 100, 100, 100, 100, 100}, []float64{200, 200, 110, 110, 110, 110, 110, 110, 110, 110}, cfg, 1.1},
		// A peak below the mean (the windows differ) is no burst.
		{"peak below mean", []float64{100, 100, 100}, []float64{90, 95, 99}, cfg, 1},
		{"bounded", []float64{1, 1, 1}, []float64{1e9, 1e9, 1e9}, cfg, policy.MaxBurst},
		{"too few pairs", []float64{100, 100}, []float64{150, 150}, cfg, 0},
		{"idle service: no ratio", []float64{0, 0, 0, 0}, []float64{0, 5, 0, 0}, cfg, 0},
		{"gaps are skipped", []float64{100, nan, 100, 100, 100}, []float64{120, 500, nan, 120, 120}, cfg, 1.2},
		{"non-finite samples skipped", []float64{100, math.Inf(1), 100, 100, 100}, []float64{math.Inf(1), 300, 120, 120, 120}, cfg, 1.2},
		{"no peaks at all", []float64{100, 100, 100}, []float64{nan, nan, nan}, cfg, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := BurstFactors(burstData(end, "ts-order-service", tc.means, tc.peaks), end, tc.cfg)["ts-order-service"]
			switch {
			case tc.want == 0 && ok:
				t.Errorf("factor %v, want none", got)
			case tc.want != 0 && (!ok || math.Abs(got-tc.want) > 1e-12):
				t.Errorf("factor %v (present %v), want %v", got, ok, tc.want)
			}
		})
	}
	// Samples after end are not this cycle's.
	d := burstData(end.Add(2*time.Minute), "a", []float64{100, 100, 100, 100, 100, 100, 100}, []float64{110, 110, 110, 110, 300, 300, 300})
	if got := BurstFactors(d, end, cfg)["a"]; math.Abs(got-1.1) > 1e-12 {
		t.Errorf("with samples after end: factor %v, want 1.1", got)
	}
}

// FuzzBurstFactors: whatever the samples (NaN, Inf, zero, negative, huge),
// every factor is a number within [1, MaxBurst]: DecideBursty refuses any
// other, which would hold the service's prediction.
func FuzzBurstFactors(f *testing.F) {
	f.Add(100.0, 120.0, 100.0, 1e25, 0.0, 5.0, 0.75, 20)
	f.Add(math.NaN(), 1.0, math.Inf(1), math.Inf(-1), -5.0, 1e-300, 1.0, 3)
	f.Add(1e-300, 1e300, math.MaxFloat64, math.SmallestNonzeroFloat64, 3.0, 3.0, 0.01, 10000)
	f.Fuzz(func(t *testing.T, m0, p0, m1, p1, m2, p2, q float64, steps int) {
		cfg := policy.BurstConfig{Enabled: true, Quantile: q, Steps: steps}
		if !(q > 0 && q <= 1) || steps < policy.MinBurstSamples || steps > 10000 {
			return // refused by Validate
		}
		end := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		d := burstData(end, "s", []float64{m0, m1, m2, m0, m1, m2}, []float64{p0, p1, p2, p1, p2, p0})
		for svc, b := range BurstFactors(d, end, cfg) {
			if !(b >= 1 && b <= policy.MaxBurst) {
				t.Fatalf("%s: factor %v outside [1, %v]", svc, b, float64(policy.MaxBurst))
			}
		}
	})
}

// peakSource is a fakeSource that also answers requests_peak at ratio times
// each service's rate (ratio 0: no requests_peak series).
type peakSource struct {
	fakeSource
	ratio float64
}

func (s *peakSource) Fetch(ctx context.Context, q source.Query) (source.Data, error) {
	d, err := s.fakeSource.Fetch(ctx, q)
	if err != nil || s.ratio == 0 || !slices.Contains(q.Features, source.RequestsPeak) {
		return d, err
	}
	for t := q.Start; !t.After(q.End); t = t.Add(q.Step) {
		for svc, v := range s.requests {
			d.Add(source.RequestsPeak, svc, source.Sample{Time: t, Value: v * s.ratio})
		}
	}
	return d, nil
}

// TestCycleSizesForBursts: the model's and the fallback's services are
// sized for the peaks (forecast × factor); foresight_burst_factor shows the
// factor; without requests_peak data the factor is 1 and that is said once;
// policy.burst off asks for no requests_peak at all.
func TestCycleSizesForBursts(t *testing.T) {
	requests := map[string]float64{"frontend": 45, "cart": 5, "ts-new-service": 45} // the last is not in the model
	tests := []struct {
		name          string
		ratio         float64
		enabled       bool
		wantReplicas  int64 // frontend and ts-new-service, capacity 10, headroom 0
		wantFactor    float64
		wantWarnLines int
	}{
		{"peaks 1.5x the mean", 1.5, true, 7, 1.5, 0}, // ceil(45*1.5/10)
		{"no requests_peak series", 0, true, 5, 1, 1},
		{"policy.burst off", 1.5, false, 5, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &peakSource{fakeSource: fakeSource{requests: requests}, ratio: tc.ratio}
			f, logs, reg := newCoverageForecaster(t, src, func(o *Options) { o.Policy.Burst.Enabled = tc.enabled })
			var snap *snapshot.Snapshot
			for i := range 3 {
				var err error
				if snap, err = f.Cycle(context.Background(), now.Add(time.Duration(i)*30*time.Second)); err != nil {
					t.Fatal(err)
				}
			}
			got := byService(snap)
			for _, svc := range []string{"frontend", "ts-new-service"} {
				if got[svc].PredictedReplicas != tc.wantReplicas || got[svc].PredictedRequests != 45 {
					t.Errorf("%s: %d replicas for %v req/s, want %d for 45", svc, got[svc].PredictedReplicas, got[svc].PredictedRequests, tc.wantReplicas)
				}
			}
			n, err := testutil.GatherAndCount(reg, "foresight_burst_factor")
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case !tc.enabled && n != 0:
				t.Errorf("%d foresight_burst_factor series with policy.burst off", n)
			case tc.enabled && (n != 3 || testutil.ToFloat64(f.burstMetrics.factor.WithLabelValues("frontend")) != tc.wantFactor):
				t.Errorf("%d burst series, frontend's %v; want 3, %v", n, testutil.ToFloat64(f.burstMetrics.factor.WithLabelValues("frontend")), tc.wantFactor)
			}
			if c := strings.Count(logs.String(), "policy.burst: no requests_peak"); c != tc.wantWarnLines {
				t.Errorf("missing requests_peak said %d times, want %d:\n%s", c, tc.wantWarnLines, logs)
			}
			checkNoNaNGauges(t, reg)
		})
	}
}

// BenchmarkBurstFactors500: one cycle's burst factors for 500 services over
// a 40-step window (the per-cycle cost policy.burst adds).
func BenchmarkBurstFactors500(b *testing.B) {
	end := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	d := source.Data{}
	for n := range 500 {
		svc := "svc-" + strconv.Itoa(n)
		for i := range 40 {
			at := end.Add(-time.Duration(39-i) * 30 * time.Second)
			d.Add(source.Requests, svc, source.Sample{Time: at, Value: 100})
			d.Add(source.RequestsPeak, svc, source.Sample{Time: at, Value: 100 + float64(i%7)})
		}
	}
	cfg := policy.Default().Burst
	b.ReportAllocs()
	for b.Loop() {
		if len(BurstFactors(d, end, cfg)) != 500 {
			b.Fatal("missing factors")
		}
	}
}
