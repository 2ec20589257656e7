package forecaster

import (
	"context"
	"log/slog"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/foresightscale/foresight/forecaster/snapshot"
)

// cycleObs is what one cycle hands the accuracy tracker for one service.
type cycleObs struct {
	at       time.Duration // window end, after t0
	observed float64
	forecast []float64
}

// wantStep is the expected state of one step's series; a step absent from
// a case's want map must have no series at all (never a made-up zero).
type wantStep struct {
	meanError   float64
	evaluations float64
}

func newTestAccuracy(t *testing.T, horizon, window int) (*accuracy, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return newAccuracy(30*time.Second, horizon, window, m, slog.New(slog.DiscardHandler)), reg
}

func run(a *accuracy, svc string, cycles []cycleObs) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range cycles {
		a.observe(t0.Add(c.at), map[string]snapshot.Prediction{
			svc: {Service: svc, ObservedRequests: c.observed, RequestsByStep: c.forecast},
		})
	}
}

func TestAccuracyScoresForecastsAgainstLaterObservations(t *testing.T) {
	s := time.Second
	nan := math.NaN()
	tests := []struct {
		name   string
		cycles []cycleObs
		want   map[int]wantStep
	}{
		{
			// By hand: step 1 errors |12-11|, |13-15|, |20-18| = 1, 2, 2;
			// step 2 errors |14-15|, |15-18| = 1, 3; step 3 |16-18| = 2.
			name: "exact errors, one cycle per step",
			cycles: []cycleObs{
				{0, 10, []float64{12, 14, 16}},
				{30 * s, 11, []float64{13, 15, 17}},
				{60 * s, 15, []float64{20, 20, 20}},
				{90 * s, 18, []float64{1, 1, 1}},
			},
			want: map[int]wantStep{1: {5.0 / 3, 3}, 2: {2, 2}, 3: {2, 1}},
		},
		{
			// The same sequence with cycle times up to 5 s off the step grid
			// (less than half a step): the same matches, the same errors.
			name: "jittered cycle times",
			cycles: []cycleObs{
				{3 * s, 10, []float64{12, 14, 16}},
				{26 * s, 11, []float64{13, 15, 17}},
				{65 * s, 15, []float64{20, 20, 20}},
				{88 * s, 18, []float64{1, 1, 1}},
			},
			want: map[int]wantStep{1: {5.0 / 3, 3}, 2: {2, 2}, 3: {2, 1}},
		},
		{
			// The loop may run more often than the step: a later forecast
			// from the same step replaces the earlier one, and a target is
			// scored once, by the first observation of its step.
			name: "several cycles per step",
			cycles: []cycleObs{
				{0, 10, []float64{12, 14}},
				{10 * s, 10, []float64{13, 15}},
				{30 * s, 11, []float64{30, 30}}, // step 1 of origin 0: |13-11| = 2
				{40 * s, 99, []float64{31, 31}}, // same step: no second score
				{60 * s, 16, []float64{0, 0}},   // |15-16| = 1 (k=2), |31-16| = 15 (k=1)
			},
			want: map[int]wantStep{1: {(2 + 15) / 2.0, 2}, 2: {1, 1}},
		},
		{
			// A target is never scored against an unknown or invalid
			// observation; a later cycle in the same step still scores it.
			name: "unknown observations skipped",
			cycles: []cycleObs{
				{0, 10, []float64{12, 14}},
				{30 * s, nan, []float64{20, 20}},
				{35 * s, math.Inf(1), []float64{20, 20}},
				{40 * s, -1, []float64{20, 20}},
				{44 * s, 11, []float64{20, 20}}, // |12-11| = 1
				{60 * s, nan, []float64{20, 20}},
				{90 * s, nan, []float64{20, 20}},
			},
			want: map[int]wantStep{1: {1, 1}},
		},
		{
			name: "invalid forecasts never scored",
			cycles: []cycleObs{
				{0, 10, []float64{nan, 14}},
				{30 * s, 11, []float64{math.Inf(1), 20}},
				{60 * s, 15, nil}, // |14-15| = 1 (k=2); k=1 of origin 30 is +Inf
			},
			want: map[int]wantStep{2: {1, 1}},
		},
		{
			name: "observations before the first target or past the last are not matched",
			cycles: []cycleObs{
				{0, 10, []float64{12}},
				{14 * s, 11, nil},  // less than half a step ahead: same step
				{46 * s, 20, nil},  // 1.53 steps ahead: nearest target is step 2, not forecast
				{-30 * s, 20, nil}, // the clock went back
			},
			want: map[int]wantStep{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, reg := newTestAccuracy(t, 3, AccuracyWindow)
			run(a, "frontend", tc.cycles)
			checkAccuracySeries(t, reg, "frontend", tc.want)
		})
	}
}

