package source_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/promtest"
)

// LatencyP99 feeds the SLO feedback, not the models: models are trained on
// AllFeatures (and their manifests validated with ParseFeature), so adding it
// there would make every trained model expect a quantile series that CSV
// training data does not have. If this fails, move the feature back to
// FeedbackFeatures.
func TestLatencyP99IsNotAModelFeature(t *testing.T) {
	if slices.Contains(source.AllFeatures, source.LatencyP99) {
		t.Errorf("AllFeatures = %v holds %s, a feedback-only feature", source.AllFeatures, source.LatencyP99)
	}
	if _, err := source.ParseFeature(string(source.LatencyP99)); err == nil {
		t.Errorf("ParseFeature(%q) succeeded; models must not accept it", source.LatencyP99)
	}
	if !slices.Contains(source.FeedbackFeatures, source.LatencyP99) {
		t.Errorf("FeedbackFeatures = %v, want it to hold %s", source.FeedbackFeatures, source.LatencyP99)
	}
}

func TestParseQueryFeature(t *testing.T) {
	for _, f := range append(slices.Clone(source.AllFeatures), source.FeedbackFeatures...) {
		if got, err := source.ParseQueryFeature(string(f)); err != nil || got != f {
			t.Errorf("ParseQueryFeature(%q) = %q, %v; want %q", f, got, err, f)
		}
	}
	for _, s := range []string{"", "disk", "p99", "Latency_P99"} {
		if _, err := source.ParseQueryFeature(s); err == nil || !strings.Contains(err.Error(), "latency_p99") {
			t.Errorf("ParseQueryFeature(%q) error = %v, want an error listing latency_p99", s, err)
		}
	}
}

// The p99 latency goes through the Prometheus source like any feature: the
// default query reads the recorded p99 with max (a quantile is not
// additive), an override replaces it, and a service without series is
// absent, not an error.
func TestPrometheusFetchLatencyP99(t *testing.T) {
	tests := []struct {
		name      string
		queries   map[source.Feature]string
		wantQuery string
	}{
		{
			name:      "default query",
			wantQuery: `max by (service) (service:foresight_latency_seconds:p99_1m{namespace="shop"})`,
		},
		{
			name: "override",
			queries: map[source.Feature]string{source.LatencyP99: `max by (service) (label_replace(` +
				`histogram_quantile(0.99, sum by (app, le) (rate(http_request_duration_seconds_bucket{namespace="{{.Namespace}}"}[1m]))), "service", "$1", "app", "(.+)"))`},
			wantQuery: `max by (service) (label_replace(` +
				`histogram_quantile(0.99, sum by (app, le) (rate(http_request_duration_seconds_bucket{namespace="shop"}[1m]))), "service", "$1", "app", "(.+)"))`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Only frontend has a p99 series: cartservice received no requests.
			fake := newFakePrometheus(t, reply(matrixJSON(
				series{map[string]string{"service": "frontend"}, []float64{0.25, math.NaN(), 0.4}},
			)))
			cfg := configFor(fake.URL)
			cfg.Queries = tt.queries
			p, _ := newSource(t, cfg)
			if got, err := p.Query(source.LatencyP99, "shop"); err != nil || got != tt.wantQuery {
				t.Errorf("Query = %q, %v; want %q", got, err, tt.wantQuery)
			}
			data, err := p.Fetch(context.Background(), testQuery(source.LatencyP99))
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			reqs := fake.recorded()
			if len(reqs) != 1 || reqs[0].Form.Get("query") != tt.wantQuery {
				t.Fatalf("sent %d queries (first %q), want one: %q", len(reqs), firstQuery(reqs), tt.wantQuery)
			}
			got := data[source.LatencyP99]
			if _, ok := got["cartservice"]; ok || len(got) != 1 {
				t.Fatalf("services = %v, want frontend only", keys(got))
			}
			want := []float64{0.25, math.NaN(), 0.4}
			samples := got["frontend"]
			if len(samples) != len(want) {
				t.Fatalf("frontend: %d samples, want %d", len(samples), len(want))
			}
			for i, v := range want {
				if !sameValue(samples[i].Value, v) {
					t.Errorf("frontend[%d] = %v, want %v", i, samples[i].Value, v)
				}
			}
		})
	}
}

