// Package fakeprom is a scriptable fake of Prometheus' range-query API
// (/api/v1/query_range) for fault tests. It answers Foresight's per-feature
// queries with one plausible, deterministic series per configured service,
// and can be switched at run time, from any goroutine, to the ways a real
// Prometheus (or the proxy in front of it) fails: slow, HTTP errors, broken
// or empty JSON, impossible sample values, huge bodies, missing services,
// stale or future samples, reset connections, nothing listening.
//
// The fake recognises a query's feature by the recorded metric it names
// (source.RecordedMetrics); it never knows service names of its own; they
// come from the caller, typically from the model's manifest.
package fakeprom

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"

	"github.com/foresightscale/foresight/forecaster/source"
)

// Kind is one way of answering a range query.
type Kind string

// Answers that replace the whole response (the first one that applies wins,
// after Slow's delay).
const (
	// Slow sleeps Delay before answering normally (or with the other faults
	// set), returning early when the client gives up.
	Slow Kind = "slow"
	// ServerError is HTTP 500 with Prometheus' JSON error body.
	ServerError Kind = "server_error"
	// HTMLUnavailable is HTTP 503 with a proxy's HTML error page.
	HTMLUnavailable Kind = "html_503"
	// Malformed is HTTP 200 with JSON cut off in the middle of the result.
	Malformed Kind = "malformed"
	// EmptyObject is HTTP 200 with the body `{}`.
	EmptyObject Kind = "empty_object"
	// SuccessOnly is HTTP 200 with `{"status":"success"}` and no data.
	SuccessOnly Kind = "success_only"
	// NullData is HTTP 200 with `{"status":"success","data":null}`.
	NullData Kind = "null_data"
	// NullBody is HTTP 200 with the body `null`.
	NullBody Kind = "null_body"
	// Reset closes the connection (with a TCP RST) without answering.
	Reset Kind = "reset"
	// HugeSeries appends series of made-up services to a normal answer until
	// the body is Size bytes, streamed: the fake never holds the body.
	HugeSeries Kind = "huge_series"
	// HugeLabel answers with one series whose service label value is Size
	// bytes long, streamed.
	HugeLabel Kind = "huge_label"
)

// Faults in the data of an otherwise normal answer. Those naming a sample
// value need Service.
const (
	// NaN, PosInf, NegInf and Negative replace Count samples of Service (the
	// Count before its newest one, so the newest real sample stays at the
	// range's end; 0 means every sample) with NaN, +Inf, -Inf or -Value
	// (default -1).
	NaN      Kind = "nan"
	PosInf   Kind = "pos_inf"
	NegInf   Kind = "neg_inf"
	Negative Kind = "negative"
	// Value sets every sample of Service to Value (1e25, say).
	Value Kind = "value"
	// Absent leaves Service out of the answer (a partial answer).
	Absent Kind = "absent"
	// Idle makes Service idle the way the shipped recording rules show it:
	// requests 0, CPU at its idle floor, latency and p99 latency absent (a
	// mean or quantile over zero requests is NaN, and the rules drop it).
	Idle Kind = "idle"
	// Stale returns only the samples at or before end-Shift, for every
	// service: the source stopped receiving data Shift ago.
	Stale Kind = "stale"
	// Future moves every sample Shift after the range's end, for every
	// service: only future timestamps.
	Future Kind = "future"
)

var kinds = map[Kind]bool{
	Slow: true, ServerError: true, HTMLUnavailable: true, Malformed: true, EmptyObject: true,
	SuccessOnly: true, NullData: true, NullBody: true, Reset: true, HugeSeries: true, HugeLabel: true,
	NaN: true, PosInf: true, NegInf: true, Negative: true, Value: true, Absent: true, Idle: true,
	Stale: true, Future: true,
}

// needsService lists the kinds that apply to one service.
var needsService = map[Kind]bool{NaN: true, PosInf: true, NegInf: true, Negative: true, Value: true, Absent: true, Idle: true}

