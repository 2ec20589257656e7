package forecaster

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/foresightscale/foresight/forecaster/budget"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/forecaster/window"
)

// The unit tests use a fake source and predictor; the real model runtime and
// sources are exercised in their own packages and the integration tests.

var services = []string{"frontend", "cart"}

func testManifest() *model.Manifest {
	stats := model.Stats{Mean: []float64{0, 0}, Std: []float64{1, 1}}
	return &model.Manifest{
		Format: model.ManifestFormat, Name: "test", Version: "1",
		Services: services,
		Features: []source.Feature{source.Requests, source.CPU},
		Window:   3, Horizon: 4, Step: model.Duration(30 * time.Second),
		Input: model.Tensor{Name: "x", Shape: []int{6, 2}},
		Outputs: []model.Output{
			{Tensor: model.Tensor{Name: "requests", Shape: []int{4, 2}}, Feature: source.Requests, Quantile: 0.5},
			{Tensor: model.Tensor{Name: "cpu", Shape: []int{4, 2}}, Feature: source.CPU, Quantile: 0.5},
		},
		Normalization: map[source.Feature]model.Stats{source.Requests: stats, source.CPU: stats},
		CallGraph:     []topology.Edge{{Caller: "frontend", Callee: "cart", FanOut: 1}},
	}
}

// lastValuePredictor forecasts every step as the window's last value, so
// the expected replicas follow directly from the fake data.
type lastValuePredictor struct {
	err   error
	value float64 // when non-zero, every output value
	calls int
}

func (p *lastValuePredictor) Predict(x []float64) (map[string][]float64, error) {
	p.calls++
	if p.err != nil {
		return nil, p.err
	}
	out := map[string][]float64{"requests": make([]float64, 8), "cpu": make([]float64, 8)}
	for h := range 4 {
		for n := range 2 {
			out["requests"][h*2+n] = x[2*2+n] // requests block, last row
			out["cpu"][h*2+n] = x[5*2+n]      // cpu block, last row
			if p.value != 0 {
				out["requests"][h*2+n], out["cpu"][h*2+n] = p.value, p.value
			}
		}
	}
	return out, nil
}

// fakeSource returns constant series per service, or an error.
type fakeSource struct {
	requests map[string]float64 // a service absent here has no data
	err      error
}

func (s *fakeSource) Name() string { return "fake" }

