package forecaster

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/foresightscale/foresight/forecaster/fallback"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
)

// newCoverageForecaster is newTestForecaster with options to change and
// the logs kept.
func newCoverageForecaster(t *testing.T, src source.Source, change func(*Options)) (*Forecaster, *bytes.Buffer, *prometheus.Registry) {
	t.Helper()
	pol := policy.Default()
	pol.CapacityPerPod = 10
	pol.Headroom = 0
	logs := &bytes.Buffer{}
	reg := prometheus.NewRegistry()
	opts := Options{
		Source: src, Manifest: testManifest(), Predictor: &lastValuePredictor{}, Policy: pol, Store: &snapshot.Store{},
		StaleAfter: 2 * time.Minute, Registerer: reg, Now: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}
	if change != nil {
		change(&opts)
	}
	f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return f, logs, reg
}

func TestFallbackServesServicesTheModelDoesNotKnow(t *testing.T) {
	src := &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5, "ts-new.v2": 32}}
	f, logs, _ := newCoverageForecaster(t, src, nil)
	for i := range 2 {
		snap, err := f.Cycle(context.Background(), now.Add(time.Duration(i)*30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := byService(snap)["ts-new.v2"]
		if got.Model != fallback.Name || got.PredictedReplicas != 4 || got.PredictedRequests != 32 || got.HeldReason != "" {
			t.Fatalf("cycle %d: new service published as %+v; want model fallback, 4 replicas for 32 req/s", i, got)
		}
		if m := byService(snap)["frontend"].Model; m != "" {
			t.Errorf("a modelled service carries model %q; the merge names the application's model", m)
		}
	}
	if n := strings.Count(logs.String(), "not in the model"); n != 1 {
		t.Errorf("the unmodelled service was logged %d times, want once:\n%s", n, logs)
	}
	c := f.Coverage()
	if !slices.Equal(c.Fallback, []string{"ts-new.v2"}) || len(c.Model) != 2 {
		t.Errorf("coverage = %+v", c)
	}
	if v := testutil.ToFloat64(f.metrics.coverage.WithLabelValues("ts-new.v2", CoverageFallback)); v != 1 {
		t.Errorf("coverage metric = %v", v)
	}
}

func TestCoverageReportsServicesAbsentFromTheData(t *testing.T) {
	src := &fakeSource{requests: map[string]float64{"productpage": 10, "reviews": 3}}
	f, logs, _ := newCoverageForecaster(t, src, func(o *Options) {
		o.Policy.CapacityPerPod = 0
		o.Policy.Services = map[string]policy.ServiceConfig{"frontend": {CapacityPerPod: 10}, "cart": {CapacityPerPod: 10}}
	})
	_, err := f.Cycle(context.Background(), now)
	if err == nil || !strings.Contains(err.Error(), "none of model test's 2 services has a series in the data; the data's services are: productpage, reviews") {
		t.Fatalf("error = %v, want one saying the model is of another application", err)
	}
	c := f.Coverage()
	if !slices.Equal(c.Absent, []string{"cart", "frontend"}) || len(c.Fallback) != 2 {
		t.Errorf("coverage = %+v", c)
	}
	if !strings.Contains(logs.String(), "has no series in the data") || !strings.Contains(logs.String(), "is it this application's model?") {
		t.Errorf("absent services, or a model of another application, not logged:\n%s", logs)
	}
	// Without a capacity per pod the fallback cannot size them: said, not guessed.
	snap, _ := f.Cycle(context.Background(), now.Add(30*time.Second))
	if n := strings.Count(logs.String(), "service=cart"); n != 1 {
		t.Errorf("the absent service cart is named in %d log lines over two cycles, want 1:\n%s", n, logs)
	}
	var reasons []string
	for _, u := range snap.Unpublished {
		reasons = append(reasons, u.Service+"="+u.Reason)
	}
	if !slices.Contains(reasons, "reviews="+HeldNoCapacity) {
		t.Errorf("unpublished = %v, want reviews held for no capacity", reasons)
	}
}

func TestOwnedServicesOnly(t *testing.T) {
	src := &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5, "other-app": 7}}
	f, _, _ := newCoverageForecaster(t, src, func(o *Options) { o.Services = []string{"frontend"} })
	snap, err := f.Cycle(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if got := byService(snap); len(got) != 1 || got["frontend"].PredictedReplicas != 5 {
		t.Errorf("published %v, want frontend only (cart and other-app belong to other applications)", got)
	}
	if len(snap.Unpublished) != 0 {
		t.Errorf("unpublished = %+v", snap.Unpublished)
	}
}

