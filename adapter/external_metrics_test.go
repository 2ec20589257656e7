package adapter

import (
	"context"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/foresightscale/foresight/forecaster/snapshot"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// prediction returns a fresh prediction (computed 10 s before testNow, valid
// for another minute) that opts can adjust.
func prediction(ns, svc string, replicas int64, requests, cpu float64, opts ...func(*snapshot.Prediction)) snapshot.Prediction {
	p := snapshot.Prediction{
		Namespace:         ns,
		Service:           svc,
		Horizon:           2 * time.Minute,
		PredictedReplicas: replicas,
		PredictedRequests: requests,
		PredictedCPUCores: cpu,
		// Unknown unless a test says otherwise, as from a model without those inputs.
		ObservedRequests:      math.NaN(),
		ObservedCPUCores:      math.NaN(),
		ObservedReplicas:      math.NaN(),
		PeakMemoryPerPodBytes: math.NaN(),
		ComputedAt:            testNow.Add(-10 * time.Second),
		ExpiresAt:             testNow.Add(time.Minute),
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func expired(p *snapshot.Prediction) { p.ExpiresAt = testNow.Add(-time.Second) }

// testSnapshot holds two good services in default, one in shop, one expired,
// one with invalid forecasts and one without a name.
func testSnapshot() *snapshot.Snapshot {
	return &snapshot.Snapshot{
		CreatedAt: testNow.Add(-10 * time.Second),
		Model:     "gru-v1",
		Step:      30 * time.Second,
		Predictions: []snapshot.Prediction{
			prediction("default", "frontend", 4, 123.4567, 0.8),
			prediction("default", "cartservice", 2, 10, 0.25),
			prediction("shop", "frontend", 7, 300, 2),
			prediction("default", "adservice", 9, 1, 1, expired),
			prediction("default", "broken", 3, math.NaN(), -1),
			prediction("default", "", 5, 5, 5),
		},
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// served is what one item amounts to, for comparison.
type served struct {
	service string
	milli   int64
}

func TestGetExternalMetric(t *testing.T) {
	dup := testSnapshot()
	newer := prediction("default", "frontend", 6, 1, 1)
	newer.ComputedAt = testNow.Add(-5 * time.Second)
	older := prediction("default", "frontend", 1, 1, 1)
	older.ComputedAt = testNow.Add(-50 * time.Second)
	dup.Predictions = append(dup.Predictions, newer, older)

	zero := &snapshot.Snapshot{Predictions: []snapshot.Prediction{
		prediction("default", "frontend", 0, 0, 0),
		prediction("default", "cartservice", 1, math.Inf(1), math.Inf(-1)),
	}}

	tests := []struct {
		name      string
		snap      *snapshot.Snapshot
		now       time.Time
		namespace string
		selector  string
		metric    string
		want      []served
	}{
		{name: "replicas of every fresh valid service in the namespace", snap: testSnapshot(), namespace: "default",
			metric: MetricPredictedReplicas, want: []served{{"broken", 3000}, {"cartservice", 2000}, {"frontend", 4000}}},
		{name: "selector picks one service", snap: testSnapshot(), namespace: "default", selector: "service=frontend",
			metric: MetricPredictedReplicas, want: []served{{"frontend", 4000}}},
		{name: "selector on horizon and model", snap: testSnapshot(), namespace: "default", selector: "horizon=120s,model=gru-v1,service in (cartservice)",
			metric: MetricPredictedReplicas, want: []served{{"cartservice", 2000}}},
		{name: "selector matching nothing", snap: testSnapshot(), namespace: "default", selector: "service=nope",
			metric: MetricPredictedReplicas, want: nil},
		{name: "other namespace", snap: testSnapshot(), namespace: "shop",
			metric: MetricPredictedReplicas, want: []served{{"frontend", 7000}}},
		{name: "namespace without predictions", snap: testSnapshot(), namespace: "kube-system",
			metric: MetricPredictedReplicas, want: nil},
		{name: "requests keep milli precision; NaN skipped", snap: testSnapshot(), namespace: "default",
			metric: MetricPredictedRequests, want: []served{{"cartservice", 10000}, {"frontend", 123457}}},
		{name: "cpu cores as milli-cores; negative skipped", snap: testSnapshot(), namespace: "default",
			metric: MetricPredictedCPUCores, want: []served{{"cartservice", 250}, {"frontend", 800}}},
		{name: "before the first cycle", snap: nil, namespace: "default",
			metric: MetricPredictedReplicas, want: nil},
		{name: "everything expired", snap: testSnapshot(), now: testNow.Add(time.Hour), namespace: "default",
			metric: MetricPredictedReplicas, want: nil},
		{name: "duplicate service served once, newest", snap: dup, namespace: "default", selector: "service=frontend",
			metric: MetricPredictedReplicas, want: []served{{"frontend", 6000}}},
		{name: "zero replicas never served", snap: zero, namespace: "default",
			metric: MetricPredictedReplicas, want: []served{{"cartservice", 1000}}},
		{name: "zero requests is a forecast; infinities are not", snap: zero, namespace: "default",
			metric: MetricPredictedRequests, want: []served{{"frontend", 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := testNow
			if !tt.now.IsZero() {
				now = tt.now
			}
			store := &snapshot.Store{}
			if tt.snap != nil {
				store.Publish(tt.snap)
			}
			p := NewExternalMetricsProvider(store, func() time.Time { return now }, quietLogger())
			selector := labels.Everything()
			if tt.selector != "" {
				var err error
				if selector, err = labels.Parse(tt.selector); err != nil {
					t.Fatalf("parsing selector %q: %v", tt.selector, err)
				}
			}

			list, err := p.GetExternalMetric(context.Background(), tt.namespace, selector, provider.ExternalMetricInfo{Metric: tt.metric})
			if err != nil {
				t.Fatalf("GetExternalMetric: %v", err)
			}
			var got []served
			for _, item := range list.Items {
				if item.MetricName != tt.metric {
					t.Errorf("item metric name %q, want %q", item.MetricName, tt.metric)
				}
				if h := item.MetricLabels[LabelHorizon]; h != "120s" {
					t.Errorf("%s: horizon label %q, want 120s", item.MetricLabels[LabelService], h)
				}
				got = append(got, served{item.MetricLabels[LabelService], item.Value.MilliValue()})
			}
			slices.SortFunc(got, func(a, b served) int { return strings.Compare(a.service, b.service) })
			if !slices.Equal(got, tt.want) {
				t.Errorf("served %v, want %v", got, tt.want)
			}
		})
	}
}

func TestGetExternalMetricItemShape(t *testing.T) {
	store := &snapshot.Store{}
	store.Publish(testSnapshot())
	p := NewExternalMetricsProvider(store, func() time.Time { return testNow }, quietLogger())
	sel, err := labels.Parse("service=frontend")
	if err != nil {
		t.Fatal(err)
	}
	list, err := p.GetExternalMetric(context.Background(), "default", sel, provider.ExternalMetricInfo{Metric: MetricPredictedRequests})
	if err != nil {
		t.Fatalf("GetExternalMetric: %v", err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("got %d items, want 1", len(list.Items))
	}
	item := list.Items[0]
	wantLabels := map[string]string{LabelService: "frontend", LabelHorizon: "120s", LabelModel: "gru-v1"}
	if len(item.MetricLabels) != len(wantLabels) {
		t.Errorf("labels %v, want %v", item.MetricLabels, wantLabels)
	}
	for k, v := range wantLabels {
		if item.MetricLabels[k] != v {
			t.Errorf("label %s = %q, want %q", k, item.MetricLabels[k], v)
		}
	}
	if !item.Timestamp.Time.Equal(testNow.Add(-10 * time.Second)) {
		t.Errorf("timestamp %v, want the prediction's ComputedAt %v", item.Timestamp.Time, testNow.Add(-10*time.Second))
	}
	if s := item.Value.String(); s != "123457m" {
		t.Errorf("value %s, want 123457m", s)
	}
}

func TestGetExternalMetricUnknown(t *testing.T) {
	store := &snapshot.Store{}
	store.Publish(testSnapshot())
	p := NewExternalMetricsProvider(store, func() time.Time { return testNow }, quietLogger())
	_, err := p.GetExternalMetric(context.Background(), "default", labels.Everything(), provider.ExternalMetricInfo{Metric: "foresight_predicted_bananas"})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("error %v, want NotFound", err)
	}
	if !strings.Contains(err.Error(), "foresight_predicted_bananas") {
		t.Errorf("error %q does not name the metric", err)
	}
}

func TestListAllExternalMetrics(t *testing.T) {
	p := NewExternalMetricsProvider(&snapshot.Store{}, time.Now, quietLogger())
	var got []string
	for _, m := range p.ListAllExternalMetrics() {
		got = append(got, m.Metric)
	}
	want := []string{MetricPredictedReplicas, MetricPredictedRequests, MetricPredictedCPUCores}
	if !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
}

func TestFormatHorizon(t *testing.T) {
	for _, tt := range []struct {
		in   time.Duration
		want string
	}{
		{2 * time.Minute, "120s"},
		{30 * time.Second, "30s"},
		{1500 * time.Millisecond, "1.5s"},
		{time.Hour, "3600s"},
		{0, "0s"},
	} {
		if got := formatHorizon(tt.in); got != tt.want {
			t.Errorf("formatHorizon(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func BenchmarkGetExternalMetric(b *testing.B) {
	// A snapshot the size of a large deployment: 200 services in one namespace.
	snap := &snapshot.Snapshot{Model: "gru-v1"}
	for i := range 200 {
		snap.Predictions = append(snap.Predictions, prediction("default", "svc-"+string(rune('a'+i%26))+strings.Repeat("x", i/26), 3, 100, 0.5))
	}
	store := &snapshot.Store{}
	store.Publish(snap)
	p := NewExternalMetricsProvider(store, func() time.Time { return testNow }, quietLogger())
	sel, err := labels.Parse("service=svc-a")
	if err != nil {
		b.Fatal(err)
	}
	info := provider.ExternalMetricInfo{Metric: MetricPredictedReplicas}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		list, err := p.GetExternalMetric(ctx, "default", sel, info)
		if err != nil || len(list.Items) != 1 {
			b.Fatalf("got %v items, err %v", list, err)
		}
	}
}

// TestGetExternalMetricModelOfEachPrediction: a service the fallback
// forecasts carries model=fallback, so an HPA (or a user) can tell, and a
// selector on the model picks it out.
func TestGetExternalMetricModelOfEachPrediction(t *testing.T) {
	snap := testSnapshot()
	snap.Predictions = append(snap.Predictions, prediction("default", "ts-new", 3, 30, 0.3, func(p *snapshot.Prediction) { p.Model = "fallback" }))
	store := &snapshot.Store{}
	store.Publish(snap)
	p := NewExternalMetricsProvider(store, func() time.Time { return testNow }, quietLogger())
	for _, tc := range []struct{ selector, want string }{
		{"service=ts-new", "fallback"},
		{"model=fallback", "fallback"},
		{"service=frontend", "gru-v1"},
	} {
		sel, err := labels.Parse(tc.selector)
		if err != nil {
			t.Fatal(err)
		}
		list, err := p.GetExternalMetric(context.Background(), "default", sel, provider.ExternalMetricInfo{Metric: MetricPredictedReplicas})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 || list.Items[0].MetricLabels[LabelModel] != tc.want {
			t.Errorf("%s: items %+v, want one with model %s", tc.selector, list.Items, tc.want)
		}
	}
}
