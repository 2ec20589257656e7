package adapter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/foresightscale/foresight/forecaster/snapshot"
)

// hugeSelector is a syntactically valid label selector of about n bytes, the
// shape of the one that took the process to 1.3 GB.
func hugeSelector(n int) string {
	var b strings.Builder
	b.WriteString("service in (frontend")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, ",svc%d", i)
	}
	b.WriteString(")")
	return b.String()
}

func TestLimitRequestURI(t *testing.T) {
	const limit = 1024
	base := ExternalMetricPath("default", MetricPredictedReplicas) + "?labelSelector="
	for _, tt := range []struct {
		name     string
		selector string
		wantCode int
	}{
		{"one service", "service=frontend", http.StatusOK},
		{"at the limit", strings.Repeat("a", limit-len(base)), http.StatusOK},
		{"one byte over", strings.Repeat("a", limit-len(base)+1), http.StatusRequestURITooLong},
		{"400 KB selector", hugeSelector(400 << 10), http.StatusRequestURITooLong},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			rejected := newRejectedRequestsCounter()
			called := false
			next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { called = true })
			h := limitRequestURI(next, limit, rejected, slog.New(slog.NewTextHandler(&logs, nil)))

			req := httptest.NewRequest(http.MethodGet, base+url.QueryEscape(tt.selector), nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantCode)
			}
			count := testutil.ToFloat64(rejected.WithLabelValues(RejectReasonURITooLong))
			if tt.wantCode == http.StatusOK {
				if !called || count != 0 || logs.Len() != 0 {
					t.Errorf("accepted request: next called %v, rejected counter %v, log %q", called, count, logs.String())
				}
				return
			}
			if called {
				t.Error("an oversized request reached the library's handler")
			}
			if count != 1 {
				t.Errorf("foresight_api_requests_rejected_total{reason=%q} = %v, want 1", RejectReasonURITooLong, count)
			}
			var status metav1.Status
			if err := json.Unmarshal(rec.Body.Bytes(), &status); err != nil {
				t.Fatalf("body is not a Status: %v\n%s", err, rec.Body.String())
			}
			if status.Code != http.StatusRequestURITooLong || status.Kind != "Status" || !strings.Contains(status.Message, "label selector") {
				t.Errorf("status %+v, want a 414 Status naming the label selector", status)
			}
			// The log names the length and quotes only a prefix: never the selector.
			if logs.Len() > 2*logPrefixBytes+300 || !strings.Contains(logs.String(), fmt.Sprintf("uri_bytes=%d", len(req.RequestURI))) {
				t.Errorf("log line of %d bytes, want < %d and the length: %.400s", logs.Len(), 2*logPrefixBytes+300, logs.String())
			}
			if rec.Body.Len() > 512 {
				t.Errorf("answer of %d bytes, want a short Status", rec.Body.Len())
			}
		})
	}
}

func TestQuotePrefix(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, `"short"`},
		{"abcdefghij", 5, `"abcde"… (10 bytes)`},
		{"ééé", 3, `"é"… (6 bytes)`}, // never cut inside a rune
		{"a\xffb", 10, `"a\xffb"`},
	} {
		if got := quotePrefix(tt.in, tt.n); got != tt.want {
			t.Errorf("quotePrefix(%q, %d) = %s, want %s", tt.in, tt.n, got, tt.want)
		}
	}
	if got := truncate(strings.Repeat("x", 1<<20), 200); len(got) != 200 {
		t.Errorf("truncate kept %d bytes, want 200", len(got))
	}
}

// TestRegisterCountersTwice: two adapters on one registry share the
// counters instead of failing to start.
func TestRegisterCountersTwice(t *testing.T) {
	for _, newCounter := range []func() *prometheus.CounterVec{newRejectedRequestsCounter, newResponseCacheCounter} {
		registry := prometheus.NewRegistry()
		first, err := registerCounterVec(registry, newCounter())
		if err != nil {
			t.Fatal(err)
		}
		second, err := registerCounterVec(registry, newCounter())
		if err != nil || second != first {
			t.Fatalf("second registration: %v, same counter %v", err, second == first)
		}
	}
}

// TestDemoServerRefusesHugeSelectors runs the real adapter (demo mode, both
// APIs) and sends the selectors of the issue: 400 KB, many at once. Each
// gets a quick 414 and is counted on /metrics; ordinary selectors still work.
func TestDemoServerRefusesHugeSelectors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an HTTPS API server; skipped with -short")
	}
	store := &snapshot.Store{}
	store.Publish(liveSnapshot())
	s := startDemo(t, t.TempDir(), freePort(t), freePort(t), store, nil)

	huge := url.QueryEscape(hugeSelector(400 << 10))
	urls := []string{
		s.apiURL + ExternalMetricPath("default", MetricPredictedReplicas) + "?labelSelector=" + huge,
		s.apiURL + "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/deployments.apps/frontend/" +
			MetricPredictedReplicas + "?metricLabelSelector=" + huge,
	}
	const concurrent = 20
	var wg sync.WaitGroup
	codes := make(chan int, concurrent*len(urls))
	start := time.Now()
	for i := range concurrent * len(urls) {
		wg.Go(func() {
			resp, err := s.client.Get(urls[i%len(urls)])
			if err != nil {
				t.Errorf("GET with a 400 KB selector: %v", err)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != http.StatusRequestURITooLong {
				t.Errorf("status %d, want 414: %.300s", resp.StatusCode, body)
			}
			codes <- resp.StatusCode
		})
	}
	wg.Wait()
	close(codes)
	elapsed := time.Since(start)
	t.Logf("%d requests with a 400 KB selector answered in %v", len(codes), elapsed)
	// Generous for a loaded 2-core machine; parsing them used to take seconds each.
	if elapsed > 10*time.Second {
		t.Errorf("%d oversized requests took %v, want a quick refusal", len(codes), elapsed)
	}

	// Small selectors still work, on both APIs.
	code, body := get(t, s.client, s.apiURL+ExternalMetricPath("default", MetricPredictedReplicas)+"?labelSelector="+url.QueryEscape("service in (frontend,cartservice)"))
	if code != http.StatusOK || !strings.Contains(string(body), `"service":"frontend"`) {
		t.Errorf("small selector: %d %.300s", code, body)
	}
	code, body = get(t, s.client, s.apiURL+"/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/deployments.apps/frontend/"+
		MetricPredictedReplicas+"?metricLabelSelector=service%3Dfrontend")
	if code != http.StatusOK {
		t.Errorf("custom metric with a small selector: %d %.300s", code, body)
	}

	plain := &http.Client{Timeout: 10 * time.Second}
	defer plain.CloseIdleConnections()
	_, metrics := get(t, plain, s.metricsURL+"/metrics")
	want := fmt.Sprintf(`foresight_api_requests_rejected_total{reason="uri_too_long"} %d`, concurrent*len(urls))
	if !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
