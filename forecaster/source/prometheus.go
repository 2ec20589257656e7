package source

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/foresightscale/foresight/internal/textlimit"
)

// RecordedMetrics names, per feature, the per-service series computed by the
// recording rules Foresight ships (manifests/prometheus-rules.yaml). Every
// series carries a namespace and a service label.
var RecordedMetrics = map[Feature]string{
	Requests: "service:foresight_requests:rate1m",
	Latency:  "service:foresight_latency_seconds:mean1m",
	CPU:      "service:foresight_cpu_cores:rate1m",
	Memory:   "service:foresight_memory_bytes:sum",
	Replicas: "service:foresight_replicas:sum",
	// For the SLO feedback and policy.burst, not for models (see
	// LatencyP99 and RequestsPeak).
	LatencyP99:   "service:foresight_latency_seconds:p99_1m",
	RequestsPeak: "service:foresight_requests:peak_rate1m",
}

// DefaultQueries returns the PromQL templates used for features the
// configuration does not override. They read the shipped recording rules, so a
// fetch is one cheap query per feature. The aggregation keeps only the service
// label (dropping external labels such as cluster or replica); latency (the
// mean and the p99) is not additive, so it takes the worst series instead of
// the sum.
func DefaultQueries() map[Feature]string {
	q := make(map[Feature]string, len(RecordedMetrics))
	for f, metric := range RecordedMetrics {
		agg := "sum"
		if f == Latency || f == LatencyP99 {
			agg = "max"
		}
		q[f] = fmt.Sprintf(`%s by (service) (%s{namespace="{{.Namespace}}"})`, agg, metric)
	}
	return q
}

// DefaultPrometheusTimeout bounds one range query when the configuration does
// not say otherwise: well inside the 30 s forecasting period.
const DefaultPrometheusTimeout = 10 * time.Second

// DefaultMaxResponseBytes bounds one query's answer when the configuration
// does not say otherwise. A forecast window of 500 services at a 30 s step is
// about 300 KiB of JSON. Decoding costs about 15 times the body in memory
// (BenchmarkPrometheusFetchLargestAnswer: 125 MB for 7.9 MiB), and the five
// features are fetched at once, so 2 MiB keeps the worst case (five answers
// at the bound, ~160 MB) inside the shipped Deployment's 256Mi limit.
const DefaultMaxResponseBytes = 2 << 20

// maxResponseBytesLimit is the largest maxResponseBytes a user may set: far
// beyond any forecast window, enough for a training history fetch.
const maxResponseBytesLimit = 1 << 30

// maxPointsPerSeries is the Prometheus server's own limit for a range query;
// checking it here turns a server-side 400 into a clear error about the query.
const maxPointsPerSeries = 11000

// tenantHeader is the header Mimir, Cortex and Thanos (receive/query-frontend)
// read the tenant from.
const tenantHeader = "X-Scope-OrgID"

// serviceLabel is the label every query result must carry.
const serviceLabel model.LabelName = "service"

// PrometheusConfig configures the Prometheus source. It is embedded in the
// Foresight configuration file under source.prometheus.
type PrometheusConfig struct {
	// URL of the Prometheus HTTP API (without /api/v1), e.g.
	// http://prometheus.monitoring:9090 or a Mimir/Thanos query-frontend prefix.
	URL string `yaml:"url" json:"url"`
	// Tenant, when set, is sent as the X-Scope-OrgID header.
	Tenant string `yaml:"tenant,omitempty" json:"tenant,omitempty"`
	// HTTP holds TLS, authentication, proxy and header settings, in the same
	// format as Prometheus' own scrape and remote-read configuration.
	HTTP config.HTTPClientConfig `yaml:"http,omitempty" json:"http,omitempty"`
	// Timeout bounds each range query (0 means DefaultPrometheusTimeout). It is
	// also sent to Prometheus so the server stops evaluating a query we gave up on.
	Timeout model.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// MaxResponseBytes bounds the size of one query's answer (after
	// decompression); a larger answer is refused as a bad response before it
	// is decoded, so a runaway query or a misbehaving proxy cannot exhaust
	// memory. 0 means DefaultMaxResponseBytes.
	MaxResponseBytes int64 `yaml:"maxResponseBytes,omitempty" json:"maxResponseBytes,omitempty"`
	// Queries overrides the PromQL template of some features (model features
	// and FeedbackFeatures such as latency_p99); the others use
	// DefaultQueries. A template is a Go text/template evaluated with
	// .Namespace, and must return one series per service, each carrying a
	// "service" label (this cannot be checked before the query runs; a result
	// without it is reported as bad data).
	Queries map[Feature]string `yaml:"queries,omitempty" json:"queries,omitempty"`
}