// Fault is one way the fake misbehaves. The zero Feature applies it to every
// feature's query; otherwise only to that feature's.
type Fault struct {
	Kind    Kind
	Feature source.Feature
	// Service is the service a per-service fault (NaN ... Idle) applies to.
	Service string
	// Delay is Slow's sleep.
	Delay time.Duration
	// Value is Value's sample value, or Negative's magnitude.
	Value float64
	// Count is how many samples NaN, PosInf, NegInf and Negative replace.
	Count int
	// Size is the body size of HugeSeries and HugeLabel, in bytes.
	Size int64
	// Shift is how far Stale ends samples before the range's end, and how
	// far Future moves them past it.
	Shift time.Duration
}

func (f Fault) String() string {
	var b strings.Builder
	b.WriteString(string(f.Kind))
	for _, kv := range []struct {
		k   string
		v   any
		set bool
	}{
		{"feature", f.Feature, f.Feature != ""}, {"service", f.Service, f.Service != ""},
		{"delay", f.Delay, f.Delay != 0}, {"value", f.Value, f.Value != 0}, {"count", f.Count, f.Count != 0},
		{"size", f.Size, f.Size != 0}, {"shift", f.Shift, f.Shift != 0},
	} {
		if kv.set {
			fmt.Fprintf(&b, " %s=%v", kv.k, kv.v)
		}
	}
	return b.String()
}

func (f Fault) validate(services []string) error {
	switch {
	case !kinds[f.Kind]:
		return fmt.Errorf("fault %q: unknown kind", f.Kind)
	case f.Feature != "" && !slices.Contains(source.AllFeatures, f.Feature) && !slices.Contains(source.FeedbackFeatures, f.Feature):
		return fmt.Errorf("fault %s: unknown feature %q", f.Kind, f.Feature)
	case needsService[f.Kind] && !slices.Contains(services, f.Service):
		return fmt.Errorf("fault %s: service %q is not one of the fake's services %v", f.Kind, f.Service, services)
	case f.Kind == Slow && f.Delay <= 0:
		return fmt.Errorf("fault slow: delay must be positive, got %v", f.Delay)
	case (f.Kind == HugeSeries || f.Kind == HugeLabel) && f.Size <= 0:
		return fmt.Errorf("fault %s: size must be positive, got %d", f.Kind, f.Size)
	case (f.Kind == Stale || f.Kind == Future) && f.Shift <= 0:
		return fmt.Errorf("fault %s: shift must be positive, got %v", f.Kind, f.Shift)
	case f.Count < 0:
		return fmt.Errorf("fault %s: count must not be negative, got %d", f.Kind, f.Count)
	}
	return nil
}

// maxPoints is Prometheus' own limit of points per series in a range query.
const maxPoints = 11000

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	services []string
	addr     string

	mu     sync.Mutex
	faults []Fault
	srv    *http.Server // nil while Down

	queries   atomic.Int64
	byFeature sync.Map // source.Feature -> *atomic.Int64
	active    sync.WaitGroup
}

// New starts a healthy fake on a free loopback port, answering for services.
func New(services []string) (*Server, error) {
	if len(services) == 0 {
		return nil, errors.New("fakeprom: no services")
	}
	s := &Server{services: slices.Clone(services)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakeprom: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	return s, nil
}

// URL is the base URL to configure as the Prometheus server.
func (s *Server) URL() string { return "http://" + s.addr }

// Services returns the services the fake answers for.
func (s *Server) Services() []string { return slices.Clone(s.services) }

// Set replaces the active faults (none: healthy answers). It refuses a fault
// it cannot apply rather than answering healthily by mistake.
func (s *Server) Set(faults ...Fault) error {
	for _, f := range faults {
		if err := f.validate(s.services); err != nil {
			return fmt.Errorf("fakeprom: %w", err)
		}
	}
	s.mu.Lock()
	s.faults = slices.Clone(faults)
	s.mu.Unlock()
	return nil
}

// Healthy clears every fault.
func (s *Server) Healthy() { _ = s.Set() }

// Faults returns the active faults.
func (s *Server) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.faults)
}

// Queries is the number of range queries received (answered or not).
func (s *Server) Queries() int64 { return s.queries.Load() }

// FeatureQueries is the number of range queries received for one feature.
func (s *Server) FeatureQueries(f source.Feature) int64 {
	if c, ok := s.byFeature.Load(f); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

// Down stops listening and closes every open connection: clients get
// "connection refused" until Up.
func (s *Server) Down() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Up listens again on the same address after Down.
func (s *Server) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("fakeprom: listen again on %s: %w", s.addr, err)
	}
	s.serveLocked(ln)
	return nil
}

