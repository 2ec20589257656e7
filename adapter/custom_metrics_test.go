package adapter

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/foresightscale/foresight/forecaster/snapshot"
)

var deployments = schema.GroupResource{Group: "apps", Resource: "deployments"}

func TestCustomMetricByName(t *testing.T) {
	invalid := &snapshot.Snapshot{Predictions: []snapshot.Prediction{prediction("default", "frontend", 0, -1, 1)}}
	tests := []struct {
		name      string
		snap      *snapshot.Snapshot
		now       time.Time
		resource  schema.GroupResource
		object    types.NamespacedName
		selector  string
		metric    string
		wantMilli int64
		wantKind  string
		wantErr   func(error) bool
	}{
		{name: "Deployment named like its service", snap: testSnapshot(), resource: deployments,
			object: types.NamespacedName{Namespace: "default", Name: "frontend"}, metric: MetricPredictedReplicas,
			wantMilli: 4000, wantKind: "Deployment"},
		{name: "StatefulSet", snap: testSnapshot(), resource: schema.GroupResource{Group: "apps", Resource: "statefulsets"},
			object: types.NamespacedName{Namespace: "default", Name: "cartservice"}, metric: MetricPredictedReplicas,
			wantMilli: 2000, wantKind: "StatefulSet"},
		{name: "selector names the service of a differently named Deployment", snap: testSnapshot(), resource: deployments,
			object: types.NamespacedName{Namespace: "default", Name: "web-v2"}, selector: "service=frontend",
			metric: MetricPredictedRequests, wantMilli: 123457, wantKind: "Deployment"},
		{name: "namespace is the Deployment's", snap: testSnapshot(), resource: deployments,
			object: types.NamespacedName{Namespace: "shop", Name: "frontend"}, metric: MetricPredictedCPUCores,
			wantMilli: 2000, wantKind: "Deployment"},
		{name: "no prediction for the service", snap: testSnapshot(), resource: deployments,
			object: types.NamespacedName{Namespace: "default", Name: "checkout"}, metric: MetricPredictedReplicas,
			wantErr: apierrors.IsNotFound},
		{name: "expired", snap: testSnapshot(), now: testNow.Add(time.Hour), resource: deployments,
			object: types.NamespacedName{Namespace: "default", Name: "frontend"}, metric: MetricPredictedReplicas,
			wantErr: apierrors.IsNotFound},
		{name: "before the first cycle", snap: nil, resource: deployments,
			object: types.NamespacedName{Namespace: "default", Name: "frontend"}, metric: MetricPredictedReplicas,
			wantErr: apierrors.IsNotFound},
		{name: "invalid replicas are never served", snap: invalid, resource: deployments,
			object: types.NamespacedName{Namespace: "default", Name: "frontend"}, metric: MetricPredictedReplicas,
			wantErr: apierrors.IsNotFound},
		{name: "invalid requests are never served", snap: invalid, resource: deployments,
			object: types.NamespacedName{Namespace: "default", Name: "frontend"}, metric: MetricPredictedRequests,
			wantErr: apierrors.IsNotFound},
		{name: "unknown metric", snap: testSnapshot(), resource: deployments,
			object: types.NamespacedName{Namespace: "default", Name: "frontend"}, metric: "cpu_usage",
			wantErr: apierrors.IsNotFound},
		{name: "pods are not described", snap: testSnapshot(), resource: schema.GroupResource{Resource: "pods"},
			object: types.NamespacedName{Namespace: "default", Name: "frontend-abc"}, metric: MetricPredictedReplicas,
			wantErr: apierrors.IsNotFound},
		{name: "selector on another label", snap: testSnapshot(), resource: deployments,
			object: types.NamespacedName{Namespace: "default", Name: "frontend"}, selector: "horizon=120s",
			metric: MetricPredictedReplicas, wantErr: apierrors.IsBadRequest},
		{name: "selector naming two services", snap: testSnapshot(), resource: deployments,
			object: types.NamespacedName{Namespace: "default", Name: "frontend"}, selector: "service in (frontend,cartservice)",
			metric: MetricPredictedReplicas, wantErr: apierrors.IsBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &snapshot.Store{}
			if tt.snap != nil {
				store.Publish(tt.snap)
			}
			now := tt.now
			if now.IsZero() {
				now = testNow
			}
			p := NewCustomMetricsProvider(store, func() time.Time { return now }, quietLogger())
			sel := labels.Everything()
			if tt.selector != "" {
				var err error
				if sel, err = labels.Parse(tt.selector); err != nil {
					t.Fatal(err)
				}
			}
			info := provider.CustomMetricInfo{GroupResource: tt.resource, Namespaced: true, Metric: tt.metric}
			got, err := p.GetMetricByName(context.Background(), tt.object, info, sel)
			if tt.wantErr != nil {
				if err == nil || !tt.wantErr(err) {
					t.Fatalf("got %v, %v; want an error of the right kind", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Value.MilliValue() != tt.wantMilli {
				t.Errorf("value %s, want %dm", got.Value.String(), tt.wantMilli)
			}
			obj := got.DescribedObject
			if obj.Kind != tt.wantKind || obj.APIVersion != "apps/v1" || obj.Name != tt.object.Name || obj.Namespace != tt.object.Namespace {
				t.Errorf("described object %+v, want %s %s", obj, tt.wantKind, tt.object)
			}
			if got.Metric.Name != tt.metric {
				t.Errorf("metric %q, want %q", got.Metric.Name, tt.metric)
			}
		})
	}
}

func TestCustomMetricBySelector(t *testing.T) {
	store := &snapshot.Store{}
	store.Publish(testSnapshot())
	p := NewCustomMetricsProvider(store, func() time.Time { return testNow }, quietLogger())
	info := provider.CustomMetricInfo{GroupResource: deployments, Namespaced: true, Metric: MetricPredictedReplicas}

	list, err := p.GetMetricBySelector(context.Background(), "default", labels.Everything(), info, labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, it := range list.Items {
		got[it.DescribedObject.Name] = it.Value.Value()
	}
	// broken has valid replicas (3); adservice expired; the nameless one is skipped.
	want := map[string]int64{"frontend": 4, "cartservice": 2, "broken": 3}
	if len(got) != len(want) {
		t.Errorf("items %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}

	byLabel, _ := labels.Parse("app=frontend")
	if _, err := p.GetMetricBySelector(context.Background(), "default", byLabel, info, labels.Everything()); !apierrors.IsBadRequest(err) {
		t.Errorf("a label selector on workloads: %v, want BadRequest", err)
	}
}

func TestListAllCustomMetrics(t *testing.T) {
	p := NewCustomMetricsProvider(&snapshot.Store{}, time.Now, quietLogger())
	got := p.ListAllMetrics()
	if len(got) != len(workloadResources)*len(externalMetricNames) {
		t.Fatalf("%d metrics listed, want %d", len(got), len(workloadResources)*len(externalMetricNames))
	}
	seen := map[string]bool{}
	for _, m := range got {
		if !m.Namespaced {
			t.Errorf("%v is not namespaced", m)
		}
		seen[m.GroupResource.String()+"/"+m.Metric] = true
	}
	if !seen["deployments.apps/"+MetricPredictedReplicas] {
		t.Errorf("deployments.apps/%s not listed: %v", MetricPredictedReplicas, got)
	}
}

func pod(name, service string, phase corev1.PodPhase) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"serving.knative.dev/service": service}},
		Status:     corev1.PodStatus{Phase: phase},
	}
}

// TestCustomMetricPods: each running pod reports its share, so the HPA's
// ceil(sum / averageValue) is the prediction.
func TestCustomMetricPods(t *testing.T) {
	store := &snapshot.Store{}
	store.Publish(testSnapshot()) // default: frontend 4 replicas / 123.4567 req/s, cartservice 2
	pods := []corev1.Pod{
		pod("frontend-a", "frontend", corev1.PodRunning),
		pod("frontend-b", "frontend", corev1.PodRunning),
		pod("frontend-c", "frontend", corev1.PodRunning),
		pod("frontend-d", "frontend", corev1.PodPending), // the HPA ignores its value
		pod("checkout-a", "checkout", corev1.PodRunning), // no prediction
		{ObjectMeta: metav1.ObjectMeta{Name: "unlabelled"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}},
	}
	var listErr error
	list := func(_ context.Context, ns string, sel labels.Selector) ([]corev1.Pod, error) {
		if ns != "default" {
			t.Errorf("listed pods in %q", ns)
		}
		var out []corev1.Pod
		for _, p := range pods {
			if sel.Matches(labels.Set(p.Labels)) {
				out = append(out, p)
			}
		}
		return out, listErr
	}
	p := NewCustomMetricsProvider(store, func() time.Time { return testNow }, quietLogger())
	info := func(metric string) provider.CustomMetricInfo {
		return provider.CustomMetricInfo{GroupResource: podsResource, Namespaced: true, Metric: metric}
	}
	if _, err := p.GetMetricBySelector(context.Background(), "default", labels.Everything(), info(MetricPredictedReplicas), labels.Everything()); !apierrors.IsNotFound(err) {
		t.Fatalf("pod metrics while off: %v, want NotFound", err)
	}
	p.WithPods(list, DefaultPodServiceLabels)

	tests := []struct {
		name     string
		selector string
		metric   string
		metricSl string
		want     map[string]int64 // pod → milli-value
		wantErr  func(error) bool
	}{
		// 4 replicas over 3 running pods: 1333m each, 3999m in all → ceil(3.999) = 4.
		{name: "replicas shared by the running pods", selector: "serving.knative.dev/service=frontend", metric: MetricPredictedReplicas,
			want: map[string]int64{"frontend-a": 1333, "frontend-b": 1333, "frontend-c": 1333}},
		{name: "requests shared too", selector: "serving.knative.dev/service=frontend", metric: MetricPredictedRequests,
			want: map[string]int64{"frontend-a": 41152, "frontend-b": 41152, "frontend-c": 41152}},
		{name: "metric selector names the service", selector: "serving.knative.dev/service=checkout", metricSl: "service=cartservice", metric: MetricPredictedReplicas,
			want: map[string]int64{"checkout-a": 2000}},
		{name: "a service without a prediction", selector: "serving.knative.dev/service=checkout", metric: MetricPredictedReplicas,
			wantErr: apierrors.IsNotFound},
		{name: "pods cannot be listed", selector: "serving.knative.dev/service=frontend", metric: MetricPredictedReplicas,
			wantErr: apierrors.IsServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			listErr = nil
			if tt.name == "pods cannot be listed" {
				listErr = errors.New("forbidden")
			}
			sel, err := labels.Parse(tt.selector)
			if err != nil {
				t.Fatal(err)
			}
			msel := labels.Everything()
			if tt.metricSl != "" {
				if msel, err = labels.Parse(tt.metricSl); err != nil {
					t.Fatal(err)
				}
			}
			got, err := p.GetMetricBySelector(context.Background(), "default", sel, info(tt.metric), msel)
			if tt.wantErr != nil {
				if err == nil || !tt.wantErr(err) {
					t.Fatalf("got %v, %v; want an error of the right kind", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			values := map[string]int64{}
			for _, it := range got.Items {
				if it.DescribedObject.Kind != "Pod" {
					t.Errorf("described %+v, want a Pod", it.DescribedObject)
				}
				values[it.DescribedObject.Name] = it.Value.MilliValue()
			}
			if len(values) != len(tt.want) {
				t.Errorf("values %v, want %v", values, tt.want)
			}
			for name, v := range tt.want {
				if values[name] != v {
					t.Errorf("%s = %dm, want %dm", name, values[name], v)
				}
			}
		})
	}
}