// DefaultPrometheusConfig is the configuration before the user's settings
// are applied: Prometheus' default HTTP client settings and the default timeout.
func DefaultPrometheusConfig() PrometheusConfig {
	return PrometheusConfig{
		HTTP:             config.DefaultHTTPClientConfig,
		Timeout:          model.Duration(DefaultPrometheusTimeout),
		MaxResponseBytes: DefaultMaxResponseBytes,
	}
}

// UnmarshalYAML starts from DefaultPrometheusConfig so that omitted fields
// keep their defaults (an omitted http block would otherwise disable
// redirects and HTTP/2).
func (c *PrometheusConfig) UnmarshalYAML(unmarshal func(any) error) error {
	type plain PrometheusConfig
	*c = DefaultPrometheusConfig()
	return unmarshal((*plain)(c))
}

// UnmarshalJSON is UnmarshalYAML for sigs.k8s.io/yaml and JSON users.
func (c *PrometheusConfig) UnmarshalJSON(data []byte) error {
	type plain PrometheusConfig
	*c = DefaultPrometheusConfig()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode((*plain)(c))
}

// Validate reports the first invalid field, by its YAML name.
func (c PrometheusConfig) Validate() error {
	if c.URL == "" {
		return errors.New("url: must be set")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("url %q: %w", c.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url %q: scheme must be http or https", c.URL)
	}
	if u.Host == "" {
		return fmt.Errorf("url %q: no host", c.URL)
	}
	if strings.ContainsFunc(c.Tenant, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("tenant %q: contains control characters", c.Tenant)
	}
	httpCfg := c.HTTP // Validate rewrites deprecated fields: keep the caller's value intact
	if err := httpCfg.Validate(); err != nil {
		return fmt.Errorf("http: %w", err)
	}
	if c.Tenant != "" && c.HTTP.HTTPHeaders != nil {
		for name := range c.HTTP.HTTPHeaders.Headers {
			if strings.EqualFold(name, tenantHeader) {
				return fmt.Errorf("tenant: also set as http.http_headers.%s; set it in one place", name)
			}
		}
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout %v: must not be negative", c.Timeout)
	}
	if c.Timeout > model.Duration(time.Hour) {
		return fmt.Errorf("timeout %v: at most 1h", c.Timeout)
	}
	if c.MaxResponseBytes < 0 || c.MaxResponseBytes > maxResponseBytesLimit || (c.MaxResponseBytes > 0 && c.MaxResponseBytes < 1024) {
		return fmt.Errorf("maxResponseBytes %d: must be 0 (default %d) or between 1024 and %d", c.MaxResponseBytes, DefaultMaxResponseBytes, maxResponseBytesLimit)
	}
	for f, text := range c.Queries {
		if _, err := ParseQueryFeature(string(f)); err != nil {
			return fmt.Errorf("queries.%s: %w", f, err)
		}
		if _, err := parseQueryTemplate(f, text); err != nil {
			return fmt.Errorf("queries.%s: %w", f, err)
		}
	}
	return nil
}

// queryData is what a query template sees.
type queryData struct {
	Namespace string
}

// parseQueryTemplate parses a template and renders it once with a sample
// namespace, so a misspelt field fails at start-up rather than at the first fetch.
func parseQueryTemplate(f Feature, text string) (*template.Template, error) {
	if strings.TrimSpace(text) == "" {
		return nil, errors.New("empty query template")
	}
	tmpl, err := template.New(string(f)).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	var out strings.Builder
	if err := tmpl.Execute(&out, queryData{Namespace: "default"}); err != nil {
		return nil, fmt.Errorf("render template: %w", err)
	}
	if strings.TrimSpace(out.String()) == "" {
		return nil, errors.New("template renders an empty query")
	}
	return tmpl, nil
}

// Prometheus reads per-service features with one range query per feature.
// It is safe for concurrent use.
type Prometheus struct {
	api       v1.API
	client    *http.Client
	timeout   time.Duration
	templates map[Feature]*template.Template
	logger    *slog.Logger
}

var _ Source = (*Prometheus)(nil)

// NewPrometheus validates cfg and builds the HTTP client. A nil logger means
// slog.Default().
func NewPrometheus(cfg PrometheusConfig, logger *slog.Logger) (*Prometheus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("prometheus source config: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	client, err := config.NewClientFromConfig(cfg.HTTP, "foresight", config.WithUserAgent("foresight"))
	if err != nil {
		return nil, fmt.Errorf("prometheus source: build HTTP client for %s: %w", cfg.URL, err)
	}
	if cfg.Tenant != "" {
		client.Transport = &tenantRoundTripper{tenant: cfg.Tenant, next: client.Transport}
	}
	maxBytes := cfg.MaxResponseBytes
	if maxBytes == 0 {
		maxBytes = DefaultMaxResponseBytes
	}
	client.Transport = &limitBodyRoundTripper{limit: maxBytes, next: client.Transport}
	apiClient, err := api.NewClient(api.Config{Address: cfg.URL, Client: client})
	if err != nil {
		return nil, fmt.Errorf("prometheus source: client for %s: %w", cfg.URL, err)
	}
	texts := DefaultQueries()
	for f, text := range cfg.Queries {
		texts[f] = text
	}
	templates := make(map[Feature]*template.Template, len(texts))
	for f, text := range texts {
		tmpl, err := parseQueryTemplate(f, text)
		if err != nil {
			return nil, fmt.Errorf("prometheus source: queries.%s: %w", f, err)
		}
		templates[f] = tmpl
	}
	timeout := time.Duration(cfg.Timeout)
	if timeout == 0 {
		timeout = DefaultPrometheusTimeout
	}
	return &Prometheus{
		api:       v1.NewAPI(apiClient),
		client:    client,
		timeout:   timeout,
		templates: templates,
		logger:    logger.With("source", "prometheus", "url", cfg.URL),
	}, nil
}

// Name implements Source.
func (p *Prometheus) Name() string { return "prometheus" }

// Close releases idle connections.
func (p *Prometheus) Close() { p.client.CloseIdleConnections() }

// Query renders the PromQL query the source sends for one feature in a namespace.
func (p *Prometheus) Query(f Feature, namespace string) (string, error) {
	tmpl, ok := p.templates[f]
	if !ok {
		return "", fmt.Errorf("no query for feature %q", f)
	}
	var out strings.Builder
	if err := tmpl.Execute(&out, queryData{Namespace: namespace}); err != nil {
		return "", fmt.Errorf("render query for feature %s: %w", f, err)
	}
	return out.String(), nil
}

// dnsLabel is a Kubernetes namespace name. Checking it keeps a stray quote
// from changing the meaning of the rendered PromQL.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Fetch runs one range query per feature, concurrently, and returns the
// series of the services asked for. Series of other services are ignored. An
// empty result is not an error: that feature is simply absent. NaN and ±Inf
// samples, and negative ones (no feature can be negative), are kept as NaN so
// the window counts them as missing. An invalid query is a plain error, before
// anything is sent. Backend failures are *FetchError values, except when ctx
// itself is cancelled: then the context's error is returned, so a shutdown is
// not counted as a backend failure.
func (p *Prometheus) Fetch(ctx context.Context, q Query) (Data, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("prometheus fetch: %w", err)
	}
	if !dnsLabel.MatchString(q.Namespace) {
		return nil, fmt.Errorf("prometheus fetch: namespace %q is not a valid Kubernetes namespace name", q.Namespace)
	}
	if points := q.End.Sub(q.Start)/q.Step + 1; points > maxPointsPerSeries {
		return nil, fmt.Errorf("prometheus fetch: %v to %v at step %v is %d points per series, more than Prometheus allows (%d)",
			q.Start, q.End, q.Step, points, maxPointsPerSeries)
	}
	queries := make([]string, len(q.Features))
	for i, f := range q.Features {
		query, err := p.Query(f, q.Namespace)
		if err != nil {
			return nil, fmt.Errorf("prometheus fetch: %w", err)
		}
		queries[i] = query
	}
	// nil keeps every service: the query asks for all of them.
	var wanted map[string]bool
	if !q.AllServices {
		wanted = make(map[string]bool, len(q.Services))
		for _, s := range q.Services {
			wanted[s] = true
		}
	}

	results := make([]map[string][]Sample, len(q.Features))
	errs := make([]error, len(q.Features))
	var wg sync.WaitGroup
	for i, f := range q.Features {
		wg.Go(func() {
			results[i], errs[i] = p.fetchFeature(ctx, f, queries[i], q, wanted)
		})
	}
	wg.Wait()

	// Report the first failure in feature order (deterministic); log the rest
	// so that none is lost.
	var first error
	for i, err := range errs {
		if err == nil {
			continue
		}
		if first == nil {
			first = err
			continue
		}
		p.logger.WarnContext(ctx, "another feature failed in the same fetch", "feature", q.Features[i], "err", err)
	}
	if first != nil {
		if err := ctx.Err(); errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("prometheus fetch: %w", err)
		}
		return nil, first
	}
	data := make(Data, len(q.Features))
	for i, f := range q.Features {
		if len(results[i]) > 0 {
			data[f] = results[i]
		}
	}
	return data, nil
}

