package adapter

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/foresightscale/foresight/forecaster/snapshot"
)

// selectorTimeBound is how long one selector may take through the whole
// path (size check, parse, both providers); generous for a loaded machine,
// tiny next to the API server's 60 s request timeout.
const selectorTimeBound = 2 * time.Second

// FuzzSelector sends arbitrary label selectors the way a request does: the
// URI size check first, then labels.Parse (what the library does with
// labelSelector and metricLabelSelector), then the external and custom
// metrics providers. Invariants: nothing panics; a selector whose URI is
// over MaxRequestURIBytes is refused with 414 before any parsing; every item
// served matches the selector on its own labels, and every fresh, valid
// prediction the selector matches is served (the providers' allocation-free
// label matching agrees with a plain label map); custom-metric errors are
// short Kubernetes errors; the selector echoed in an answer selects the
// same items; and each input finishes within selectorTimeBound.
func FuzzSelector(f *testing.F) {
	for _, s := range []string{
		"", "service=frontend", "service==frontend", "service in (frontend,cartservice)",
		"service notin (frontend)", "service!=frontend", "!model", "model", "horizon=120s",
		"service=frontend,horizon=120s,model=gru-v1", "service=frontend,service=cartservice",
		"serving.knative.dev/service=frontend", "x in ()", "service in (", "(", ",,,", "=", "!", "service=frontend,",
		"service=\x00", "service=fr\xffontend", "service gt 3", "service>1", "a b c",
		strings.Repeat("a", 64) + "=" + strings.Repeat("b", 64),
		"service in (" + strings.Repeat("x,", 5000) + "frontend)", // over the URI bound once escaped
		hugeSelector(400 << 10),                                   // the 400 KB selector
	} {
		f.Add(s)
	}
	store := &snapshot.Store{}
	store.Publish(testSnapshot())
	now := func() time.Time { return testNow }
	external := NewExternalMetricsProvider(store, now, quietLogger())
	custom := NewCustomMetricsProvider(store, now, quietLogger())
	fresh := store.Latest().Fresh(testNow, "default")

	f.Fuzz(func(t *testing.T, raw string) {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > selectorTimeBound {
				t.Errorf("selector of %d bytes took %v, over %v", len(raw), d, selectorTimeBound)
			}
		}()

		// 1. The size check in front of the library.
		parsed := false
		var sel labels.Selector
		var parseErr error
		h := limitRequestURI(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			parsed = true
			sel, parseErr = labels.Parse(raw)
		}), MaxRequestURIBytes, newRejectedRequestsCounter(), quietLogger())
		target := ExternalMetricPath("default", MetricPredictedReplicas) + "?labelSelector=" + url.QueryEscape(raw)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		if len(target) > MaxRequestURIBytes {
			if rec.Code != http.StatusRequestURITooLong || parsed {
				t.Fatalf("URI of %d bytes: status %d, parsed %v; want 414 before parsing", len(target), rec.Code, parsed)
			}
			return
		}
		if !parsed {
			t.Fatalf("URI of %d bytes (under the bound) was refused with %d", len(target), rec.Code)
		}
		if parseErr != nil {
			return // the library answers 400 with the parse error
		}

		// 2. External metrics: served == matched, by a plain label map.
		list, err := external.GetExternalMetric(context.Background(), "default", sel, provider.ExternalMetricInfo{Metric: MetricPredictedReplicas})
		if err != nil {
			t.Fatalf("GetExternalMetric(%q): %v", raw, err)
		}
		servedBy := map[string]bool{}
		for _, item := range list.Items {
			if !sel.Matches(labels.Set(item.MetricLabels)) {
				t.Errorf("selector %q: served item %v it does not match", raw, item.MetricLabels)
			}
			if servedBy[item.MetricLabels[LabelService]] {
				t.Errorf("selector %q: service %s served twice", raw, item.MetricLabels[LabelService])
			}
			servedBy[item.MetricLabels[LabelService]] = true
			if item.Value.Sign() < 0 {
				t.Errorf("selector %q: negative value %v", raw, item.Value.String())
			}
		}
		for _, p := range fresh {
			if p.Service == "" {
				continue
			}
			if _, err := PublishableValue(MetricPredictedReplicas, p); err != nil {
				continue
			}
			set := itemLabels{service: p.Service, horizon: p.Horizon, model: store.Latest().Model}.set()
			if sel.Matches(labels.Set(set)) != servedBy[p.Service] {
				t.Errorf("selector %q: %s matches %v but served %v", raw, p.Service, sel.Matches(labels.Set(set)), servedBy[p.Service])
			}
		}

		// 3. The selector echoed in a custom-metrics answer selects the same items.
		if echo := labelSelector(sel); echo != nil {
			back, err := metav1.LabelSelectorAsSelector(echo)
			if err != nil {
				t.Fatalf("selector %q: echoed %v does not convert back: %v", raw, echo, err)
			}
			for _, p := range fresh {
				set := labels.Set(itemLabels{service: p.Service, horizon: p.Horizon, model: "gru-v1"}.set())
				if back.Matches(set) != sel.Matches(set) {
					t.Errorf("selector %q: echoed as %v, which matches %v differently", raw, echo, set)
				}
			}
		} else if !sel.Empty() {
			// Only gt/lt selectors have no echo: they must match no item.
			for _, p := range fresh {
				if set := labels.Set(itemLabels{service: p.Service, horizon: p.Horizon, model: "gru-v1"}.set()); sel.Matches(set) {
					t.Errorf("selector %q (parsed %q) matches %v but is echoed as everything", raw, sel.String(), set)
				}
			}
		}

		// 4. Custom metrics of a named Deployment: a value of the selected
		// service, or a short, typed error.
		info := provider.CustomMetricInfo{GroupResource: schema.GroupResource{Group: "apps", Resource: "deployments"}, Namespaced: true, Metric: MetricPredictedReplicas}
		v, err := custom.GetMetricByName(context.Background(), types.NamespacedName{Namespace: "default", Name: "frontend"}, info, sel)
		switch {
		case err != nil:
			if !apierrors.IsBadRequest(err) && !apierrors.IsNotFound(err) {
				t.Errorf("selector %q: error %v is neither BadRequest nor NotFound", raw, err)
			}
			if n := len(err.Error()); n > 4*logPrefixBytes+400 {
				t.Errorf("selector %q: error of %d bytes echoes too much: %.300s", raw, n, err)
			}
		case v.DescribedObject.Name != "frontend" || v.Value.Sign() <= 0:
			t.Errorf("selector %q: custom metric %+v, want the frontend Deployment with a positive value", raw, v)
		default:
			// The value served is that of a service the selector selects.
			service, _ := serviceFromSelector(sel, "frontend")
			if set := labels.Set(itemLabels{service: service, horizon: 2 * time.Minute, model: "gru-v1"}.set()); !sel.Matches(set) {
				t.Errorf("selector %q: served service %s, which it does not select", raw, service)
			}
		}
	})
}
