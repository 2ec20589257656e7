package forecaster

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/foresightscale/foresight/forecaster/fallback"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/topology"
)

// recordingSource is a fakeSource that keeps the queries it was asked.
type recordingSource struct {
	fakeSource
	mu      sync.Mutex
	queries []source.Query
}

func (s *recordingSource) Fetch(ctx context.Context, q source.Query) (source.Data, error) {
	s.mu.Lock()
	s.queries = append(s.queries, q)
	s.mu.Unlock()
	return s.fakeSource.Fetch(ctx, q)
}

// ledgerManifest is testManifest for an application of other names: the
// first trained model of a loop that started without one.
func ledgerManifest() *model.Manifest {
	m := testManifest()
	m.Name, m.Version = "ledger-gnn", "1"
	m.Services = []string{"ledger", "auth-v2"}
	m.CallGraph = []topology.Edge{{Caller: "ledger", Callee: "auth-v2", FanOut: 1}}
	return m
}

// noModelInfo is foresight_model_info's value for a 30s NoModel loop.
func noModelInfo(f *Forecaster) float64 {
	return testutil.ToFloat64(f.metrics.modelInfo.WithLabelValues(NoModelName, "", "0", "3", "4", "30s"))
}

// checkNoNaNGauges fails on a gauge of reg that is NaN: a dashboard would
// show a made-up number.
func checkNoNaNGauges(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetType() != dto.MetricType_GAUGE {
			continue
		}
		for _, m := range mf.GetMetric() {
			if math.IsNaN(m.GetGauge().GetValue()) {
				t.Errorf("%s %v is NaN", mf.GetName(), m.GetLabel())
			}
		}
	}
}