// fetchFeature runs one range query and converts its matrix.
func (p *Prometheus) fetchFeature(ctx context.Context, f Feature, query string, q Query, wanted map[string]bool) (map[string][]Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	value, warnings, infos, err := p.api.QueryRange(ctx, query, v1.Range{Start: q.Start, End: q.End, Step: q.Step}, v1.WithTimeout(p.timeout))
	if len(warnings) > 0 {
		p.logger.WarnContext(ctx, "prometheus returned warnings", "feature", f, "query", query, "warnings", []string(warnings))
	}
	if len(infos) > 0 {
		p.logger.DebugContext(ctx, "prometheus returned infos", "feature", f, "query", query, "infos", []string(infos))
	}
	if err != nil {
		if msg := apiErrorMessage(err); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return nil, &FetchError{Kind: classifyPrometheusError(err), Feature: f, Err: fmt.Errorf("query %q: %w", query, err)}
	}
	if value == nil {
		// HTTP 200 with `{}`, `null` or no data field: a proxy or a broken
		// backend, not "no series" (that is an empty matrix).
		return nil, &FetchError{Kind: ErrBadData, Feature: f,
			Err: fmt.Errorf("query %q: the answer has no result (status success without data)", query)}
	}
	matrix, ok := value.(model.Matrix)
	if !ok {
		return nil, &FetchError{Kind: ErrBadData, Feature: f,
			Err: fmt.Errorf("query %q: result is a %v, want a matrix (a range query over an instant vector)", query, value.Type())}
	}
	return p.convertMatrix(ctx, f, query, matrix, wanted)
}

