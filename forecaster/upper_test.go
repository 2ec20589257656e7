package forecaster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/foresightscale/foresight/forecaster/conformal"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/models/onnxbuild"
)

// A last-value model run by the real ONNX runtime: window 3, horizon 4, a
// 30 s step. Its point forecast of requests and CPU is the window's last
// value at every step; with upper outputs, its P90 is that plus upperGap
// training standard deviations (+50 req/s, +0.5 cores): far more than its
// errors on the replay below, so a test tells which bound sized a service.
const (
	upperWindow  = 3
	upperHorizon = 4
	upperStep    = 30 * time.Second
	upperGap     = 5
)

var upperStats = map[source.Feature]model.Stats{
	source.Requests: {Mean: []float64{300, 150}, Std: []float64{10, 10}},
	source.CPU:      {Mean: []float64{3, 1.5}, Std: []float64{0.1, 0.1}},
}

func upperModel(t testing.TB, withUpper bool) (*model.Manifest, Predictor) {
	t.Helper()
	nF, nN := 2, len(services)
	rows := nF * upperWindow
	lastRow := func(row int) []float32 {
		w := make([]float32, upperHorizon*rows)
		for h := range upperHorizon {
			w[h*rows+row] = 1
		}
		return w
	}
	gap := make([]float32, upperHorizon*nN)
	for i := range gap {
		gap[i] = upperGap
	}
	b := onnxbuild.New("last-value")
	x := b.Input("x", []int{rows, nN})
	req := b.MatMul(b.Initializer("requests_w", []int{upperHorizon, rows}, lastRow(upperWindow-1)), x)
	cpu := b.MatMul(b.Initializer("cpu_w", []int{upperHorizon, rows}, lastRow(2*upperWindow-1)), x)
	b.Output(req, "requests")
	b.Output(cpu, "cpu")
	outputs := []model.Output{
		{Tensor: model.Tensor{Name: "requests", Shape: []int{upperHorizon, nN}}, Feature: source.Requests, Quantile: 0.5},
		{Tensor: model.Tensor{Name: "cpu", Shape: []int{upperHorizon, nN}}, Feature: source.CPU, Quantile: 0.5},
	}
	if withUpper {
		b.Output(b.Add(req, b.Initializer("requests_gap", []int{upperHorizon, nN}, gap)), "requests_p90")
		b.Output(b.Add(cpu, b.Initializer("cpu_gap", []int{upperHorizon, nN}, gap)), "cpu_p90")
		outputs = append(outputs,
			model.Output{Tensor: model.Tensor{Name: "requests_p90", Shape: []int{upperHorizon, nN}}, Feature: source.Requests, Quantile: 0.9},
			model.Output{Tensor: model.Tensor{Name: "cpu_p90", Shape: []int{upperHorizon, nN}}, Feature: source.CPU, Quantile: 0.9})
	}
	onnx, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	man := &model.Manifest{
		Format: model.ManifestFormat, Name: "last-value", Version: "test",
		Services: services,
		Features: []source.Feature{source.Requests, source.CPU},
		Window:   upperWindow, Horizon: upperHorizon, Step: model.Duration(upperStep),
		Input:         model.Tensor{Name: "x", Shape: []int{rows, nN}},
		Outputs:       outputs,
		Normalization: upperStats,
	}
	for i := range rows * nN {
		man.Golden.Input = append(man.Golden.Input, math.Sin(float64(i)))
	}
	if man.Golden.Outputs, err = model.ComputeGolden(onnx, man); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Parse(onnx, js)
	if err != nil {
		t.Fatal(err)
	}
	session, err := m.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	return m.Manifest(), session
}

// upperReplay is a load the last-value model forecasts well: a ramp with a
// jitter of 0..12 req/s, so its errors are small and varied. gap says which
// samples are missing (an empty CSV cell): the window fills them, and a
// filled step must not be scored as an error of the model.
type upperReplay struct {
	gap func(svc string, k int) bool
}