// Close stops the fake and waits for the handlers still running.
func (s *Server) Close() {
	s.Down()
	s.active.Wait()
}

func (s *Server) serve(ln net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serveLocked(ln)
}

func (s *Server) serveLocked(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/query_range", s.queryRange)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.srv = srv
	go func() { _ = srv.Serve(ln) }()
}

// rangeQuery is one parsed request.
type rangeQuery struct {
	feature    source.Feature
	start, end time.Time
	step       time.Duration
}

func (s *Server) queryRange(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.active.Done()
	s.queries.Add(1)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "bad_data", "method not allowed")
		return
	}
	q, err := parseRangeQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	c, _ := s.byFeature.LoadOrStore(q.feature, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)

	faults := s.faultsFor(q.feature)
	if _, ok := first(faults, Reset); ok {
		resetConnection(w)
		return
	}
	if f, ok := first(faults, Slow); ok {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(f.Delay):
		}
	}
	if s.answerFault(r.Context(), w, q, faults) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 32<<10)
	_, _ = io.WriteString(bw, `{"status":"success","data":{"resultType":"matrix","result":[`)
	s.writeSeries(bw, q, faults)
	_, _ = io.WriteString(bw, `]}}`)
	_ = bw.Flush()
}

// answerFault writes a whole-response fault, if one applies.
func (s *Server) answerFault(ctx context.Context, w http.ResponseWriter, q rangeQuery, faults []Fault) bool {
	for _, f := range faults {
		switch f.Kind {
		case ServerError:
			writeError(w, http.StatusInternalServerError, "internal", "fakeprom: injected internal error")
		case HTMLUnavailable:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "<html><head><title>503 Service Temporarily Unavailable</title></head>\n"+
				"<body><center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>\n")
		case Malformed:
			writeJSON(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"service":"`)
		case EmptyObject:
			writeJSON(w, `{}`)
		case SuccessOnly:
			writeJSON(w, `{"status":"success"}`)
		case NullData:
			writeJSON(w, `{"status":"success","data":null}`)
		case NullBody:
			writeJSON(w, `null`)
		case HugeSeries:
			s.writeHugeSeries(ctx, w, q, faults, f.Size)
		case HugeLabel:
			writeHugeLabel(ctx, w, f.Size)
		default:
			continue
		}
		return true
	}
	return false
}

func (s *Server) faultsFor(f source.Feature) []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Fault
	for _, fault := range s.faults {
		if fault.Feature == "" || fault.Feature == f {
			out = append(out, fault)
		}
	}
	return out
}

func first(faults []Fault, k Kind) (Fault, bool) {
	for _, f := range faults {
		if f.Kind == k {
			return f, true
		}
	}
	return Fault{}, false
}

// parseRangeQuery reads the form values the Prometheus API takes, as
// Prometheus does: times as Unix seconds or RFC 3339, the step as seconds or
// a duration.
func parseRangeQuery(r *http.Request) (rangeQuery, error) {
	if err := r.ParseForm(); err != nil {
		return rangeQuery{}, fmt.Errorf("parse form: %w", err)
	}
	var q rangeQuery
	text := r.Form.Get("query")
	for f, metric := range source.RecordedMetrics {
		if strings.Contains(text, metric) {
			q.feature = f
		}
	}
	if q.feature == "" {
		return q, fmt.Errorf("fakeprom: query %q names none of the recorded metrics %v", text, source.RecordedMetrics)
	}
	var err error
	if q.start, err = parseTime(r.Form.Get("start")); err != nil {
		return q, fmt.Errorf("invalid parameter \"start\": %w", err)
	}
	if q.end, err = parseTime(r.Form.Get("end")); err != nil {
		return q, fmt.Errorf("invalid parameter \"end\": %w", err)
	}
	if q.step, err = parseStep(r.Form.Get("step")); err != nil {
		return q, fmt.Errorf("invalid parameter \"step\": %w", err)
	}
	switch {
	case q.end.Before(q.start):
		return q, errors.New("end timestamp must not be before start time")
	case q.step <= 0:
		return q, errors.New("zero or negative query resolution step widths are not accepted")
	case q.end.Sub(q.start)/q.step+1 > maxPoints:
		return q, errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
	}
	return q, nil
}

func parseTime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
	}
	return t, nil
}