// convertMatrix keys the series by their service label, keeping those in
// wanted (all of them when wanted is nil).
func (p *Prometheus) convertMatrix(ctx context.Context, f Feature, query string, matrix model.Matrix, wanted map[string]bool) (map[string][]Sample, error) {
	out := make(map[string][]Sample, len(wanted))
	seen := make(map[string]bool, len(matrix))
	var ignored []string
	for _, stream := range matrix {
		if stream == nil {
			return nil, &FetchError{Kind: ErrBadData, Feature: f, Err: fmt.Errorf("query %q: the result holds a null series", query)}
		}
		service, ok := stream.Metric[serviceLabel]
		if !ok || service == "" {
			return nil, &FetchError{Kind: ErrBadData, Feature: f,
				Err: fmt.Errorf("query %q: series %s has no %q label; aggregate with `by (service)` or label_replace", query, truncate(stream.Metric.String(), maxLoggedLabels), serviceLabel)}
		}
		name := string(service)
		if seen[name] {
			return nil, &FetchError{Kind: ErrBadData, Feature: f,
				Err: fmt.Errorf("query %q: more than one series for service %q (e.g. %s); aggregate with `by (service)`", query, truncate(name, maxLoggedLabels), truncate(stream.Metric.String(), maxLoggedLabels))}
		}
		seen[name] = true
		if len(stream.Histograms) > 0 {
			return nil, &FetchError{Kind: ErrBadData, Feature: f,
				Err: fmt.Errorf("query %q: service %q returned native histogram samples, want floats", query, truncate(name, maxLoggedLabels))}
		}
		if wanted != nil && !wanted[name] {
			ignored = append(ignored, name)
			continue
		}
		samples := make([]Sample, len(stream.Values))
		invalid := 0
		for i, pair := range stream.Values {
			v := float64(pair.Value)
			// NaN is routine (a mean latency with no requests); infinite or
			// negative values point at a broken query and are worth a warning.
			if math.IsInf(v, 0) || v < 0 {
				invalid++
				v = math.NaN()
			}
			samples[i] = Sample{Time: pair.Timestamp.Time().UTC(), Value: v}
		}
		if invalid > 0 {
			p.logger.WarnContext(ctx, "infinite or negative samples kept as missing; check the query",
				"feature", f, "service", name, "count", invalid, "query", query)
		}
		out[name] = samples
	}
	if len(ignored) > 0 {
		slices.Sort(ignored)
		p.logger.DebugContext(ctx, "ignored series of services not asked for", "feature", f, "services", ignored)
	}
	return out, nil
}

