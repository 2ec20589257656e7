package source_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	yamlv2 "go.yaml.in/yaml/v2"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/foresightscale/foresight/forecaster/source"
)

// t0 is a step-aligned time inside the boutique data.
var t0 = time.Date(2024, 4, 6, 12, 0, 0, 0, time.UTC)

func testQuery(features ...source.Feature) source.Query {
	if len(features) == 0 {
		features = []source.Feature{source.Requests}
	}
	return source.Query{
		Namespace: "shop",
		Services:  []string{"frontend", "cartservice"},
		Features:  features,
		Start:     t0,
		End:       t0.Add(2 * 30 * time.Second),
		Step:      30 * time.Second,
	}
}

// fakePrometheus answers /api/v1/query_range with handle and records the requests.
type fakePrometheus struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request // with parsed Form
}

func newFakePrometheus(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *fakePrometheus {
	t.Helper()
	f := &fakePrometheus{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query_range" {
			http.NotFound(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.requests = append(f.requests, r)
		f.mu.Unlock()
		handle(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakePrometheus) recorded() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.requests...)
}

// series is one matrix entry for matrixJSON.
type series struct {
	labels map[string]string
	values []float64 // one per step from t0; NaN is sent as "NaN"
}

func matrixJSON(ss ...series) string {
	type stream struct {
		Metric map[string]string `json:"metric"`
		Values [][2]any          `json:"values"`
	}
	result := make([]stream, 0, len(ss))
	for _, s := range ss {
		st := stream{Metric: s.labels, Values: [][2]any{}}
		for i, v := range s.values {
			ts := float64(t0.Add(time.Duration(i)*30*time.Second).UnixMilli()) / 1000
			st.Values = append(st.Values, [2]any{ts, model.SampleValue(v).String()})
		}
		result = append(result, st)
	}
	body, err := json.Marshal(map[string]any{
		"status": "success",
		"data":   map[string]any{"resultType": "matrix", "result": result},
	})
	if err != nil {
		panic(err)
	}
	return string(body)
}

func reply(body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}
}

func newSource(t *testing.T, cfg source.PrometheusConfig) (*source.Prometheus, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := source.NewPrometheus(cfg, logger)
	if err != nil {
		t.Fatalf("NewPrometheus: %v", err)
	}
	t.Cleanup(p.Close)
	return p, logs
}

func configFor(url string) source.PrometheusConfig {
	cfg := source.DefaultPrometheusConfig()
	cfg.URL = url
	return cfg
}

func TestPrometheusFetchConvertsMatrix(t *testing.T) {
	fake := newFakePrometheus(t, reply(matrixJSON(
		series{map[string]string{"service": "frontend"}, []float64{46.8, math.NaN(), 50}},
		series{map[string]string{"service": "cartservice"}, []float64{1, 2, math.Inf(1)}},
		series{map[string]string{"service": "loadgenerator"}, []float64{7, 7, 7}},
	)))
	p, logs := newSource(t, configFor(fake.URL))

	data, err := p.Fetch(context.Background(), testQuery())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	want := map[string][]float64{
		"frontend":    {46.8, math.NaN(), 50},
		"cartservice": {1, 2, math.NaN()}, // +Inf is kept as missing
	}
	got := data[source.Requests]
	if len(got) != len(want) {
		t.Fatalf("services = %v, want frontend and cartservice only", keys(got))
	}
	for service, values := range want {
		samples := got[service]
		if len(samples) != len(values) {
			t.Fatalf("%s: %d samples, want %d", service, len(samples), len(values))
		}
		for i, v := range values {
			s := samples[i]
			wantTime := t0.Add(time.Duration(i) * 30 * time.Second)
			if !s.Time.Equal(wantTime) || s.Time.Location() != time.UTC {
				t.Errorf("%s[%d].Time = %v, want %v in UTC", service, i, s.Time, wantTime)
			}
			if !sameValue(s.Value, v) {
				t.Errorf("%s[%d].Value = %v, want %v", service, i, s.Value, v)
			}
		}
	}
	if !strings.Contains(logs.String(), "loadgenerator") {
		t.Errorf("ignored service not logged; logs:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "infinite or negative") {
		t.Errorf("infinite sample not warned about; logs:\n%s", logs)
	}

	reqs := fake.recorded()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	form := reqs[0].Form
	wantQuery := `sum by (service) (service:foresight_requests:rate1m{namespace="shop"})`
	for key, want := range map[string]string{
		"query":   wantQuery,
		"start":   fmt.Sprint(t0.Unix()),
		"end":     fmt.Sprint(t0.Add(time.Minute).Unix()),
		"step":    "30",
		"timeout": "10s",
	} {
		if got := form.Get(key); got != want {
			t.Errorf("request %s = %q, want %q", key, got, want)
		}
	}
}

func TestPrometheusFetchOneQueryPerFeature(t *testing.T) {
	fake := newFakePrometheus(t, func(w http.ResponseWriter, r *http.Request) {
		// Answer each feature with a distinct value so mix-ups show.
		value := map[string]float64{
			"service:foresight_requests:rate1m":        10,
			"service:foresight_latency_seconds:mean1m": 0.2,
			"service:foresight_cpu_cores:rate1m":       0.5,
			"service:foresight_memory_bytes:sum":       3e8,
			"service:foresight_replicas:sum":           4,
		}
		for metric, v := range value {
			if strings.Contains(r.Form.Get("query"), metric) {
				reply(matrixJSON(series{map[string]string{"service": "frontend"}, []float64{v}}))(w, r)
				return
			}
		}
		http.Error(w, "unexpected query", http.StatusBadRequest)
	})
	p, _ := newSource(t, configFor(fake.URL))
	data, err := p.Fetch(context.Background(), testQuery(source.AllFeatures...))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	for f, want := range map[source.Feature]float64{
		source.Requests: 10, source.Latency: 0.2, source.CPU: 0.5, source.Memory: 3e8, source.Replicas: 4,
	} {
		samples := data[f]["frontend"]
		if len(samples) != 1 || samples[0].Value != want {
			t.Errorf("%s = %v, want one sample of %v", f, samples, want)
		}
	}
	if n := len(fake.recorded()); n != len(source.AllFeatures) {
		t.Errorf("%d requests, want one per feature (%d)", n, len(source.AllFeatures))
	}
	// Latency is not additive: its default query must not sum.
	q, err := p.Query(source.Latency, "shop")
	if err != nil || !strings.HasPrefix(q, "max by (service)") {
		t.Errorf("latency query = %q, %v; want a max by (service)", q, err)
	}
}

func TestPrometheusFetchEmptyResultIsNotAnError(t *testing.T) {
	fake := newFakePrometheus(t, reply(matrixJSON()))
	p, _ := newSource(t, configFor(fake.URL))
	data, err := p.Fetch(context.Background(), testQuery())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if _, ok := data[source.Requests]; ok {
		t.Errorf("empty result produced a feature entry: %v", data)
	}
}

func TestPrometheusFetchErrors(t *testing.T) {
	slow := make(chan struct{})
	t.Cleanup(func() { close(slow) })
	tests := []struct {
		name     string
		handle   func(http.ResponseWriter, *http.Request)
		timeout  time.Duration
		wantKind source.ErrorKind
		wantText string
	}{
		{
			name:     "no service label",
			handle:   reply(matrixJSON(series{map[string]string{"pod": "frontend-1"}, []float64{1}})),
			wantKind: source.ErrBadData, wantText: `no "service" label`,
		},
		{
			name: "two series for one service",
			handle: reply(matrixJSON(
				series{map[string]string{"service": "frontend", "pod": "a"}, []float64{1}},
				series{map[string]string{"service": "frontend", "pod": "b"}, []float64{2}},
			)),
			wantKind: source.ErrBadData, wantText: `more than one series for service "frontend"`,
		},
		{
			name:     "not a matrix",
			handle:   reply(`{"status":"success","data":{"resultType":"vector","result":[]}}`),
			wantKind: source.ErrBadData, wantText: "want a matrix",
		},
		{
			name:     "server error",
			handle:   func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) },
			wantKind: source.ErrBadResponse, wantText: "server error: 500: boom",
		},
		{
			name:     "unparsable body",
			handle:   reply(`{"status":"success","data":`),
			wantKind: source.ErrBadResponse,
		},
		{
			name: "query rejected",
			handle: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected"}`)
			},
			wantKind: source.ErrBadResponse, wantText: "parse error",
		},
		{
			name: "query timed out in prometheus",
			handle: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`)
			},
			// Prometheus answers 503 for an evaluation timeout; the client
			// only keeps the body as detail.
			wantKind: source.ErrTimeout, wantText: "query timed out in expression evaluation",
		},
		{
			name: "error type timeout in a 422 body",
			handle: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnprocessableEntity)
				fmt.Fprint(w, `{"status":"error","errorType":"timeout","error":"query timed out"}`)
			},
			wantKind: source.ErrTimeout, wantText: "query timed out",
		},
		{
			name: "slow server",
			handle: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-slow:
				case <-r.Context().Done():
				}
			},
			timeout:  200 * time.Millisecond,
			wantKind: source.ErrTimeout,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakePrometheus(t, tt.handle)
			cfg := configFor(fake.URL)
			if tt.timeout > 0 {
				cfg.Timeout = model.Duration(tt.timeout)
			}
			p, _ := newSource(t, cfg)
			start := time.Now()
			_, err := p.Fetch(context.Background(), testQuery())
			var fe *source.FetchError
			if !errors.As(err, &fe) {
				t.Fatalf("Fetch error = %v (%T), want a *FetchError", err, err)
			}
			if fe.Kind != tt.wantKind || fe.Feature != source.Requests {
				t.Errorf("kind, feature = %s, %s; want %s, requests (err: %v)", fe.Kind, fe.Feature, tt.wantKind, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) || !strings.Contains(err.Error(), "service:foresight_requests:rate1m") {
				t.Errorf("error %q should contain %q and name the query", err, tt.wantText)
			}
			if tt.timeout > 0 && time.Since(start) > tt.timeout+2*time.Second {
				t.Errorf("timed out after %v, want about %v", time.Since(start), tt.timeout)
			}
		})
	}
}

func TestPrometheusFetchUnreachable(t *testing.T) {
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	p, _ := newSource(t, configFor("http://"+addr))
	_, err = p.Fetch(context.Background(), testQuery())
	var fe *source.FetchError
	if !errors.As(err, &fe) || fe.Kind != source.ErrUnreachable {
		t.Fatalf("Fetch error = %v, want an unreachable FetchError", err)
	}
}

func TestPrometheusFetchTLSFailureIsUnreachable(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	// The test server's certificate is not trusted by default.
	p, _ := newSource(t, configFor(srv.URL))
	_, err := p.Fetch(context.Background(), testQuery())
	var fe *source.FetchError
	if !errors.As(err, &fe) || fe.Kind != source.ErrUnreachable {
		t.Fatalf("Fetch error = %v, want an unreachable FetchError", err)
	}
}

func TestPrometheusFetchCancelledIsNotAFetchError(t *testing.T) {
	fake := newFakePrometheus(t, reply(matrixJSON()))
	p, _ := newSource(t, configFor(fake.URL))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Fetch(ctx, testQuery())
	var fe *source.FetchError
	if !errors.Is(err, context.Canceled) || errors.As(err, &fe) {
		t.Fatalf("Fetch error = %v, want context.Canceled and no FetchError", err)
	}
}

func TestPrometheusHTTPSettings(t *testing.T) {
	tests := []struct {
		name  string
		cfg   func(*source.PrometheusConfig)
		check func(t *testing.T, r *http.Request)
	}{
		{
			name: "tenant header",
			cfg:  func(c *source.PrometheusConfig) { c.Tenant = "team-a" },
			check: func(t *testing.T, r *http.Request) {
				if got := r.Header.Get("X-Scope-OrgID"); got != "team-a" {
					t.Errorf("X-Scope-OrgID = %q, want team-a", got)
				}
			},
		},
		{
			name: "no tenant",
			cfg:  func(*source.PrometheusConfig) {},
			check: func(t *testing.T, r *http.Request) {
				if _, ok := r.Header["X-Scope-Orgid"]; ok {
					t.Errorf("X-Scope-OrgID sent without a tenant: %v", r.Header)
				}
			},
		},
		{
			name: "bearer token",
			cfg: func(c *source.PrometheusConfig) {
				c.HTTP.Authorization = &config.Authorization{Credentials: "s3cret"}
			},
			check: func(t *testing.T, r *http.Request) {
				if got := r.Header.Get("Authorization"); got != "Bearer s3cret" {
					t.Errorf("Authorization = %q, want Bearer s3cret", got)
				}
			},
		},
		{
			name: "deprecated bearer_token field",
			cfg:  func(c *source.PrometheusConfig) { c.HTTP.BearerToken = "old" },
			check: func(t *testing.T, r *http.Request) {
				if got := r.Header.Get("Authorization"); got != "Bearer old" {
					t.Errorf("Authorization = %q, want Bearer old", got)
				}
			},
		},
		{
			name: "basic auth and tenant together",
			cfg: func(c *source.PrometheusConfig) {
				c.HTTP.BasicAuth = &config.BasicAuth{Username: "u", Password: "p"}
				c.Tenant = "t1"
			},
			check: func(t *testing.T, r *http.Request) {
				user, pass, ok := r.BasicAuth()
				if !ok || user != "u" || pass != "p" {
					t.Errorf("basic auth = %q, %q, %v; want u, p", user, pass, ok)
				}
				if got := r.Header.Get("X-Scope-OrgID"); got != "t1" {
					t.Errorf("X-Scope-OrgID = %q, want t1", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakePrometheus(t, reply(matrixJSON()))
			cfg := configFor(fake.URL)
			tt.cfg(&cfg)
			p, _ := newSource(t, cfg)
			if _, err := p.Fetch(context.Background(), testQuery()); err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			reqs := fake.recorded()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			tt.check(t, reqs[0])
			if ua := reqs[0].Header.Get("User-Agent"); ua != "foresight" {
				t.Errorf("User-Agent = %q, want foresight", ua)
			}
		})
	}
}

func TestPrometheusWarningsAreLogged(t *testing.T) {
	fake := newFakePrometheus(t, reply(`{"status":"success","warnings":["partial response: store down"],"data":{"resultType":"matrix","result":[]}}`))
	p, logs := newSource(t, configFor(fake.URL))
	if _, err := p.Fetch(context.Background(), testQuery()); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if !strings.Contains(logs.String(), "partial response: store down") {
		t.Errorf("warning not logged; logs:\n%s", logs)
	}
}

func TestPrometheusCustomQueryTemplate(t *testing.T) {
	fake := newFakePrometheus(t, reply(matrixJSON()))
	cfg := configFor(fake.URL)
	cfg.Queries = map[source.Feature]string{
		source.Requests: `sum by (service) (label_replace(rate(http_requests_total{namespace="{{.Namespace}}"}[2m]), "service", "$1", "app", "(.+)"))`,
	}
	p, _ := newSource(t, cfg)
	if _, err := p.Fetch(context.Background(), testQuery(source.Requests, source.CPU)); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	var queries []string
	for _, r := range fake.recorded() {
		queries = append(queries, r.Form.Get("query"))
	}
	wantCustom := `sum by (service) (label_replace(rate(http_requests_total{namespace="shop"}[2m]), "service", "$1", "app", "(.+)"))`
	wantDefault := `sum by (service) (service:foresight_cpu_cores:rate1m{namespace="shop"})`
	for _, want := range []string{wantCustom, wantDefault} {
		found := false
		for _, q := range queries {
			found = found || q == want
		}
		if !found {
			t.Errorf("query %q not sent; sent %q", want, queries)
		}
	}
}

func TestPrometheusFetchRejectsBadQueries(t *testing.T) {
	fake := newFakePrometheus(t, reply(matrixJSON()))
	p, _ := newSource(t, configFor(fake.URL))
	tests := []struct {
		name   string
		modify func(*source.Query)
		want   string
	}{
		{"quote in namespace", func(q *source.Query) { q.Namespace = `shop"} or vector(1) #` }, "not a valid Kubernetes namespace"},
		{"no namespace", func(q *source.Query) { q.Namespace = "" }, "not a valid Kubernetes namespace"},
		{"no services", func(q *source.Query) { q.Services = nil }, "no services"},
		{"too many points", func(q *source.Query) { q.Step = time.Millisecond }, "more than Prometheus allows"},
		{"unknown feature", func(q *source.Query) { q.Features = []source.Feature{"disk"} }, `feature "disk"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := testQuery()
			tt.modify(&q)
			_, err := p.Fetch(context.Background(), q)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Fetch error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if n := len(fake.recorded()); n != 0 {
		t.Errorf("%d requests sent for invalid queries, want 0", n)
	}
}

func TestPrometheusConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*source.PrometheusConfig)
		want   string // empty: valid
	}{
		{"valid", func(*source.PrometheusConfig) {}, ""},
		{"valid with path prefix and override", func(c *source.PrometheusConfig) {
			c.URL = "https://mimir.example/prometheus"
			c.Queries = map[source.Feature]string{source.CPU: `sum by (service) (x{ns="{{.Namespace}}"})`}
		}, ""},
		{"no url", func(c *source.PrometheusConfig) { c.URL = "" }, "url: must be set"},
		{"bad url", func(c *source.PrometheusConfig) { c.URL = "http://[::1" }, `url "http://[::1"`},
		{"no scheme", func(c *source.PrometheusConfig) { c.URL = "prometheus:9090" }, "scheme must be http or https"},
		{"no host", func(c *source.PrometheusConfig) { c.URL = "http:///api" }, "no host"},
		{"tenant with newline", func(c *source.PrometheusConfig) { c.Tenant = "a\nb" }, "tenant"},
		{"tenant twice", func(c *source.PrometheusConfig) {
			c.Tenant = "a"
			c.HTTP.HTTPHeaders = &config.Headers{Headers: map[string]config.Header{"x-scope-orgid": {Values: []string{"b"}}}}
		}, "set it in one place"},
		{"two auth methods", func(c *source.PrometheusConfig) {
			c.HTTP.BearerToken = "x"
			c.HTTP.BasicAuth = &config.BasicAuth{Username: "u"}
		}, "http: at most one of"},
		{"negative timeout", func(c *source.PrometheusConfig) { c.Timeout = -1 }, "timeout"},
		{"p99 latency override", func(c *source.PrometheusConfig) {
			c.Queries = map[source.Feature]string{source.LatencyP99: `max by (service) (my_p99{ns="{{.Namespace}}"})`}
		}, ""},
		{"unknown feature", func(c *source.PrometheusConfig) { c.Queries = map[source.Feature]string{"disk": "x"} }, "queries.disk: unknown feature"},
		{"bad p99 latency template", func(c *source.PrometheusConfig) {
			c.Queries = map[source.Feature]string{source.LatencyP99: "{{.Namespace"}
		}, "queries.latency_p99: parse template"},
		{"empty template", func(c *source.PrometheusConfig) { c.Queries = map[source.Feature]string{source.CPU: " "} }, "queries.cpu: empty"},
		{"template does not parse", func(c *source.PrometheusConfig) { c.Queries = map[source.Feature]string{source.CPU: "{{.Namespace"} }, "queries.cpu: parse template"},
		{"unknown template field", func(c *source.PrometheusConfig) {
			c.Queries = map[source.Feature]string{source.CPU: "x{ns=\"{{.Nmespace}}\"}"}
		}, "queries.cpu: render template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := configFor("http://127.0.0.1:9090")
			tt.modify(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate error = %v, want one containing %q", err, tt.want)
			}
			if tt.want != "" {
				if _, err := source.NewPrometheus(cfg, nil); err == nil {
					t.Errorf("NewPrometheus accepted a config Validate rejects")
				}
			}
		})
	}
}

func TestPrometheusConfigValidateKeepsDeprecatedFields(t *testing.T) {
	cfg := configFor("http://127.0.0.1:9090")
	cfg.HTTP.BearerToken = "tok"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.BearerToken != "tok" || cfg.HTTP.Authorization != nil {
		t.Errorf("Validate modified the caller's config: %+v", cfg.HTTP)
	}
}

func TestPrometheusConfigUnmarshal(t *testing.T) {
	const doc = `
url: https://prometheus.monitoring:9090
tenant: team-a
timeout: 5s
http:
  tls_config:
    insecure_skip_verify: true
queries:
  requests: 'sum by (service) (rate(x{namespace="{{.Namespace}}"}[1m]))'
`
	check := func(t *testing.T, cfg source.PrometheusConfig) {
		t.Helper()
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if cfg.URL != "https://prometheus.monitoring:9090" || cfg.Tenant != "team-a" || cfg.Timeout != model.Duration(5*time.Second) {
			t.Errorf("url, tenant, timeout = %q, %q, %v", cfg.URL, cfg.Tenant, cfg.Timeout)
		}
		if !cfg.HTTP.TLSConfig.InsecureSkipVerify {
			t.Errorf("http.tls_config not read")
		}
		// Defaults of fields the document does not set survive.
		if !cfg.HTTP.FollowRedirects || !cfg.HTTP.EnableHTTP2 {
			t.Errorf("HTTP client defaults lost: %+v", cfg.HTTP)
		}
		if len(cfg.Queries) != 1 || !strings.Contains(cfg.Queries[source.Requests], "rate(x") {
			t.Errorf("queries = %v", cfg.Queries)
		}
	}
	t.Run("yaml.v2", func(t *testing.T) {
		var cfg source.PrometheusConfig
		if err := yamlv2.UnmarshalStrict([]byte(doc), &cfg); err != nil {
			t.Fatal(err)
		}
		check(t, cfg)
	})
	t.Run("sigs.k8s.io/yaml", func(t *testing.T) {
		var cfg source.PrometheusConfig
		if err := k8syaml.UnmarshalStrict([]byte(doc), &cfg); err != nil {
			t.Fatal(err)
		}
		check(t, cfg)
	})
	t.Run("defaults when omitted", func(t *testing.T) {
		var cfg source.PrometheusConfig
		if err := k8syaml.Unmarshal([]byte("url: http://p:9090\n"), &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Timeout != model.Duration(source.DefaultPrometheusTimeout) || !cfg.HTTP.FollowRedirects {
			t.Errorf("defaults not applied: %+v", cfg)
		}
	})
	t.Run("unknown field", func(t *testing.T) {
		const doc = "url: http://p:9090\ntimout: 5s\n"
		var cfg source.PrometheusConfig
		if err := k8syaml.Unmarshal([]byte(doc), &cfg); err == nil || !strings.Contains(err.Error(), "timout") {
			t.Errorf("sigs.k8s.io/yaml: misspelt field accepted: %v", err)
		}
		if err := yamlv2.UnmarshalStrict([]byte(doc), &cfg); err == nil || !strings.Contains(err.Error(), "timout") {
			t.Errorf("yaml.v2 strict: misspelt field accepted: %v", err)
		}
	})
}

// keys returns m's keys sorted: map order is random, and a test comparing
// it with a list would fail at random.
func keys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// sameValue is == that also equates NaN with NaN.
func sameValue(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}

func TestPrometheusFetchAllServices(t *testing.T) {
	fake := newFakePrometheus(t, reply(matrixJSON(
		series{map[string]string{"service": "frontend"}, []float64{1, 2, 3}},
		series{map[string]string{"service": "ts-order.v2"}, []float64{4, 5, 6}},
	)))
	p, _ := newSource(t, configFor(fake.URL))
	q := testQuery()
	q.Services, q.AllServices = nil, true
	data, err := p.Fetch(context.Background(), q)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if got := keys(data[source.Requests]); !slices.Equal(got, []string{"frontend", "ts-order.v2"}) {
		t.Errorf("services = %v, want every service in the answer", got)
	}
	q.AllServices = false
	if _, err := p.Fetch(context.Background(), q); err == nil || !strings.Contains(err.Error(), "names no services") {
		t.Errorf("no services and not AllServices: error %v", err)
	}
}