func parseStep(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if !(f > 0 && f < math.MaxInt64/float64(time.Second)) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
	}
	return time.Duration(d), nil
}

// steps returns the timestamps of a range query's answer: start, start+step,
// ... up to end, in milliseconds, as Prometheus evaluates them.
func (q rangeQuery) steps() []int64 {
	var out []int64
	for t := q.start; !t.After(q.end); t = t.Add(q.step) {
		out = append(out, t.UnixMilli())
	}
	return out
}

// Healthy values: deterministic in time and service, and plausible for a
// small web service (tens of requests per second, a few pods).
const (
	baseRequests   = 50
	swingRequests  = 20
	period         = 10 * time.Minute
	cpuPerRequest  = 0.004 // cores per req/s
	idleCPU        = 0.005 // cores with no requests
	healthyLatency = 0.05  // seconds
	healthyP99     = 0.2   // seconds
	healthyMemory  = 2e8   // bytes
	healthyPods    = 2
	healthyBurst   = 1.1 // requests_peak over requests
)

// HealthyValue is the fake's normal value of feature f for service number
// i (in the configured order) at t (milliseconds since the epoch).
func HealthyValue(f source.Feature, i int, ms int64) float64 {
	phase := 2*math.Pi*float64(ms)/float64(period.Milliseconds()) + float64(i)
	requests := baseRequests + swingRequests*math.Sin(phase)
	switch f {
	case source.Requests:
		return requests
	case source.RequestsPeak:
		return healthyBurst * requests
	case source.CPU:
		return idleCPU + cpuPerRequest*requests
	case source.Latency:
		return healthyLatency
	case source.LatencyP99:
		return healthyP99
	case source.Memory:
		return healthyMemory
	case source.Replicas:
		return healthyPods
	}
	return math.NaN()
}

// point is one sample of a series being written.
type point struct {
	ms int64
	v  float64
}

// seriesFor returns the samples of service i for q with the faults applied;
// ok is false when the service is absent from the answer.
func (s *Server) seriesFor(i int, q rangeQuery, faults []Fault) ([]point, bool) {
	svc := s.services[i]
	steps := q.steps()
	value := func(ms int64) float64 { return HealthyValue(q.feature, i, ms) }
	for _, f := range faults {
		if f.Service != svc {
			continue
		}
		switch f.Kind {
		case Absent:
			return nil, false
		case Idle:
			switch q.feature {
			case source.Latency, source.LatencyP99:
				return nil, false
			case source.Requests, source.RequestsPeak:
				value = func(int64) float64 { return 0 }
			case source.CPU:
				value = func(int64) float64 { return idleCPU }
			}
		case Value:
			v := f.Value
			value = func(int64) float64 { return v }
		}
	}
	pts := make([]point, len(steps))
	for k, ms := range steps {
		pts[k] = point{ms, value(ms)}
	}
	for _, f := range faults {
		switch {
		case f.Service == svc && (f.Kind == NaN || f.Kind == PosInf || f.Kind == NegInf || f.Kind == Negative):
			replaceSamples(pts, f)
		case f.Kind == Stale:
			cut := q.end.Add(-f.Shift).UnixMilli()
			n := 0
			for _, p := range pts {
				if p.ms <= cut {
					pts[n] = p
					n++
				}
			}
			pts = pts[:n]
		case f.Kind == Future:
			// Every sample lands Shift after the end, keeping the spacing.
			move := q.end.Add(f.Shift).UnixMilli() - q.start.UnixMilli()
			for k := range pts {
				pts[k].ms += move
			}
		}
	}
	if len(pts) == 0 {
		// Prometheus leaves a series with no sample in range out entirely.
		return nil, false
	}
	return pts, true
}

// replaceSamples overwrites the Count samples before the newest (all when
// Count is 0) with the fault's impossible value.
func replaceSamples(pts []point, f Fault) {
	bad := math.NaN()
	switch f.Kind {
	case PosInf:
		bad = math.Inf(1)
	case NegInf:
		bad = math.Inf(-1)
	case Negative:
		bad = -1
		if f.Value != 0 {
			bad = -math.Abs(f.Value)
		}
	}
	lo, hi := 0, len(pts)
	if f.Count > 0 {
		hi = len(pts) - 1
		lo = max(hi-f.Count, 0)
	}
	for k := lo; k < hi; k++ {
		pts[k].v = bad
	}
}