func (s *fakeSource) Fetch(_ context.Context, q source.Query) (source.Data, error) {
	if s.err != nil {
		return nil, s.err
	}
	d := source.Data{}
	for t := q.Start; !t.After(q.End); t = t.Add(q.Step) {
		for svc, v := range s.requests {
			d.Add(source.Requests, svc, source.Sample{Time: t, Value: v})
			d.Add(source.CPU, svc, source.Sample{Time: t, Value: v / 100})
		}
	}
	return d, nil
}

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func newTestForecaster(t *testing.T, src source.Source, pred Predictor) (*Forecaster, *snapshot.Store, *prometheus.Registry) {
	t.Helper()
	pol := policy.Default()
	pol.CapacityPerPod = 10
	pol.Headroom = 0
	store := &snapshot.Store{}
	reg := prometheus.NewRegistry()
	f, err := New(Options{
		Source: src, Manifest: testManifest(), Predictor: pred, Policy: pol, Store: store,
		StaleAfter: 2 * time.Minute, Registerer: reg, Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, store, reg
}

func byService(s *snapshot.Snapshot) map[string]snapshot.Prediction {
	out := map[string]snapshot.Prediction{}
	for _, p := range s.Predictions {
		out[p.Service] = p
	}
	return out
}

func TestCyclePublishesPredictions(t *testing.T) {
	src := &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5}}
	f, store, reg := newTestForecaster(t, src, &lastValuePredictor{})
	if f.Ready() == nil {
		t.Fatal("ready before the first cycle")
	}
	snap, err := f.Cycle(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if store.Latest() != snap {
		t.Fatal("snapshot not published")
	}
	got := byService(snap)
	if got["frontend"].PredictedReplicas != 5 || got["cart"].PredictedReplicas != 1 {
		t.Errorf("replicas = %d, %d; want 5, 1", got["frontend"].PredictedReplicas, got["cart"].PredictedReplicas)
	}
	if got["frontend"].PredictedRequests != 45 || math.Abs(got["frontend"].PredictedCPUCores-0.45) > 1e-12 {
		t.Errorf("frontend requests %v cpu %v", got["frontend"].PredictedRequests, got["frontend"].PredictedCPUCores)
	}
	// The observed values come from the window: requests and CPU are read
	// by this model, replicas and memory are not (NaN, never a made-up 0).
	if fe := got["frontend"]; fe.ObservedRequests != 45 || math.Abs(fe.ObservedCPUCores-0.45) > 1e-12 ||
		!math.IsNaN(fe.ObservedReplicas) || !math.IsNaN(fe.PeakMemoryPerPodBytes) {
		t.Errorf("frontend observed requests %v cpu %v replicas %v memory/pod %v; want 45, 0.45, NaN, NaN",
			fe.ObservedRequests, fe.ObservedCPUCores, fe.ObservedReplicas, fe.PeakMemoryPerPodBytes)
	}
	if got["frontend"].Horizon != 2*time.Minute || !got["frontend"].ExpiresAt.Equal(now.Add(2*time.Minute)) {
		t.Errorf("horizon %v expires %v", got["frontend"].Horizon, got["frontend"].ExpiresAt)
	}
	if f.Ready() != nil {
		t.Error("not ready after a good cycle")
	}
	if v := testutil.ToFloat64(f.metrics.cycles.WithLabelValues(resultOK)); v != 1 {
		t.Errorf("ok cycles = %v", v)
	}
	if n, err := testutil.GatherAndCount(reg, "foresight_model_info"); err != nil || n != 1 {
		t.Errorf("model info series = %d, %v", n, err)
	}
}

func TestCycleHoldsLastGoodThenExpires(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(*fakeSource, *lastValuePredictor)
		reason string
	}{
		{"source unreachable", func(s *fakeSource, _ *lastValuePredictor) {
			s.err = &source.FetchError{Kind: source.ErrUnreachable, Err: errors.New("connection refused")}
		}, HeldSourceError},
		{"source timeout", func(s *fakeSource, _ *lastValuePredictor) {
			s.err = &source.FetchError{Kind: source.ErrTimeout, Err: context.DeadlineExceeded}
		}, HeldTimeout},
		{"empty result", func(s *fakeSource, _ *lastValuePredictor) { s.requests = nil }, HeldMissingData},
		{"model error", func(_ *fakeSource, p *lastValuePredictor) { p.err = errors.New("boom") }, HeldModelError},
		{"NaN forecast", func(_ *fakeSource, p *lastValuePredictor) { p.value = math.NaN() }, HeldBadForecast},
		{"Inf forecast", func(_ *fakeSource, p *lastValuePredictor) { p.value = math.Inf(1) }, HeldBadForecast},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5}}
			pred := &lastValuePredictor{}
			f, _, _ := newTestForecaster(t, src, pred)
			if _, err := f.Cycle(context.Background(), now); err != nil {
				t.Fatal(err)
			}
			tc.break_(src, pred)

			// Within the TTL: the last good values, marked held.
			snap, err := f.Cycle(context.Background(), now.Add(time.Minute))
			if err == nil {
				t.Fatal("want an error from a cycle with no fresh prediction")
			}
			got := byService(snap)
			if len(got) != 2 || got["frontend"].PredictedReplicas != 5 || got["frontend"].HeldReason != tc.reason {
				t.Fatalf("held snapshot = %+v, want frontend at 5 replicas held for %s", snap.Predictions, tc.reason)
			}
			if v := testutil.ToFloat64(f.metrics.held.WithLabelValues("frontend", tc.reason)); v != 1 {
				t.Errorf("held counter = %v", v)
			}
			// After the TTL: nothing at all, never a made-up value.
			snap, _ = f.Cycle(context.Background(), now.Add(3*time.Minute))
			if len(snap.Predictions) != 0 {
				t.Errorf("expired predictions still published: %+v", snap.Predictions)
			}
		})
	}
}