// classifyPrometheusError maps a client error to the kind counted in
// source_errors_total.
func classifyPrometheusError(err error) ErrorKind {
	if errors.Is(err, errResponseTooLarge) {
		return ErrBadResponse
	}
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		errType := apiErr.Type
		if body, ok := parseErrorBody(apiErr); ok {
			errType = body.ErrorType
		}
		switch errType {
		case v1.ErrTimeout, v1.ErrCanceled:
			return ErrTimeout
		default:
			return ErrBadResponse
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrTimeout
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return ErrTimeout
	}
	var (
		opErr      *net.OpError
		dnsErr     *net.DNSError
		certErr    *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		recordErr  tls.RecordHeaderError
		urlErr     *url.Error
		alertError tls.AlertError
	)
	switch {
	case errors.As(err, &opErr), errors.As(err, &dnsErr), errors.As(err, &certErr),
		errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &recordErr),
		errors.As(err, &alertError):
		return ErrUnreachable
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// The server closed the connection before answering.
		return ErrUnreachable
	case errors.As(err, &urlErr):
		// Any other failure of the HTTP round trip itself.
		return ErrUnreachable
	}
	return ErrBadResponse
}

// errorBody is Prometheus' JSON error answer.
type errorBody struct {
	Status    string       `json:"status"`
	ErrorType v1.ErrorType `json:"errorType"`
	Error     string       `json:"error"`
}

// parseErrorBody reads the JSON error body the client keeps in Detail when
// the status code is not one it decodes itself: Prometheus answers an
// evaluation timeout with 503 and errorType "timeout".
func parseErrorBody(apiErr *v1.Error) (errorBody, bool) {
	var body errorBody
	if apiErr.Detail == "" || json.Unmarshal([]byte(apiErr.Detail), &body) != nil || body.Status != "error" || body.ErrorType == "" {
		return errorBody{}, false
	}
	return body, true
}

// apiErrorMessage returns the server's own explanation when the client only
// kept it in Detail; it says more than "server error: 503".
func apiErrorMessage(err error) string {
	var apiErr *v1.Error
	if !errors.As(err, &apiErr) {
		return ""
	}
	if body, ok := parseErrorBody(apiErr); ok {
		return body.Error
	}
	// A proxy's HTML error page need not be logged whole.
	return truncate(strings.TrimSpace(apiErr.Detail), 200)
}

// maxLoggedLabels bounds how much of a label set or label value goes into an
// error: a runaway query can return series with kilobytes of labels.
const maxLoggedLabels = 200

// truncate returns s cut to at most n bytes (on a rune boundary), saying how
// long it was.
func truncate(s string, n int) string { return textlimit.Cut(s, n) }

// errResponseTooLarge is returned while reading an answer larger than the
// configured maxResponseBytes.
var errResponseTooLarge = errors.New("response too large")

// limitBodyRoundTripper refuses answers larger than limit: by Content-Length
// before reading, and by counting while the client reads a body of unknown
// length. Without it a runaway query (hundreds of thousands of series) is
// read and decoded whole, and decoding cannot be cancelled.
type limitBodyRoundTripper struct {
	limit int64
	next  http.RoundTripper
}

func (rt *limitBodyRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > rt.limit {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: Content-Length %d is more than source.prometheus.maxResponseBytes (%d)", errResponseTooLarge, resp.ContentLength, rt.limit)
	}
	resp.Body = &limitedBody{body: resp.Body, remaining: rt.limit, limit: rt.limit}
	return resp, nil
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the transport.
func (rt *limitBodyRoundTripper) CloseIdleConnections() {
	if c, ok := rt.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// limitedBody reads at most limit bytes and fails, instead of returning EOF,
// on the first byte beyond it.
type limitedBody struct {
	body      io.ReadCloser
	remaining int64
	limit     int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.remaining < 0 {
		return 0, fmt.Errorf("%w: more than source.prometheus.maxResponseBytes (%d)", errResponseTooLarge, b.limit)
	}
	// Read one byte past the limit so an answer of exactly limit bytes passes.
	if int64(len(p)) > b.remaining+1 {
		p = p[:b.remaining+1]
	}
	n, err := b.body.Read(p)
	b.remaining -= int64(n)
	if b.remaining < 0 {
		return n, fmt.Errorf("%w: more than source.prometheus.maxResponseBytes (%d)", errResponseTooLarge, b.limit)
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.body.Close() }

// tenantRoundTripper adds the tenant header to every request.
type tenantRoundTripper struct {
	tenant string
	next   http.RoundTripper
}

func (rt *tenantRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	// A RoundTripper must not modify the caller's request.
	req = req.Clone(req.Context())
	req.Header.Set(tenantHeader, rt.tenant)
	return rt.next.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the transport.
func (rt *tenantRoundTripper) CloseIdleConnections() {
	if c, ok := rt.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