// writeSeries writes the matrix's series (without the enclosing brackets).
// It reports whether anything was written, so a caller appending more
// series knows whether a comma is needed.
func (s *Server) writeSeries(w *bufio.Writer, q rangeQuery, faults []Fault) bool {
	wrote := false
	for i, svc := range s.services {
		pts, ok := s.seriesFor(i, q, faults)
		if !ok {
			continue
		}
		if wrote {
			_ = w.WriteByte(',')
		}
		wrote = true
		writeOneSeries(w, svc, pts)
	}
	return wrote
}

func writeOneSeries(w *bufio.Writer, service string, pts []point) {
	_, _ = w.WriteString(`{"metric":{"service":`)
	_, _ = w.WriteString(jsonString(service))
	_, _ = w.WriteString(`},"values":[`)
	for k, p := range pts {
		if k > 0 {
			_ = w.WriteByte(',')
		}
		_ = w.WriteByte('[')
		_, _ = w.WriteString(strconv.FormatFloat(float64(p.ms)/1000, 'f', -1, 64))
		_, _ = w.WriteString(`,"`)
		_, _ = w.WriteString(formatValue(p.v))
		_, _ = w.WriteString(`"]`)
	}
	_, _ = w.WriteString(`]}`)
}

// formatValue writes a sample value as Prometheus does.
func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// countingWriter counts the bytes that reached the connection.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// extraPrefix names the made-up services of HugeSeries.
const extraPrefix = "fakeprom-extra-"

// writeHugeSeries writes a normal answer followed by series of made-up
// services until size bytes are out, or the client gives up.
func (s *Server) writeHugeSeries(ctx context.Context, w http.ResponseWriter, q rangeQuery, faults []Fault, size int64) {
	w.Header().Set("Content-Type", "application/json")
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	_, _ = bw.WriteString(`{"status":"success","data":{"resultType":"matrix","result":[`)
	wrote := s.writeSeries(bw, q, faults)
	// One extra series is formatted once; each copy only gets a new number,
	// so the fake writes about as fast as the connection takes it and is
	// never the reason a client's deadline passes first.
	steps := q.steps()
	pts := make([]point, len(steps))
	for k, ms := range steps {
		pts[k] = point{ms, 1}
	}
	var tmpl bytes.Buffer
	tb := bufio.NewWriter(&tmpl)
	_ = tb.WriteByte(',')
	writeOneSeries(tb, extraPrefix+"00000000", pts)
	_ = tb.Flush()
	extra := tmpl.Bytes()
	num := bytes.Index(extra, []byte(extraPrefix)) + len(extraPrefix)
	for n := 0; cw.n+int64(bw.Buffered()) < size && cw.err == nil && ctx.Err() == nil; n++ {
		copy(extra[num:num+8], fmt.Sprintf("%08d", n%100_000_000))
		if wrote {
			_, _ = bw.Write(extra)
		} else {
			_, _ = bw.Write(extra[1:]) // no comma before the first series
		}
		wrote = true
	}
	_, _ = bw.WriteString(`]}}`)
	_ = bw.Flush()
}

// writeHugeLabel writes one series whose service label is size bytes long.
func writeHugeLabel(ctx context.Context, w http.ResponseWriter, size int64) {
	w.Header().Set("Content-Type", "application/json")
	cw := &countingWriter{w: w}
	_, _ = io.WriteString(cw, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"service":"`)
	chunk := []byte(strings.Repeat("x", 64<<10))
	for cw.n < size && cw.err == nil && ctx.Err() == nil {
		_, _ = cw.Write(chunk[:min(int64(len(chunk)), size-cw.n)])
	}
	_, _ = io.WriteString(cw, `"},"values":[]}]}}`)
}

// jsonString quotes s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

func writeJSON(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, body)
}

// writeError answers as Prometheus' API does on failure.
func writeError(w http.ResponseWriter, code int, errType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = fmt.Fprintf(w, `{"status":"error","errorType":%s,"error":%s}`, jsonString(errType), jsonString(msg))
}

// resetConnection drops the connection without an answer; SO_LINGER 0 makes
// the close a TCP RST, as a crashing proxy's would be.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("fakeprom: the HTTP server does not support hijacking")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