// checkAccuracySeries compares the exported series of svc with want.
func checkAccuracySeries(t *testing.T, reg *prometheus.Registry, svc string, want map[int]wantStep) {
	t.Helper()
	got := map[string]map[int]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		name := mf.GetName()
		if name != "foresight_forecast_absolute_error" && name != "foresight_forecast_evaluations_total" {
			continue
		}
		got[name] = map[int]float64{}
		for _, m := range mf.GetMetric() {
			labels := labelMap(m)
			if labels["service"] != svc {
				t.Errorf("%s has a series for service %q", name, labels["service"])
				continue
			}
			k, err := strconv.Atoi(labels["step"])
			if err != nil {
				t.Fatalf("%s: step label %q: %v", name, labels["step"], err)
			}
			v := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				v = m.GetCounter().GetValue()
			}
			got[name][k] = v
		}
	}
	errs, evals := got["foresight_forecast_absolute_error"], got["foresight_forecast_evaluations_total"]
	if len(errs) != len(want) || len(evals) != len(want) {
		t.Errorf("series for steps: errors %v, evaluations %v; want steps of %v", errs, evals, want)
	}
	for k, w := range want {
		if e, ok := errs[k]; !ok || math.Abs(e-w.meanError) > 1e-12 {
			t.Errorf("step %d: mean absolute error %v (present %v), want %v", k, e, ok, w.meanError)
		}
		if evals[k] != w.evaluations {
			t.Errorf("step %d: %v evaluations, want %v", k, evals[k], w.evaluations)
		}
	}
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestAccuracyMemoryIsBounded(t *testing.T) {
	tests := []struct {
		name     string
		horizon  int
		observed func(i int) float64
	}{
		{"every observation known", 3, func(i int) float64 { return float64(i) }},
		{"no observation ever known", 3, func(int) float64 { return math.NaN() }},
		{"every other observation known", 5, func(i int) float64 {
			if i%2 == 0 {
				return math.NaN()
			}
			return 1
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := newTestAccuracy(t, tc.horizon, 4)
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			forecast := make([]float64, tc.horizon)
			for i := range 200 {
				// Two cycles per step, as with a loop interval of half the step.
				at := t0.Add(time.Duration(i) * 15 * time.Second)
				a.observe(at, map[string]snapshot.Prediction{"cart": {ObservedRequests: tc.observed(i), RequestsByStep: forecast}})
				if n := len(a.forecasts["cart"]); n > tc.horizon {
					t.Fatalf("cycle %d: %d forecasts kept, more than the horizon %d", i, n, tc.horizon)
				}
			}
			if len(a.errors) > tc.horizon {
				t.Errorf("%d error series, more than one per step", len(a.errors))
			}
			for k, r := range a.errors {
				if len(r.values) != 4 {
					t.Errorf("%v: rolling window of %d values, want 4", k, len(r.values))
				}
			}
		})
	}
}

func TestRollingMeanForgetsOldValues(t *testing.T) {
	tests := []struct {
		name   string
		window int
		values []float64
		want   float64
	}{
		{"partly filled", 4, []float64{1, 2}, 1.5},
		{"exactly full", 4, []float64{1, 2, 3, 6}, 3},
		{"wrapped: the first two are gone", 4, []float64{100, 100, 1, 2, 3, 6}, 3},
		{"window of one", 1, []float64{5, 7}, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRollingMean(tc.window)
			for _, v := range tc.values {
				r.add(v)
			}
			if got := r.mean(); got != tc.want {
				t.Errorf("mean = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCycleExportsForecastAccuracy: the hook in Cycle scores the real loop's
// forecasts (the last-value predictor forecasts the latest rate at every step).
func TestCycleExportsForecastAccuracy(t *testing.T) {
	src := &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5}}
	f, _, reg := newTestForecaster(t, src, &lastValuePredictor{})
	step := 30 * time.Second
	for i, rates := range []map[string]float64{
		{"frontend": 45, "cart": 5},
		{"frontend": 50, "cart": 5}, // step 1 of cycle 0: frontend off by 5, cart exact
		{"frontend": 44, "cart": 5}, // step 2 of cycle 0: off by 1; step 1 of cycle 1: off by 6
	} {
		src.requests = rates
		if _, err := f.Cycle(context.Background(), now.Add(time.Duration(i)*step)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		service, step string
		meanError     float64
		evaluations   float64
	}{
		{"frontend", "1", 5.5, 2},
		{"frontend", "2", 1, 1},
		{"cart", "1", 0, 2},
		{"cart", "2", 0, 1},
	}
	for _, tc := range tests {
		if got := testutil.ToFloat64(f.metrics.forecastAbsError.WithLabelValues(tc.service, tc.step)); got != tc.meanError {
			t.Errorf("%s step %s: mean absolute error %v, want %v", tc.service, tc.step, got, tc.meanError)
		}
		if got := testutil.ToFloat64(f.metrics.forecastEvaluations.WithLabelValues(tc.service, tc.step)); got != tc.evaluations {
			t.Errorf("%s step %s: %v evaluations, want %v", tc.service, tc.step, got, tc.evaluations)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "foresight_forecast_absolute_error"); err != nil || n != len(tests) {
		t.Errorf("%d error series (%v), want %d: no step is exported before it is scored", n, err, len(tests))
	}
}
