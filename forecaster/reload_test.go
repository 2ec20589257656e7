package forecaster

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/topology"
)

// otherManifest is testManifest renamed, for a reload to tell apart.
func otherManifest() *model.Manifest {
	m := testManifest()
	m.Name, m.Version = "test-retrained", "2"
	return m
}

// recordedEvents is an EventRecorder that keeps what it is given.
type recordedEvents struct {
	mu     sync.Mutex
	events []string
}

func (r *recordedEvents) Event(eventType, reason, note string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, eventType+" "+reason+" "+note)
}

func modelInfo(t *testing.T, f *Forecaster) string {
	t.Helper()
	var names []string
	for _, m := range []*model.Manifest{testManifest(), otherManifest()} {
		if testutil.ToFloat64(f.metrics.modelInfo.WithLabelValues(m.Name, m.Version, "2", "3", "4", "30s")) == 1 {
			names = append(names, m.Name)
		}
	}
	// WithLabelValues above created the missing series at 0: count the ones
	// at 1 only.
	return strings.Join(names, ",")
}

func TestSetModelServesFromTheNextCycle(t *testing.T) {
	src := &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5}}
	events := &recordedEvents{}
	f, _, reg := newCoverageForecaster(t, src, func(o *Options) { o.Events = events })
	snap, err := f.Cycle(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if got := byService(snap)["frontend"].PredictedReplicas; got != 5 {
		t.Fatalf("old model: frontend %d replicas, want 5", got)
	}
	before := testutil.ToFloat64(f.metrics.modelLoaded)

	// The retrained model forecasts 100 req/s everywhere: 10 pods of 10.
	err = f.SetModel(otherManifest(), &lastValuePredictor{value: 100})
	f.ReportReload("/models/shop", err)
	if err != nil {
		t.Fatal(err)
	}
	snap, err = f.Cycle(context.Background(), now.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range services {
		if got := byService(snap)[svc]; got.PredictedReplicas != 10 || got.HeldReason != "" {
			t.Errorf("after the reload %s = %d replicas (held %q); want 10 from the new model", svc, got.PredictedReplicas, got.HeldReason)
		}
	}
	if snap.Model != "test-retrained" {
		t.Errorf("snapshot model %q, want test-retrained", snap.Model)
	}
	if got := modelInfo(t, f); got != "test-retrained" {
		t.Errorf("foresight_model_info shows %q; want the new model only", got)
	}
	if got := testutil.ToFloat64(f.metrics.modelReloads.WithLabelValues(reloadLoaded)); got != 1 {
		t.Errorf("reloads loaded = %v, want 1", got)
	}
	if after := testutil.ToFloat64(f.metrics.modelLoaded); !(after >= before && after > 0) {
		t.Errorf("loaded timestamp %v after the reload, %v before", after, before)
	}
	if len(events.events) != 1 || !strings.HasPrefix(events.events[0], "Normal ModelLoaded model test-retrained 2 loaded from /models/shop") {
		t.Errorf("events = %q; want one Normal ModelLoaded", events.events)
	}
	// The metrics stay registered once: a second reload registers nothing.
	if err := f.SetModel(testManifest(), &lastValuePredictor{}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

// TestSetModelRefuses: a model that New would refuse for these options, or
// that would drop what is served, is rejected and the old one keeps serving
// the same predictions.
func TestSetModelRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy func(*policy.Config)
		model  func(*model.Manifest)
		want   string
	}{
		{
			name: "services of another application",
			model: func(m *model.Manifest) {
				m.Services = []string{"orders", "payments"}
				m.CallGraph = []topology.Edge{{Caller: "orders", Callee: "payments", FanOut: 1}}
			},
			want: "does not forecast 2 services the served model test forecasts from the data (cart, frontend)",
		},
		{
			name: "a service the policy cannot size",
			policy: func(p *policy.Config) {
				p.CapacityPerPod = 0
				p.Services = map[string]policy.ServiceConfig{"frontend": {CapacityPerPod: 10}, "cart": {CapacityPerPod: 10}}
			},
			model: func(m *model.Manifest) {
				m.Services = []string{"frontend", "payments"}
				m.CallGraph = []topology.Edge{{Caller: "frontend", Callee: "payments", FanOut: 1}}
			},
			want: "policy.services.payments.capacityPerPod: not set",
		},
		{
			name:  "another step",
			model: func(m *model.Manifest) { m.Step = model.Duration(time.Minute) },
			want:  "step 1m0s differs from the served model's 30s",
		},
		{
			name: "a horizon shorter than the lead time",
			model: func(m *model.Manifest) {
				m.Horizon = 2
				for i := range m.Outputs {
					m.Outputs[i].Shape = []int{2, 2}
				}
			},
			want: "policy.leadTime 2m: beyond what the model forecasts (2 steps of 30s = 1m0s)",
		},
		{
			name:  "no request rate nor CPU output",
			model: func(m *model.Manifest) { m.Outputs = m.Outputs[:0] },
			want:  "forecasts neither the request rate nor CPU",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5}}
			f, logs, _ := newCoverageForecaster(t, src, func(o *Options) {
				if tc.policy != nil {
					tc.policy(&o.Policy)
				}
			})
			first, err := f.Cycle(context.Background(), now)
			if err != nil {
				t.Fatal(err)
			}
			m := otherManifest()
			tc.model(m)
			err = f.SetModel(m, &lastValuePredictor{value: 100})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SetModel error = %v; want one containing %q", err, tc.want)
			}
			f.ReportReload("/models/shop", err)
			next, err := f.Cycle(context.Background(), now.Add(30*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if next.Model != "test" {
				t.Errorf("snapshot model %q after a rejected reload; want test", next.Model)
			}
			for _, svc := range services {
				if a, b := byService(first)[svc], byService(next)[svc]; a.PredictedReplicas != b.PredictedReplicas || b.HeldReason != "" {
					t.Errorf("%s: %d replicas before, %d (held %q) after the rejected reload; want the old model's, fresh", svc, a.PredictedReplicas, b.PredictedReplicas, b.HeldReason)
				}
			}
			if got := modelInfo(t, f); got != "test" {
				t.Errorf("foresight_model_info shows %q; want the old model", got)
			}
			if got := testutil.ToFloat64(f.metrics.modelReloads.WithLabelValues(reloadRejected)); got != 1 {
				t.Errorf("reloads rejected = %v, want 1", got)
			}
			if !strings.Contains(logs.String(), `level=ERROR msg="model reload rejected; the current model keeps serving" model=test source=fake version=1 dir=/models/shop`) {
				t.Errorf("no rejection log line:\n%s", logs)
			}
		})
	}
}

// TestSetModelDuringCycles swaps models while cycles run (go test -race):
// every snapshot is wholly one model's, and no cycle fails.
func TestSetModelDuringCycles(t *testing.T) {
	src := &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5}}
	f, _, _ := newCoverageForecaster(t, src, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			m, p := testManifest(), Predictor(&lastValuePredictor{})
			if i%2 == 0 {
				m, p = otherManifest(), &lastValuePredictor{value: 100}
			}
			err := f.SetModel(m, p)
			f.ReportReload("dir", err)
			if err != nil {
				t.Error(err)
			}
			_ = f.Coverage()
			_ = f.Ready()
		}
	}()
	for i := range 50 {
		snap, err := f.Cycle(ctx, now.Add(time.Duration(i)*30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		// Replicas move at the policy's pace; the forecast is the model's.
		want := map[string]float64{"test": 45, "test-retrained": 100}[snap.Model]
		if got := byService(snap)["frontend"]; got.PredictedRequests != want || got.HeldReason != "" {
			t.Fatalf("cycle %d (model %s): frontend %v req/s held %q; want %v fresh", i, snap.Model, got.PredictedRequests, got.HeldReason, want)
		}
	}
	wg.Wait()
}