// cartEvery7 leaves out every seventh sample of cart: filled, never held.
var cartEvery7 = upperReplay{gap: func(svc string, k int) bool { return svc == "cart" && k%7 == 3 }}

// load is the request rate of svc at step k from now (NaN: no sample).
func (r upperReplay) load(svc string, k int) float64 {
	if r.gap(svc, k) {
		return math.NaN()
	}
	return rampBase[svc] + float64(k) + 3*float64((k*7)%5)
}

// csv records the load (CPU a hundredth of it) from step first to step
// last, in the wide CSV format the csv source replays.
func (r upperReplay) csv(t testing.TB, first, last int) *source.CSV {
	t.Helper()
	var b strings.Builder
	b.WriteString("timestamp")
	for _, svc := range services {
		for _, feat := range []source.Feature{source.Requests, source.CPU} {
			col, err := source.CSVColumn(svc, feat)
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString("," + col)
		}
	}
	b.WriteString("\n")
	cell := func(v float64) string {
		if math.IsNaN(v) {
			return ""
		}
		return fmt.Sprint(v)
	}
	for k := first; k <= last; k++ {
		b.WriteString(now.Add(time.Duration(k) * upperStep).Format(time.RFC3339))
		for _, svc := range services {
			v := r.load(svc, k)
			fmt.Fprintf(&b, ",%s,%s", cell(v), cell(v/100))
		}
		b.WriteString("\n")
	}
	c, err := source.ParseCSV(strings.NewReader(b.String()), "upper.csv", source.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func upperForecaster(t testing.TB, m *model.Manifest, pred Predictor, src source.Source, adaptive bool) (*Forecaster, *prometheus.Registry, *bytes.Buffer) {
	t.Helper()
	pol := policy.Default()
	pol.CapacityPerPod = 10
	pol.Headroom = 0
	pol.MaxReplicas = 100
	pol.MaxScaleDownPercent = 100 // each cycle's replicas follow its own forecast
	pol.AdaptiveUpper = adaptive
	reg := prometheus.NewRegistry()
	logs := &bytes.Buffer{}
	f, err := New(Options{
		Source: src, Manifest: m, Predictor: pred, Policy: pol, Store: &snapshot.Store{},
		StaleAfter: 2 * time.Minute, Registerer: reg, Now: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, reg, logs
}

// held says whether the forecast at origin o is held as stale input: the
// newest sample at or before o is older than maxInputAge (its default, 2m:
// four steps). Shorter gaps are carried (within the 5m lookback) and trusted.
func (r upperReplay) held(svc string, o int) bool {
	s := o
	for ; r.gap(svc, s); s-- {
	}
	return time.Duration(o-s)*upperStep > DefaultMaxInputAge
}

// expected computes, from the replay alone, what the loop should size svc
// from at the cycle whose window ends at step k, after forecasts from the
// given origins (the window ends of the cycles so far, k the last), and on
// how many errors that rests (0: the model's own bound). scale turns
// requests into the feature (1/100 for CPU). The last-value forecast made
// at origin o is the last sample at or before o (the window carries it over
// a gap); its error at horizon step h is the sample of step o+h+1, where
// there is one, unless the service was held at o.
func (r upperReplay) expected(svc string, k int, origins []int, scale, std float64, withUpper, adaptive bool) (peak float64, errors int) {
	last := func(s int) float64 {
		for ; math.IsNaN(r.load(svc, s)); s-- {
		}
		return r.load(svc, s) * scale
	}
	p50 := last(k)
	if !withUpper {
		return p50, 0
	}
	own := p50 + upperGap*std
	if !adaptive {
		return own, 0
	}
	bound := make([]float64, upperHorizon)
	errors = -1
	for h := range upperHorizon {
		var errs []float64
		for _, o := range origins {
			if o+h+1 > k || r.held(svc, o) {
				continue
			}
			if a := r.load(svc, o+h+1); !math.IsNaN(a) {
				errs = append(errs, a*scale-last(o))
			}
		}
		if len(errs) > conformal.DefaultWindow {
			errs = errs[len(errs)-conformal.DefaultWindow:]
		}
		if len(errs) < conformal.DefaultMinResiduals {
			return own, 0
		}
		if errors < 0 || len(errs) < errors {
			errors = len(errs)
		}
		slices.Sort(errs)
		q := errs[int(math.Ceil(0.9*float64(len(errs))))-1]
		bound[h] = p50 + math.Max(0, q)
	}
	return slices.Max(bound), errors
}

// runUpper runs a cycle at each of times and checks every published
// prediction against r.expected. It returns the cycle index at which each
// service first used the adaptive bound.
func runUpper(t *testing.T, f *Forecaster, r upperReplay, times []time.Time, withUpper, adaptive bool) map[string]int {
	t.Helper()
	switched := map[string]int{}
	var origins []int
	for i, at := range times {
		k := int(at.Truncate(upperStep).Sub(now) / upperStep)
		if len(origins) == 0 || origins[len(origins)-1] != k {
			origins = append(origins, k)
		}
		snap, err := f.Cycle(context.Background(), at)
		if err != nil {
			t.Fatalf("cycle %d at step %d: %v", i, k, err)
		}
		got := byService(snap)
		for n, svc := range services {
			p := got[svc]
			if r.held(svc, k) {
				if p.HeldReason == "" {
					t.Fatalf("cycle %d: %s fresh from input older than %v", i, svc, DefaultMaxInputAge)
				}
				continue
			}
			if p.HeldReason != "" {
				t.Fatalf("cycle %d: %s held: %s", i, svc, p.HeldReason)
			}
			wantReq, nReq := r.expected(svc, k, origins, 1, upperStats[source.Requests].Std[n], withUpper, adaptive)
			wantCPU, nCPU := r.expected(svc, k, origins, 0.01, upperStats[source.CPU].Std[n], withUpper, adaptive)
			if math.Abs(p.PredictedRequests-wantReq) > 1e-3 || math.Abs(p.PredictedCPUCores-wantCPU) > 1e-5 {
				t.Fatalf("cycle %d at step %d: %s sized from %v req/s and %v cores, want %v (%d errors) and %v (%d errors)",
					i, k, svc, p.PredictedRequests, p.PredictedCPUCores, wantReq, nReq, wantCPU, nCPU)
			}
			if lo, hi := int64(math.Ceil((wantReq-1e-3)/10)), int64(math.Ceil((wantReq+1e-3)/10)); p.PredictedReplicas < lo || p.PredictedReplicas > hi {
				t.Fatalf("cycle %d: %s: %d replicas, want %d (%v req/s at 10 a pod)", i, svc, p.PredictedReplicas, lo, wantReq)
			}
			if _, ok := switched[svc]; nReq > 0 && !ok {
				switched[svc] = i
			}
			if f.upperRequests == nil {
				continue
			}
			for feat, want := range map[source.Feature]int{source.Requests: nReq, source.CPU: nCPU} {
				if g := testutil.ToFloat64(f.metrics.upperBoundErrors.WithLabelValues(svc, string(feat))); g != float64(want) {
					t.Fatalf("cycle %d: foresight_upper_bound_errors{%s,%s} = %v, want %d", i, svc, feat, g, want)
				}
			}
		}
	}
	return switched
}

// everyStep are the times of cycles every interval from now until step last.
func everyStep(interval time.Duration, last int) []time.Time {
	var out []time.Time
	for at := now; !at.After(now.Add(time.Duration(last) * upperStep)); at = at.Add(interval) {
		out = append(out, at)
	}
	return out
}

// TestAdaptiveUpperBound replays a load the last-value model forecasts
// well: with policy.adaptiveUpper a P90 model's services are sized from
// their P90 until DefaultMinResiduals errors exist at every horizon step,
// then from the point forecast plus the 90th percentile of its recent
// errors, both for requests (replicas) and CPU; filled gaps are not scored.
// Without the key, or without a P90 output, nothing changes.
func TestAdaptiveUpperBound(t *testing.T) {
	const cycles = 90
	tests := []struct {
		name                string
		withUpper, adaptive bool
	}{
		{"P90 model, adaptive", true, true},
		{"P90 model, adaptiveUpper false", true, false},
		{"point-only model", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, pred := upperModel(t, tc.withUpper)
			src := cartEvery7.csv(t, -20, cycles+5)
			f, reg, logs := upperForecaster(t, m, pred, src, tc.adaptive)
			if got := f.upperRequests != nil || f.upperCPU != nil; got != (tc.withUpper && tc.adaptive) {
				t.Fatalf("adaptive bounds kept: %v", got)
			}
			switched := runUpper(t, f, cartEvery7, everyStep(upperStep, cycles-1), tc.withUpper, tc.adaptive)
			if !tc.withUpper || !tc.adaptive {
				if n := testutil.CollectAndCount(reg, "foresight_upper_bound_errors"); n != 0 {
					t.Errorf("%d foresight_upper_bound_errors series without an adaptive bound", n)
				}
				if len(switched) != 0 {
					t.Errorf("switched: %v", switched)
				}
				return
			}
			// Every origin's forecast for its fourth step is scored three
			// cycles after the next, so 60 errors at every step first exist
			// at cycle 63; cart's gaps delay it.
			if switched["frontend"] != conformal.DefaultMinResiduals+upperHorizon-1 || switched["cart"] <= switched["frontend"] {
				t.Errorf("adaptive from cycle %v, want frontend at %d and cart later", switched, conformal.DefaultMinResiduals+upperHorizon-1)
			}
			for _, svc := range services {
				n := 0
				for _, line := range strings.Split(logs.String(), "\n") {
					if strings.Contains(line, "sizing from the upper bound of the model's recent errors") &&
						strings.Contains(line, " service="+svc+" features=requests,cpu ") {
						n++
						if !strings.Contains(line, fmt.Sprintf(" errors=%d ", conformal.DefaultMinResiduals)) {
							t.Errorf("switch logged as %s; want the %d errors it rests on", line, conformal.DefaultMinResiduals)
						}
					}
				}
				if n != 1 {
					t.Errorf("%s: the switch to the adaptive bound logged %d times, want once\n%s", svc, n, logs)
				}
			}

			// A restart forgets the errors: the model's own bound again.
			restarted, _, _ := upperForecaster(t, m, pred, src, true)
			snap, err := restarted.Cycle(context.Background(), now.Add(cycles*upperStep))
			if err != nil {
				t.Fatal(err)
			}
			for n, svc := range services {
				want := cartEvery7.load(svc, cycles) + upperGap*upperStats[source.Requests].Std[n]
				if math.IsNaN(want) {
					continue
				}
				if got := byService(snap)[svc].PredictedRequests; math.Abs(got-want) > 1e-3 {
					t.Errorf("after a restart %s is sized from %v req/s, want the model's P90 %v", svc, got, want)
				}
			}
		})
	}
}

// TestAdaptiveUpperBoundIntervalAndHeld: the step index follows the
// window's steps whatever the interval (several cycles sharing one window
// end score each step once and keep one forecast of that origin; cycles
// further apart than the step score fewer origins), and a forecast from a
// window too gappy to trust is never scored.
func TestAdaptiveUpperBoundIntervalAndHeld(t *testing.T) {
	cartOutages := upperReplay{gap: func(svc string, k int) bool {
		return svc == "cart" && k >= 30 && k%30 < 7
	}}
	tests := []struct {
		name     string
		replay   upperReplay
		interval time.Duration
		lastStep int
	}{
		{"interval a third of the step", cartEvery7, upperStep / 3, 89},
		{"interval 2.5 steps", cartEvery7, upperStep * 5 / 2, 200},
		{"stale input held", cartOutages, upperStep, 110},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, pred := upperModel(t, true)
			f, _, _ := upperForecaster(t, m, pred, tc.replay.csv(t, -20, tc.lastStep+5), true)
			switched := runUpper(t, f, tc.replay, everyStep(tc.interval, tc.lastStep), true, true)
			if len(switched) != len(services) {
				t.Errorf("services that reached the adaptive bound: %v, want all", switched)
			}
		})
	}
}