// TestNoModelForecastsEveryServiceWithTheFallback: a loop started before
// any model exists serves every service of the data from the fallback,
// whatever their names, and is ready; nothing runs a network.
func TestNoModelForecastsEveryServiceWithTheFallback(t *testing.T) {
	for _, tc := range []struct {
		name      string
		predictor *lastValuePredictor // nil: Options.Predictor is nil
	}{
		{name: "no predictor"},
		{name: "a predictor never called", predictor: &lastValuePredictor{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &recordingSource{fakeSource: fakeSource{requests: map[string]float64{"ledger": 45, "auth-v2": 5}}}
			f, logs, reg := newCoverageForecaster(t, src, func(o *Options) {
				o.Manifest, o.Predictor = NoModel(30*time.Second, 3, 4), nil
				if tc.predictor != nil {
					o.Predictor = tc.predictor
				}
			})
			if f.HasModel() {
				t.Error("HasModel on NoModel")
			}
			if f.Ready() == nil {
				t.Fatal("ready before the first cycle")
			}
			for i := range 2 {
				snap, err := f.Cycle(context.Background(), now.Add(time.Duration(i)*30*time.Second))
				if err != nil {
					t.Fatalf("cycle %d: %v", i, err)
				}
				if snap.Model != NoModelName {
					t.Errorf("cycle %d: snapshot model %q, want %q", i, snap.Model, NoModelName)
				}
				got := byService(snap)
				want := map[string]int64{"ledger": 5, "auth-v2": 1}
				if len(got) != len(want) || len(snap.Unpublished) != 0 {
					t.Fatalf("cycle %d: published %v, unpublished %+v; want ledger and auth-v2", i, got, snap.Unpublished)
				}
				for svc, replicas := range want {
					if p := got[svc]; p.Model != fallback.Name || p.PredictedReplicas != replicas || p.HeldReason != "" || !math.IsNaN(p.ObservedReplicas) {
						t.Errorf("cycle %d: %s = %+v; want fresh, model %s, %d replicas", i, svc, p, fallback.Name, replicas)
					}
				}
			}
			if err := f.Ready(); err != nil {
				t.Errorf("not ready after fresh fallback predictions: %v", err)
			}
			if v := testutil.ToFloat64(f.metrics.cycles.WithLabelValues(resultOK)); v != 2 {
				t.Errorf("ok cycles = %v, want 2", v)
			}
			if tc.predictor != nil && tc.predictor.calls != 0 {
				t.Errorf("predictor called %d times without a model", tc.predictor.calls)
			}
			// One query a cycle, for what the fallback reads only (and the
			// short-window peaks policy.burst sizes with).
			if len(src.queries) != 2 {
				t.Errorf("%d queries in 2 cycles, want 2", len(src.queries))
			}
			for _, q := range src.queries {
				if !slices.Equal(q.Features, []source.Feature{source.Requests, source.CPU, source.RequestsPeak}) || !q.AllServices {
					t.Errorf("query %+v; want requests, cpu and requests_peak of every service", q)
				}
			}
			if v := noModelInfo(f); v != 1 {
				t.Errorf("foresight_model_info{name=%q} = %v, want 1", NoModelName, v)
			}
			if n, err := testutil.GatherAndCount(reg, "foresight_model_info"); err != nil || n != 1 {
				t.Errorf("model info series = %d, %v; want 1", n, err)
			}
			checkNoNaNGauges(t, reg)
			if c := f.Coverage(); !slices.Equal(c.Fallback, []string{"auth-v2", "ledger"}) || len(c.Model)+len(c.Absent) != 0 {
				t.Errorf("coverage = %+v; want both on the fallback", c)
			}
			if v := testutil.ToFloat64(f.metrics.coverage.WithLabelValues("ledger", CoverageFallback)); v != 1 {
				t.Errorf("coverage metric of ledger = %v, want 1", v)
			}
			// One line for the set, not a warning per service.
			out := logs.String()
			// The fake source has no requests_peak: policy.burst says so, once.
			if n := strings.Count(out, "policy.burst: no requests_peak"); n != 1 {
				t.Errorf("missing requests_peak said %d times, want once:\n%s", n, out)
			}
			if n := strings.Count(out, "no model yet"); n != 1 || strings.Contains(out, "not in the model") || strings.Count(out, "level=WARN") != 1 {
				t.Errorf("no-model line logged %d times (want once), with warnings:\n%s", n, out)
			}
			if !strings.Contains(out, "model=none") || !strings.Contains(out, "services=2") {
				t.Errorf("no-model line without model=none and services=2:\n%s", out)
			}
			// A new service changes the set: said again, with the new count.
			src.requests["search"] = 32
			if _, err := f.Cycle(context.Background(), now.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if out := logs.String(); strings.Count(out, "no model yet") != 2 || !strings.Contains(out, "services=3") {
				t.Errorf("the changed set was not logged once more:\n%s", out)
			}
		})
	}
}

// TestNoModelThenSetModel: the first trained model takes over its services
// on the next cycle; a service it lacks stays on the fallback.
func TestNoModelThenSetModel(t *testing.T) {
	src := &fakeSource{requests: map[string]float64{"ledger": 45, "auth-v2": 5, "search": 32}}
	f, _, reg := newCoverageForecaster(t, src, func(o *Options) { o.Manifest, o.Predictor = NoModel(30*time.Second, 3, 4), nil })
	if _, err := f.Cycle(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	pred := &lastValuePredictor{value: 100}
	err := f.SetModel(ledgerManifest(), pred)
	f.ReportReload("/models/ledger", err)
	if err != nil {
		t.Fatal(err)
	}
	if !f.HasModel() {
		t.Error("HasModel false after SetModel")
	}
	snap, err := f.Cycle(context.Background(), now.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Model != "ledger-gnn" || pred.calls != 1 {
		t.Errorf("snapshot model %q, predictor called %d times; want ledger-gnn, once", snap.Model, pred.calls)
	}
	got := byService(snap)
	// 100 req/s from the model: 10 pods of 10; the model's own predictions
	// carry no model name (the snapshot's names them).
	for _, svc := range []string{"ledger", "auth-v2"} {
		if p := got[svc]; p.Model != "" || p.PredictedReplicas != 10 || p.HeldReason != "" {
			t.Errorf("%s = %+v; want 10 fresh replicas from the model", svc, p)
		}
	}
	if p := got["search"]; p.Model != fallback.Name || p.PredictedReplicas != 4 || p.HeldReason != "" {
		t.Errorf("search = %+v; want it still on the fallback, 4 replicas", p)
	}
	if c := f.Coverage(); !slices.Equal(c.Model, []string{"auth-v2", "ledger"}) || !slices.Equal(c.Fallback, []string{"search"}) {
		t.Errorf("coverage = %+v", c)
	}
	if v := testutil.ToFloat64(f.metrics.coverage.WithLabelValues("ledger", CoverageFallback)); v != 0 {
		t.Errorf("ledger still has a fallback coverage series (%v)", v)
	}
	if noModelInfo(f) != 0 || testutil.ToFloat64(f.metrics.modelInfo.WithLabelValues("ledger-gnn", "1", "2", "3", "4", "30s")) != 1 {
		t.Error("foresight_model_info does not show the new model only")
	}
	checkNoNaNGauges(t, reg)
	// Back to no model is not a reload.
	if err := f.SetModel(NoModel(30*time.Second, 3, 4), pred); err == nil || !strings.Contains(err.Error(), "forecasts no services") {
		t.Errorf("SetModel(NoModel) error = %v; want a refusal", err)
	}
	if !f.HasModel() {
		t.Error("the refused NoModel was taken")
	}
}

// TestNoModelRefusesAnotherStep: the loop's timing follows NoModel's step,
// so a model of another step is refused and the fallback goes on.
func TestNoModelRefusesAnotherStep(t *testing.T) {
	src := &fakeSource{requests: map[string]float64{"ledger": 45, "auth-v2": 5}}
	f, _, _ := newCoverageForecaster(t, src, func(o *Options) { o.Manifest, o.Predictor = NoModel(time.Minute, 3, 4), nil })
	if _, err := f.Cycle(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	pred := &lastValuePredictor{value: 100}
	err := f.SetModel(ledgerManifest(), pred)
	if err == nil || !strings.Contains(err.Error(), "step 30s differs from the served model's 1m0s") {
		t.Fatalf("SetModel error = %v; want the step refused", err)
	}
	f.ReportReload("/models/ledger", err)
	snap, err := f.Cycle(context.Background(), now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if f.HasModel() || snap.Model != NoModelName || pred.calls != 0 {
		t.Errorf("HasModel %v, snapshot model %q, predictor calls %d after a refused model", f.HasModel(), snap.Model, pred.calls)
	}
	for _, svc := range []string{"ledger", "auth-v2"} {
		if p := byService(snap)[svc]; p.Model != fallback.Name || p.HeldReason != "" {
			t.Errorf("%s = %+v; want it fresh from the fallback", svc, p)
		}
	}
	if v := testutil.ToFloat64(f.metrics.modelInfo.WithLabelValues(NoModelName, "", "0", "3", "4", "1m0s")); v != 1 {
		t.Errorf("foresight_model_info{name=%q} = %v after the refusal, want 1", NoModelName, v)
	}
}

func TestNewNeedsAPredictorForAModel(t *testing.T) {
	pol := policy.Default()
	pol.CapacityPerPod = 10
	for _, tc := range []struct {
		name     string
		manifest *model.Manifest
		wantErr  string // "" for none
	}{
		{name: "a model", manifest: ledgerManifest(), wantErr: "model ledger-gnn: a predictor is required"},
		{name: "no model", manifest: NoModel(30*time.Second, 3, 4)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{Source: &fakeSource{}, Manifest: tc.manifest, Policy: pol, Store: &snapshot.Store{}})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("New: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("New error = %v; want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestNoModelWithoutData: a no-model cycle that finds no service says so.
func TestNoModelWithoutData(t *testing.T) {
	f, _, _ := newCoverageForecaster(t, &fakeSource{}, func(o *Options) { o.Manifest, o.Predictor = NoModel(30*time.Second, 3, 4), nil })
	_, err := f.Cycle(context.Background(), now)
	if err == nil || !strings.Contains(err.Error(), "no model yet, and the data has no service in namespace default") {
		t.Errorf("cycle error = %v; want one saying there is nothing to forecast", err)
	}
	if f.Ready() == nil {
		t.Error("ready without a forecast")
	}
}

// TestSetModelThenFetchFails: when the first cycle after SetModel cannot
// fetch, the services the model took over from the fallback are held once
// each (their last fallback prediction), not listed twice.
func TestSetModelThenFetchFails(t *testing.T) {
	src := &fakeSource{requests: map[string]float64{"ledger": 45, "auth-v2": 5, "search": 32}}
	f, _, _ := newCoverageForecaster(t, src, func(o *Options) { o.Manifest, o.Predictor = NoModel(30*time.Second, 3, 4), nil })
	if _, err := f.Cycle(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	if err := f.SetModel(ledgerManifest(), &lastValuePredictor{value: 100}); err != nil {
		t.Fatal(err)
	}
	src.err = &source.FetchError{Kind: source.ErrUnreachable, Err: errors.New("connection refused")}
	snap, err := f.Cycle(context.Background(), now.Add(30*time.Second))
	if err == nil {
		t.Fatal("want an error from a cycle that could not fetch")
	}
	var names []string
	for _, p := range snap.Predictions {
		names = append(names, p.Service)
		if p.Model != fallback.Name || p.HeldReason != HeldSourceError {
			t.Errorf("%s = %+v; want its fallback prediction held for %s", p.Service, p, HeldSourceError)
		}
	}
	if slices.Sort(names); !slices.Equal(names, []string{"auth-v2", "ledger", "search"}) {
		t.Errorf("published %v; want each service once", names)
	}
}