func TestServicesWithoutRequestRate(t *testing.T) {
	src := &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5}}
	unobserved := func(o *Options) {
		m := testManifest()
		m.Unobserved = map[source.Feature][]string{source.Requests: {"cart"}}
		o.Manifest = m
	}
	// No cpuPerPod: cart is never published, and that is said once.
	f, logs, _ := newCoverageForecaster(t, src, unobserved)
	for i := range 3 {
		snap, err := f.Cycle(context.Background(), now.Add(time.Duration(i)*30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := byService(snap)["cart"]; ok || len(snap.Unpublished) != 1 || snap.Unpublished[0].Reason != HeldNoRequestRate {
			t.Fatalf("cart published %v, unpublished %+v; want it unpublished as %s", byService(snap)["cart"], snap.Unpublished, HeldNoRequestRate)
		}
	}
	if n := strings.Count(logs.String(), "cannot be sized"); n != 1 || strings.Contains(logs.String(), "no prediction published") {
		t.Errorf("cart's lack of a request rate said %d times, want once at start-up and never per cycle:\n%s", n, logs)
	}
	// With cpuPerPod it is sized from its CPU forecast: 0.05 cores at 0.02 per pod.
	f, _, _ = newCoverageForecaster(t, src, func(o *Options) {
		unobserved(o)
		o.Policy.CPUPerPod = 0.02
	})
	snap, err := f.Cycle(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	cart := byService(snap)["cart"]
	if cart.PredictedReplicas != 3 || !math.IsNaN(cart.PredictedRequests) || cart.RequestsByStep != nil {
		t.Errorf("cart = %+v; want 3 replicas from CPU and no request-rate numbers", cart)
	}
	// A model without any request rate and no cpuPerPod cannot serve: refused.
	_, err = New(Options{Source: src, Manifest: func() *Options {
		var o Options
		unobserved(&o)
		o.Manifest.Unobserved[source.Requests] = services
		return &o
	}().Manifest,
		Predictor: &lastValuePredictor{}, Policy: policy.Default(), Store: &snapshot.Store{}})
	if err == nil || !strings.Contains(err.Error(), "policy.cpuPerPod") {
		t.Errorf("error = %v, want one pointing to policy.cpuPerPod", err)
	}
}

// TestModelWithoutRequestRate: a model trained on CPU alone (a history
// without any request rate) serves once cpuPerPod says what a pod may use.
func TestModelWithoutRequestRate(t *testing.T) {
	m := testManifest()
	m.Features = []source.Feature{source.CPU}
	m.Input.Shape = []int{3, 2}
	m.Outputs = []model.Output{{Tensor: model.Tensor{Name: "cpu", Shape: []int{4, 2}}, Feature: source.CPU, Quantile: 0.5}}
	delete(m.Normalization, source.Requests)
	src := &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5}}
	pred := predictorFunc(func(x []float64) (map[string][]float64, error) {
		out := make([]float64, 8)
		for h := range 4 {
			copy(out[h*2:], x[4:6]) // the last CPU row
		}
		return map[string][]float64{"cpu": out}, nil
	})
	f, _, _ := newCoverageForecaster(t, src, func(o *Options) {
		o.Manifest, o.Predictor = m, pred
		o.Policy.CPUPerPod = 0.1
	})
	snap, err := f.Cycle(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	got := byService(snap)
	if got["frontend"].PredictedReplicas != 5 || got["cart"].PredictedReplicas != 1 || !math.IsNaN(got["frontend"].PredictedRequests) {
		t.Errorf("predictions %+v; want 0.45 and 0.05 cores sized at 0.1 per pod: 5 and 1 replicas, no request rate", got)
	}
}

type predictorFunc func([]float64) (map[string][]float64, error)

func (p predictorFunc) Predict(x []float64) (map[string][]float64, error) { return p(x) }

// TestUnownedServices: applications sharing a namespace each own a list;
// a service of the data in no list is reported, the other application's
// services are not.
func TestUnownedServices(t *testing.T) {
	src := &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5, "orders": 7, "stray-job": 3}}
	f, logs, _ := newCoverageForecaster(t, src, func(o *Options) {
		o.Services, o.OtherApps = []string{"frontend", "cart"}, []string{"orders"}
	})
	snap, err := f.Cycle(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if got := byService(snap); len(got) != 2 {
		t.Errorf("published %v, want frontend and cart only", got)
	}
	if c := f.Coverage(); !slices.Equal(c.Unowned, []string{"stray-job"}) || len(c.Fallback) != 0 {
		t.Errorf("coverage = %+v, want stray-job unowned and nothing on the fallback", c)
	}
	if !strings.Contains(logs.String(), "in no application's services list") || strings.Contains(logs.String(), "service=orders") {
		t.Errorf("logs:\n%s", logs)
	}
}