// TestPrometheusLatencyP99AgainstRealServer backfills the recorded p99
// series twice for one service (as a federated or remote-read setup returns
// them, once per Prometheus replica) and checks that the default query keeps
// the larger, per step.
func TestPrometheusLatencyP99AgainstRealServer(t *testing.T) {
	const step = 30 * time.Second
	start := time.Date(2024, 4, 6, 12, 0, 0, 0, time.UTC)
	replicaA := []float64{0.2, 0.5, 0.3, 0.3}
	replicaB := []float64{0.4, 0.1, 0.3, 0.6}
	var om strings.Builder
	om.WriteString("# TYPE service:foresight_latency_seconds:p99_1m gauge\n")
	for _, s := range []struct {
		labels string
		values []float64
	}{
		{`namespace="shop",service="frontend",prometheus_replica="a"`, replicaA},
		{`namespace="shop",service="frontend",prometheus_replica="b"`, replicaB},
		{`namespace="shop",service="cartservice",prometheus_replica="a"`, []float64{0.01, 0.02, 0.03, 0.04}},
		// Another namespace: not read.
		{`namespace="other",service="frontend",prometheus_replica="a"`, []float64{9, 9, 9, 9}},
	} {
		for i, v := range s.values {
			fmt.Fprintf(&om, "service:foresight_latency_seconds:p99_1m{%s} %v %d\n", s.labels, v, start.Add(time.Duration(i)*step).Unix())
		}
	}
	om.WriteString("# EOF\n")
	backfill := filepath.Join(t.TempDir(), "p99.om.txt")
	if err := os.WriteFile(backfill, []byte(om.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := promtest.Start(t, promtest.Options{Backfill: backfill})
	p, _ := newSource(t, configFor(srv.URL()))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data, err := p.Fetch(ctx, source.Query{Namespace: "shop", Services: []string{"frontend", "cartservice", "adservice"},
		Features: []source.Feature{source.LatencyP99}, Start: start, End: start.Add(3 * step), Step: step})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	want := map[string][]float64{
		"frontend":    {0.4, 0.5, 0.3, 0.6}, // the larger replica, step by step
		"cartservice": {0.01, 0.02, 0.03, 0.04},
		// adservice has no series: absent.
	}
	got := data[source.LatencyP99]
	if len(got) != len(want) {
		t.Fatalf("services = %v, want frontend and cartservice", keys(got))
	}
	for service, values := range want {
		samples := got[service]
		if len(samples) != len(values) {
			t.Fatalf("%s: %d samples, want %d", service, len(samples), len(values))
		}
		for i, v := range values {
			at := start.Add(time.Duration(i) * step)
			if !samples[i].Time.Equal(at) || samples[i].Value != v {
				t.Errorf("%s[%d] = %v at %v, want %v at %v", service, i, samples[i].Value, samples[i].Time, v, at)
			}
		}
	}
}

func firstQuery(reqs []*http.Request) string {
	if len(reqs) == 0 {
		return ""
	}
	return reqs[0].Form.Get("query")
}

// Sources that cannot measure the p99 latency answer without it, so that the
// feedback loop can ask every source: the feature is absent, the model
// features asked with it are served, and asking is not an error.
func TestSourcesWithoutLatencyP99LeaveItAbsent(t *testing.T) {
	synth, _ := newSyntheticSource(t)
	csvSource := parseSmall(t, source.CSVOptions{})
	csvStart, _ := csvSource.Span()
	synthStart := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		src     source.Source
		service string
		start   time.Time
	}{
		{"csv", csvSource, "cart", csvStart},
		{"synthetic", synth, "frontend", synthStart},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.src.Fetch(context.Background(), source.Query{
				Services: []string{tt.service}, Features: []source.Feature{source.LatencyP99, source.Requests},
				Start: tt.start, End: tt.start.Add(time.Minute), Step: 30 * time.Second,
			})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if got, ok := data[source.LatencyP99]; ok {
				t.Errorf("latency_p99 = %v, want it absent", got)
			}
			if n := len(data[source.Requests][tt.service]); n != 3 {
				t.Errorf("%d requests samples, want 3", n)
			}
		})
	}
}