func TestCycleMissingServiceIsHeldOthersFresh(t *testing.T) {
	src := &fakeSource{requests: map[string]float64{"frontend": 45}} // no cart data
	f, _, _ := newTestForecaster(t, src, &lastValuePredictor{})
	snap, err := f.Cycle(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	got := byService(snap)
	if _, ok := got["cart"]; ok {
		t.Errorf("cart published without data: %+v", got["cart"])
	}
	if got["frontend"].PredictedReplicas != 5 {
		t.Errorf("frontend = %+v", got["frontend"])
	}
	if v := testutil.ToFloat64(f.metrics.cycles.WithLabelValues(resultDegraded)); v != 1 {
		t.Errorf("degraded cycles = %v", v)
	}
}

func TestCycleCountsSourceErrorsByKind(t *testing.T) {
	src := &fakeSource{err: &source.FetchError{Kind: source.ErrBadResponse, Err: errors.New("500")}}
	f, _, _ := newTestForecaster(t, src, &lastValuePredictor{})
	_, err := f.Cycle(context.Background(), now)
	if err == nil || !strings.Contains(err.Error(), "fake") {
		t.Fatalf("error = %v, want one naming the source", err)
	}
	if v := testutil.ToFloat64(f.metrics.sourceErrors.WithLabelValues("fake", "bad_response")); v != 1 {
		t.Errorf("source errors = %v", v)
	}
	if f.Ready() == nil {
		t.Error("ready without ever having a good cycle")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	pol := policy.Default() // no capacity per pod
	_, err := New(Options{Source: &fakeSource{}, Manifest: testManifest(), Predictor: &lastValuePredictor{}, Policy: pol, Store: &snapshot.Store{}})
	if err == nil || !strings.Contains(err.Error(), "capacityPerPod") {
		t.Errorf("error = %v, want one naming capacityPerPod", err)
	}
	m := testManifest()
	m.Outputs = m.Outputs[1:]
	pol.CapacityPerPod = 1
	_, err = New(Options{Source: &fakeSource{}, Manifest: m, Predictor: &lastValuePredictor{}, Policy: pol, Store: &snapshot.Store{}})
	if err == nil || !strings.Contains(err.Error(), "request-rate") {
		t.Errorf("error = %v, want one about the missing request output", err)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	src := &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5}}
	pred := &lastValuePredictor{}
	f, store, _ := newTestForecaster(t, src, pred)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.Run(ctx) }()
	deadline := time.After(5 * time.Second)
	for store.Latest() == nil {
		select {
		case <-deadline:
			t.Fatal("no snapshot within 5s")
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// upperPredictor adds a P90 output at twice the point forecast.
type upperPredictor struct{ lastValuePredictor }

func (p *upperPredictor) Predict(x []float64) (map[string][]float64, error) {
	out, err := p.lastValuePredictor.Predict(x)
	if err != nil {
		return nil, err
	}
	out["requests_p90"] = make([]float64, len(out["requests"]))
	for i, v := range out["requests"] {
		out["requests_p90"][i] = 2 * v
	}
	return out, nil
}

func TestCycleSizesFromThePolicyQuantile(t *testing.T) {
	m := testManifest()
	m.Outputs = append(m.Outputs, model.Output{Tensor: model.Tensor{Name: "requests_p90", Shape: []int{4, 2}}, Feature: source.Requests, Quantile: 0.9})
	for _, tc := range []struct {
		quantile     float64
		wantReplicas int64
	}{{0.9, 9}, {0.5, 5}} {
		pol := policy.Default()
		pol.CapacityPerPod, pol.Headroom, pol.Quantile = 10, 0, tc.quantile
		f, err := New(Options{
			Source: &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5}}, Manifest: m,
			Predictor: &upperPredictor{}, Policy: pol, Store: &snapshot.Store{}, Registerer: prometheus.NewRegistry(),
		})
		if err != nil {
			t.Fatal(err)
		}
		snap, err := f.Cycle(context.Background(), now)
		if err != nil {
			t.Fatal(err)
		}
		got := byService(snap)["frontend"]
		if got.PredictedReplicas != tc.wantReplicas || got.RequestsByStep[0] != 45 {
			t.Errorf("quantile %v: replicas %d (want %d), forecast shown %v (want the point forecast 45)",
				tc.quantile, got.PredictedReplicas, tc.wantReplicas, got.RequestsByStep[0])
		}
	}
}

func TestPeakMemoryPerPod(t *testing.T) {
	feats := []source.Feature{source.Memory, source.Replicas}
	win := func(mem, pods []float64, noData bool) *window.Window {
		w := &window.Window{Spec: window.Spec{Features: feats, Length: len(mem)},
			Values: [][][]float64{make([][]float64, len(mem)), make([][]float64, len(mem))},
			NoData: [][]bool{{noData}, {false}}}
		for i := range mem {
			w.Values[0][i] = []float64{mem[i]}
			w.Values[1][i] = []float64{pods[i]}
		}
		return w
	}
	cases := []struct {
		name      string
		mem, pods []float64
		noData    bool
		want      float64 // NaN: unknown
	}{
		{"peak per pod, not peak total", []float64{400, 900, 600}, []float64{2, 6, 2}, false, 300},
		{"zero replicas skipped", []float64{400, 500}, []float64{0, 5}, false, 100},
		{"no replicas at all", []float64{400}, []float64{0}, false, math.NaN()},
		{"memory series had no data", []float64{400}, []float64{2}, true, math.NaN()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := peakMemoryPerPod(win(c.mem, c.pods, c.noData), 0)
			if got != c.want && !(math.IsNaN(got) && math.IsNaN(c.want)) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

// TestCycleFitsTheBudget: the published replicas fit a shared budget, the
// forecast's need stays visible in the budget's metrics.
func TestCycleFitsTheBudget(t *testing.T) {
	src := &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5}} // needs 5 and 1
	pol := policy.Default()
	pol.CapacityPerPod, pol.Headroom = 10, 0
	reg := prometheus.NewRegistry()
	cfg := budget.Config{Name: "shop", TotalCPU: 2, Services: map[string]budget.Member{
		"frontend": {CPURequest: 0.5}, "cart": {CPURequest: 0.5}}}
	b, err := budget.NewBudgeter([]budget.Config{cfg}, nil, pol.MinReplicasFor, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := &snapshot.Store{}
	f, err := New(Options{Source: src, Manifest: testManifest(), Predictor: &lastValuePredictor{}, Policy: pol, Store: store,
		StaleAfter: 2 * time.Minute, Registerer: reg, Now: func() time.Time { return now }, Budgeter: b})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := f.Cycle(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	// 2 cores: both minimums (1 core), then frontend's shortfall of 4 gets
	// the 2 replicas left.
	got := byService(snap)
	if got["frontend"].PredictedReplicas != 3 || got["cart"].PredictedReplicas != 1 {
		t.Errorf("published frontend %d, cart %d; want 3 and 1 within the budget", got["frontend"].PredictedReplicas, got["cart"].PredictedReplicas)
	}
	want := `
# HELP foresight_budget_replicas Replicas of a budget member: needed (the forecast's count) and allocated (published, after fitting the budget).
# TYPE foresight_budget_replicas gauge
foresight_budget_replicas{budget="shop",kind="allocated",service="cart"} 1
foresight_budget_replicas{budget="shop",kind="allocated",service="frontend"} 3
foresight_budget_replicas{budget="shop",kind="needed",service="cart"} 1
foresight_budget_replicas{budget="shop",kind="needed",service="frontend"} 5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "foresight_budget_replicas"); err != nil {
		t.Error(err)
	}
}
