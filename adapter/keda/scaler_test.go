package keda

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/internal/pki"
)

// now is the fake clock of every test: predictions expire relative to it.
var now = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return now }

// pred is a fresh, valid prediction; edit changes it.
func pred(namespace, service string, edit func(*snapshot.Prediction)) snapshot.Prediction {
	p := snapshot.Prediction{
		Namespace: namespace, Service: service, Horizon: 2 * time.Minute,
		PredictedReplicas: 4, PredictedRequests: 123.5, PredictedCPUCores: 1.25,
		ObservedRequests: 100, ObservedCPUCores: 1, ObservedReplicas: 3, PeakMemoryPerPodBytes: math.NaN(),
		ComputedAt: now.Add(-10 * time.Second), ExpiresAt: now.Add(2 * time.Minute),
	}
	if edit != nil {
		edit(&p)
	}
	return p
}

func snap(preds ...snapshot.Prediction) *snapshot.Snapshot {
	return &snapshot.Snapshot{CreatedAt: now.Add(-10 * time.Second), Model: "test", Step: time.Minute, Predictions: preds}
}

// serve runs s on a loopback TCP port until the test ends and returns the
// address and a function that stops it and returns Serve's result.
func serve(t *testing.T, s *Server, creds credentials.TransportCredentials) (addr string, stop func() error) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis, creds) }()
	var result error
	stopped := false
	stop = func() error {
		if stopped {
			return result
		}
		stopped = true
		cancel()
		select {
		case result = <-done:
		case <-time.After(2 * shutdownTimeout):
			result = errors.New("Serve did not return after its context was cancelled")
		}
		return result
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String(), stop
}

func newServer(t *testing.T, reader snapshot.Reader, opts Options) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	opts.Registerer = reg
	s, err := NewServer(reader, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}

func dial(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantStatus fails unless err has code and a message containing msg.
func wantStatus(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code || !strings.Contains(st.Message(), msg) {
		t.Errorf("%s: got %v %q, want %v containing %q", what, st.Code(), st.Message(), code, msg)
	}
}

func TestTriggers(t *testing.T) {
	store := &snapshot.Store{}
	s, _ := newServer(t, store, Options{})
	addr, _ := serve(t, s, nil)
	client := pb.NewExternalScalerClient(dial(t, addr, nil))

	frontend := pred("boutique", "frontend", nil)
	requests := func(v float64) *snapshot.Snapshot {
		return snap(pred("boutique", "frontend", func(p *snapshot.Prediction) { p.PredictedRequests = v }))
	}
	md := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	tests := []struct {
		name      string
		namespace string // of the ScaledObject
		metadata  map[string]string
		snap      *snapshot.Snapshot // nil: before the first cycle

		// wantInvalid: every method fails with InvalidArgument naming this.
		wantInvalid string
		wantName    string
		wantTarget  float64
		// wantUnavailable: GetMetrics and IsActive fail with Unavailable
		// and this in the message; GetMetricSpec still answers.
		wantUnavailable string
		wantValue       float64
		wantActive      bool
	}{
		{
			name: "predicted replicas by default, KEDA's own keys ignored", namespace: "boutique",
			metadata: md("service", "frontend", "scalerAddress", "foresight.foresight.svc:9443", "enableTLS", "false"),
			snap:     snap(frontend),
			wantName: "foresight-frontend-predicted-replicas", wantTarget: 1, wantValue: 4, wantActive: true,
		},
		{
			name: "predicted requests", namespace: "boutique",
			metadata: md("service", "frontend", "metric", "foresight_predicted_requests", "targetValue", "50"),
			snap:     snap(frontend),
			wantName: "foresight-frontend-predicted-requests", wantTarget: 50, wantValue: 123.5, wantActive: true,
		},
		{
			name: "predicted CPU cores with a fractional target", namespace: "boutique",
			metadata: md("service", "frontend", "metric", "foresight_predicted_cpu_cores", "targetValue", " 0.5 "),
			snap:     snap(frontend),
			wantName: "foresight-frontend-predicted-cpu-cores", wantTarget: 0.5, wantValue: 1.25, wantActive: true,
		},
		{
			name: "namespace defaults to the ScaledObject's", namespace: "boutique",
			metadata: md("service", "frontend"),
			snap:     snap(pred("staging", "frontend", func(p *snapshot.Prediction) { p.PredictedReplicas = 9 }), frontend),
			wantName: "foresight-frontend-predicted-replicas", wantTarget: 1, wantValue: 4, wantActive: true,
		},
		{
			name: "namespace from metadata", namespace: "boutique",
			metadata: md("service", "frontend", "namespace", "staging"),
			snap:     snap(frontend, pred("staging", "frontend", func(p *snapshot.Prediction) { p.PredictedReplicas = 9 })),
			wantName: "foresight-frontend-predicted-replicas", wantTarget: 1, wantValue: 9, wantActive: true,
		},
		{
			name: "keys resolved from the environment (FromEnv)", namespace: "boutique",
			metadata: md("serviceFromEnv", "frontend", "metricFromEnv", "foresight_predicted_requests", "targetValueFromEnv", "100"),
			snap:     snap(frontend),
			wantName: "foresight-frontend-predicted-requests", wantTarget: 100, wantValue: 123.5, wantActive: true,
		},
		{
			name: "service name sanitized in the metric name", namespace: "boutique",
			metadata: md("service", "shop/front.end"),
			snap:     snap(pred("boutique", "shop/front.end", func(p *snapshot.Prediction) { p.PredictedReplicas = 2 })),
			wantName: "foresight-shop-front-end-predicted-replicas", wantTarget: 1, wantValue: 2, wantActive: true,
		},
		{
			name: "above activationValue is active", namespace: "boutique",
			metadata: md("service", "frontend", "metric", "foresight_predicted_requests", "targetValue", "10", "activationValue", "0.1"),
			snap:     requests(0.2),
			wantName: "foresight-frontend-predicted-requests", wantTarget: 10, wantValue: 0.2, wantActive: true,
		},
		{
			name: "at activationValue is inactive", namespace: "boutique",
			metadata: md("service", "frontend", "metric", "foresight_predicted_requests", "targetValue", "10", "activationValue", "0.1"),
			snap:     requests(0.1),
			wantName: "foresight-frontend-predicted-requests", wantTarget: 10, wantValue: 0.1, wantActive: false,
		},
		{
			name: "an idle service forecasts zero requests", namespace: "boutique",
			metadata: md("service", "frontend", "metric", "foresight_predicted_requests", "targetValue", "10"),
			snap:     requests(0),
			wantName: "foresight-frontend-predicted-requests", wantTarget: 10, wantValue: 0, wantActive: false,
		},
		{
			name: "a held prediction is served until it expires", namespace: "boutique",
			metadata: md("service", "frontend"),
			snap:     snap(pred("boutique", "frontend", func(p *snapshot.Prediction) { p.HeldReason = "missing_data" })),
			wantName: "foresight-frontend-predicted-replicas", wantTarget: 1, wantValue: 4, wantActive: true,
		},
		{
			name: "of two predictions for a service the newest is served", namespace: "boutique",
			metadata: md("service", "frontend"),
			snap: snap(
				pred("boutique", "frontend", func(p *snapshot.Prediction) { p.PredictedReplicas = 7; p.ComputedAt = now.Add(-5 * time.Second) }),
				frontend,
			),
			wantName: "foresight-frontend-predicted-replicas", wantTarget: 1, wantValue: 7, wantActive: true,
		},

		{name: "service missing", namespace: "boutique", metadata: md("metric", "foresight_predicted_replicas"), snap: snap(frontend), wantInvalid: `"service" is required`},
		{name: "service empty", namespace: "boutique", metadata: md("service", " "), snap: snap(frontend), wantInvalid: `"service" is required`},
		{name: "no metadata at all", namespace: "boutique", snap: snap(frontend), wantInvalid: `"service" is required`},
		{name: "unknown metric", namespace: "boutique", metadata: md("service", "frontend", "metric", "foresight_predicted_memory"), snap: snap(frontend), wantInvalid: `"metric": unknown metric "foresight_predicted_memory"`},
		{name: "unknown key", namespace: "boutique", metadata: md("service", "frontend", "targetvalue", "2"), snap: snap(frontend), wantInvalid: `unknown trigger metadata key "targetvalue"`},
		{name: "TLS material in metadata", namespace: "boutique", metadata: md("service", "frontend", "caCert", "x"), snap: snap(frontend), wantInvalid: `unknown trigger metadata key "caCert"`},
		{name: "targetValue not a number", namespace: "boutique", metadata: md("service", "frontend", "targetValue", "two"), snap: snap(frontend), wantInvalid: `"targetValue": "two" is not a finite number`},
		{name: "targetValue NaN", namespace: "boutique", metadata: md("service", "frontend", "targetValue", "NaN"), snap: snap(frontend), wantInvalid: `"targetValue": "NaN" is not a finite number`},
		{name: "targetValue infinite", namespace: "boutique", metadata: md("service", "frontend", "targetValue", "+Inf"), snap: snap(frontend), wantInvalid: `"targetValue": "+Inf" is not a finite number`},
		{name: "targetValue zero", namespace: "boutique", metadata: md("service", "frontend", "targetValue", "0"), snap: snap(frontend), wantInvalid: `"targetValue" must be above 0`},
		{name: "targetValue negative", namespace: "boutique", metadata: md("service", "frontend", "targetValue", "-2"), snap: snap(frontend), wantInvalid: `"targetValue" must be above 0`},
		{name: "targetValue required for requests", namespace: "boutique", metadata: md("service", "frontend", "metric", "foresight_predicted_requests"), snap: snap(frontend), wantInvalid: `"targetValue" is required for metric foresight_predicted_requests`},
		{name: "targetValue required for CPU", namespace: "boutique", metadata: md("service", "frontend", "metric", "foresight_predicted_cpu_cores"), snap: snap(frontend), wantInvalid: `"targetValue" is required for metric foresight_predicted_cpu_cores`},
		{name: "activationValue negative", namespace: "boutique", metadata: md("service", "frontend", "activationValue", "-1"), snap: snap(frontend), wantInvalid: `"activationValue" must not be negative`},
		{name: "activationValue not a number", namespace: "boutique", metadata: md("service", "frontend", "activationValue", "1e999"), snap: snap(frontend), wantInvalid: `"activationValue": "1e999" is not a finite number`},
		{name: "key and FromEnv both set", namespace: "boutique", metadata: md("service", "frontend", "serviceFromEnv", "cart"), snap: snap(frontend), wantInvalid: `both "service" and "serviceFromEnv"`},
		{name: "namespace empty", namespace: "boutique", metadata: md("service", "frontend", "namespace", ""), snap: snap(frontend), wantInvalid: `"namespace" is empty`},
		{name: "no namespace anywhere", metadata: md("service", "frontend"), snap: snap(frontend), wantInvalid: `"namespace" is not set`},

		{
			name: "before the first cycle", namespace: "boutique", metadata: md("service", "frontend"),
			wantName: "foresight-frontend-predicted-replicas", wantTarget: 1,
			wantUnavailable: "Foresight has not completed its first cycle",
		},
		{
			name: "held, then expired", namespace: "boutique", metadata: md("service", "frontend"),
			snap:     snap(pred("boutique", "frontend", func(p *snapshot.Prediction) { p.HeldReason = "missing_data"; p.ExpiresAt = now })),
			wantName: "foresight-frontend-predicted-replicas", wantTarget: 1,
			wantUnavailable: "the prediction for boutique/frontend expired at 2026-03-02T12:00:00Z (held: missing_data)",
		},
		{
			name: "service not forecast", namespace: "boutique", metadata: md("service", "checkout"),
			snap:     snap(frontend),
			wantName: "foresight-checkout-predicted-replicas", wantTarget: 1,
			wantUnavailable: "no prediction for boutique/checkout",
		},
		{
			name: "forecast only in another namespace", namespace: "boutique", metadata: md("service", "frontend"),
			snap:     snap(pred("staging", "frontend", nil)),
			wantName: "foresight-frontend-predicted-replicas", wantTarget: 1,
			wantUnavailable: "no prediction for boutique/frontend",
		},
		{
			name: "predicted replicas below 1", namespace: "boutique", metadata: md("service", "frontend"),
			snap:     snap(pred("boutique", "frontend", func(p *snapshot.Prediction) { p.PredictedReplicas = 0 })),
			wantName: "foresight-frontend-predicted-replicas", wantTarget: 1,
			wantUnavailable: "predicted replicas 0 is below 1",
		},
		{
			name: "NaN requests", namespace: "boutique", metadata: md("service", "frontend", "metric", "foresight_predicted_requests", "targetValue", "10"),
			snap:     requests(math.NaN()),
			wantName: "foresight-frontend-predicted-requests", wantTarget: 10,
			wantUnavailable: "predicted requests is NaN",
		},
		{
			name: "infinite requests", namespace: "boutique", metadata: md("service", "frontend", "metric", "foresight_predicted_requests", "targetValue", "10"),
			snap:     requests(math.Inf(1)),
			wantName: "foresight-frontend-predicted-requests", wantTarget: 10,
			wantUnavailable: "predicted requests is +Inf",
		},
		{
			name: "negative CPU", namespace: "boutique", metadata: md("service", "frontend", "metric", "foresight_predicted_cpu_cores", "targetValue", "1"),
			snap:     snap(pred("boutique", "frontend", func(p *snapshot.Prediction) { p.PredictedCPUCores = -0.5 })),
			wantName: "foresight-frontend-predicted-cpu-cores", wantTarget: 1,
			wantUnavailable: "predicted CPU cores is negative",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store.Publish(tt.snap)
			ctx := callCtx(t)
			ref := &pb.ScaledObjectRef{Name: "frontend", Namespace: tt.namespace, ScalerMetadata: tt.metadata}

			spec, err := client.GetMetricSpec(ctx, ref)
			metricName := tt.wantName
			if tt.wantInvalid != "" {
				wantStatus(t, "GetMetricSpec", err, codes.InvalidArgument, tt.wantInvalid)
				metricName = "foresight-frontend-predicted-replicas"
			} else if err != nil {
				t.Fatalf("GetMetricSpec: %v", err)
			} else {
				if len(spec.MetricSpecs) != 1 {
					t.Fatalf("GetMetricSpec: %d specs, want 1", len(spec.MetricSpecs))
				}
				got := spec.MetricSpecs[0]
				if got.MetricName != tt.wantName || got.TargetSizeFloat != tt.wantTarget || got.TargetSize != max(1, int64(math.Round(tt.wantTarget))) {
					t.Errorf("GetMetricSpec = %q target %v (int %d), want %q target %v", got.MetricName, got.TargetSizeFloat, got.TargetSize, tt.wantName, tt.wantTarget)
				}
			}

			metrics, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: metricName})
			active, activeErr := client.IsActive(ctx, ref)
			switch {
			case tt.wantInvalid != "":
				wantStatus(t, "GetMetrics", err, codes.InvalidArgument, tt.wantInvalid)
				wantStatus(t, "IsActive", activeErr, codes.InvalidArgument, tt.wantInvalid)
			case tt.wantUnavailable != "":
				wantStatus(t, "GetMetrics", err, codes.Unavailable, tt.wantUnavailable)
				wantStatus(t, "IsActive", activeErr, codes.Unavailable, tt.wantUnavailable)
			default:
				if err != nil {
					t.Fatalf("GetMetrics: %v", err)
				}
				if activeErr != nil {
					t.Fatalf("IsActive: %v", activeErr)
				}
				if len(metrics.MetricValues) != 1 {
					t.Fatalf("GetMetrics: %d values, want 1", len(metrics.MetricValues))
				}
				got := metrics.MetricValues[0]
				if got.MetricName != tt.wantName || got.MetricValueFloat != tt.wantValue || got.MetricValue != int64(math.Round(tt.wantValue)) {
					t.Errorf("GetMetrics = %q %v (int %d), want %q %v", got.MetricName, got.MetricValueFloat, got.MetricValue, tt.wantName, tt.wantValue)
				}
				if active.Result != tt.wantActive {
					t.Errorf("IsActive = %v, want %v", active.Result, tt.wantActive)
				}
			}
		})
	}
}

func TestGetMetricsRequestErrors(t *testing.T) {
	store := &snapshot.Store{}
	store.Publish(snap(pred("boutique", "frontend", nil)))
	s, _ := newServer(t, store, Options{})
	addr, _ := serve(t, s, nil)
	client := pb.NewExternalScalerClient(dial(t, addr, nil))
	ref := &pb.ScaledObjectRef{Name: "frontend", Namespace: "boutique", ScalerMetadata: map[string]string{"service": "frontend"}}

	tests := []struct {
		name     string
		req      *pb.GetMetricsRequest
		wantCode codes.Code
		wantMsg  string
	}{
		{"metric name of another trigger", &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: "foresight-cart-predicted-replicas"},
			codes.NotFound, `metric "foresight-cart-predicted-replicas" is not served for this trigger (its metadata gives "foresight-frontend-predicted-replicas")`},
		{"metric name with KEDA's index prefix", &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: "s0-foresight-frontend-predicted-replicas"},
			codes.NotFound, "is not served for this trigger"},
		{"no ScaledObjectRef", &pb.GetMetricsRequest{MetricName: "foresight-frontend-predicted-replicas"},
			codes.InvalidArgument, "scaledObjectRef is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.GetMetrics(callCtx(t), tt.req)
			wantStatus(t, "GetMetrics", err, tt.wantCode, tt.wantMsg)
		})
	}
}

// counter returns foresight_keda_requests_total{method, code} from reg.
func counter(t *testing.T, reg *prometheus.Registry, method, code string) float64 {
	t.Helper()
	return gathered(t, reg, "foresight_keda_requests_total", map[string]string{"method": method, "code": code})
}

func gathered(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue metrics
				}
			}
			return value(m)
		}
	}
	return 0
}

func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func TestRequestsAreCounted(t *testing.T) {
	store := &snapshot.Store{}
	s, reg := newServer(t, store, Options{})
	addr, _ := serve(t, s, nil)
	conn := dial(t, addr, nil)
	client := pb.NewExternalScalerClient(conn)
	ctx := callCtx(t)
	ref := &pb.ScaledObjectRef{Name: "frontend", Namespace: "boutique", ScalerMetadata: map[string]string{"service": "frontend"}}
	get := &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: "foresight-frontend-predicted-replicas"}

	// Before the first cycle: two Unavailable.
	for range 2 {
		if _, err := client.GetMetrics(ctx, get); status.Code(err) != codes.Unavailable {
			t.Fatalf("GetMetrics before the first cycle: %v, want Unavailable", err)
		}
	}
	store.Publish(snap(pred("boutique", "frontend", nil)))
	for range 3 {
		if _, err := client.GetMetrics(ctx, get); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.IsActive(ctx, &pb.ScaledObjectRef{Namespace: "boutique"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("IsActive without a service: %v, want InvalidArgument", err)
	}
	if _, err := client.GetMetricSpec(ctx, ref); err != nil {
		t.Fatal(err)
	}
	// Health probes are not KEDA requests.
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		method, code string
		want         float64
	}{
		{"GetMetrics", "Unavailable", 2},
		{"GetMetrics", "OK", 3},
		{"IsActive", "InvalidArgument", 1},
		{"IsActive", "OK", 0},
		{"GetMetricSpec", "OK", 1},
		{"Check", "OK", 0},
	} {
		if got := counter(t, reg, c.method, c.code); got != c.want {
			t.Errorf("foresight_keda_requests_total{method=%q,code=%q} = %v, want %v", c.method, c.code, got, c.want)
		}
	}
}

// recv reads a stream into a channel so tests can wait with a deadline.
func recv(stream grpc.ServerStreamingClient[pb.IsActiveResponse]) (<-chan bool, <-chan error) {
	results, errc := make(chan bool, 16), make(chan error, 1)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			results <- r.Result
		}
	}()
	return results, errc
}

func next(t *testing.T, results <-chan bool, errc <-chan error, within time.Duration) bool {
	t.Helper()
	select {
	case r := <-results:
		return r
	case err := <-errc:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(within):
		t.Fatalf("no StreamIsActive result within %v", within)
	}
	return false
}

func nothing(t *testing.T, results <-chan bool, errc <-chan error, during time.Duration) {
	t.Helper()
	select {
	case r := <-results:
		t.Fatalf("StreamIsActive sent %v, want nothing", r)
	case err := <-errc:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(during):
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStreamIsActive(t *testing.T) {
	store := &snapshot.Store{}
	// An hour: every result below is sent because it is the first or a change.
	s, reg := newServer(t, store, Options{StreamInterval: time.Hour})
	addr, _ := serve(t, s, nil)
	client := pb.NewExternalScalerClient(dial(t, addr, nil))
	requests := func(v float64) *snapshot.Snapshot {
		return snap(pred("boutique", "frontend", func(p *snapshot.Prediction) { p.PredictedRequests = v }))
	}
	ref := &pb.ScaledObjectRef{Name: "frontend", Namespace: "boutique", ScalerMetadata: map[string]string{
		"service": "frontend", "metric": "foresight_predicted_requests", "targetValue": "10", "activationValue": "0.1"}}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := client.StreamIsActive(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	results, errc := recv(stream)
	within := 5 * streamCheckEvery

	// Before the first cycle there is nothing to say.
	nothing(t, results, errc, 2*streamCheckEvery)
	waitFor(t, "the stream to be counted as open", func() bool { return gathered(t, reg, "foresight_keda_streams", nil) == 1 })

	store.Publish(requests(0.05))
	if got := next(t, results, errc, within); got {
		t.Fatal("initial result = true, want false (0.05 req/s is not above 0.1)")
	}
	store.Publish(requests(0.5))
	if got := next(t, results, errc, within); !got {
		t.Fatal("after the forecast rose: false, want true")
	}
	// The same state is not repeated before StreamInterval.
	store.Publish(requests(0.7))
	nothing(t, results, errc, 2*streamCheckEvery)

	// Expired: nothing is sent; once fresh again the state is sent anew,
	// even though it did not change.
	store.Publish(snap(pred("boutique", "frontend", func(p *snapshot.Prediction) { p.ExpiresAt = now.Add(-time.Second) })))
	nothing(t, results, errc, 2*streamCheckEvery)
	store.Publish(requests(0.5))
	if got := next(t, results, errc, within); !got {
		t.Fatal("after the outage: false, want true")
	}

	cancel()
	select {
	case err := <-errc:
		if status.Code(err) != codes.Canceled {
			t.Fatalf("stream ended with %v, want Canceled", err)
		}
	case <-time.After(within):
		t.Fatal("stream did not end after the client cancelled it")
	}
	waitFor(t, "the server to end the stream", func() bool {
		return gathered(t, reg, "foresight_keda_streams", nil) == 0 && counter(t, reg, "StreamIsActive", "Canceled") == 1
	})
}

func TestStreamIsActiveRepeatsEveryInterval(t *testing.T) {
	store := &snapshot.Store{}
	store.Publish(snap(pred("boutique", "frontend", nil)))
	s, _ := newServer(t, store, Options{StreamInterval: MinStreamInterval})
	addr, _ := serve(t, s, nil)
	client := pb.NewExternalScalerClient(dial(t, addr, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := client.StreamIsActive(ctx, &pb.ScaledObjectRef{Namespace: "boutique", ScalerMetadata: map[string]string{"service": "frontend"}})
	if err != nil {
		t.Fatal(err)
	}
	results, errc := recv(stream)
	start := time.Now()
	for i := range 4 {
		if !next(t, results, errc, 5*time.Second) {
			t.Fatalf("result %d = false, want true", i)
		}
	}
	// Four results: the first at once, three repeats at least 100 ms apart.
	if elapsed := time.Since(start); elapsed < 3*MinStreamInterval {
		t.Errorf("four results in %v, want repeats no faster than every %v", elapsed, MinStreamInterval)
	}
}

func TestStreamIsActiveInvalidTrigger(t *testing.T) {
	s, reg := newServer(t, &snapshot.Store{}, Options{})
	addr, _ := serve(t, s, nil)
	client := pb.NewExternalScalerClient(dial(t, addr, nil))
	stream, err := client.StreamIsActive(callCtx(t), &pb.ScaledObjectRef{Namespace: "boutique", ScalerMetadata: map[string]string{"service": "frontend", "metric": "rps"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	wantStatus(t, "StreamIsActive", err, codes.InvalidArgument, `unknown metric "rps"`)
	waitFor(t, "the failed stream to be counted", func() bool { return counter(t, reg, "StreamIsActive", "InvalidArgument") == 1 })
}

func TestServeStopsGracefullyWithOpenStreams(t *testing.T) {
	store := &snapshot.Store{}
	store.Publish(snap(pred("boutique", "frontend", nil)))
	s, _ := newServer(t, store, Options{StreamInterval: time.Hour})
	addr, stop := serve(t, s, nil)
	conn := dial(t, addr, nil)
	ctx := callCtx(t)

	for _, service := range []string{"", serviceName} {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health of %q: %v %v, want SERVING", service, resp, err)
		}
	}
	stream, err := pb.NewExternalScalerClient(conn).StreamIsActive(ctx, &pb.ScaledObjectRef{Namespace: "boutique", ScalerMetadata: map[string]string{"service": "frontend"}})
	if err != nil {
		t.Fatal(err)
	}
	results, errc := recv(stream)
	next(t, results, errc, 5*time.Second)

	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// Well under shutdownTimeout: the stream was ended, not cut off.
	if elapsed := time.Since(start); elapsed >= shutdownTimeout {
		t.Errorf("shutdown took %v, want the open stream ended before the %v timeout", elapsed, shutdownTimeout)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, io.EOF) {
			t.Errorf("stream ended with %v, want a clean end (EOF) so KEDA reconnects at once", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("stream still open after shutdown")
	}
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	defer lis.Close()
	if err := s.Serve(context.Background(), lis, nil); err == nil || !strings.Contains(err.Error(), "Serve called twice") {
		t.Errorf("second Serve = %v, want an error", err)
	}
}

func TestNewServerRejects(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewServer(&snapshot.Store{}, Options{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		reader  snapshot.Reader
		opts    Options
		wantErr string
	}{
		{"no reader", nil, Options{}, "snapshot reader is nil"},
		{"stream interval too short", &snapshot.Store{}, Options{StreamInterval: time.Millisecond}, "stream interval 1ms is below the minimum 100ms"},
		{"negative stream interval", &snapshot.Store{}, Options{StreamInterval: -time.Second}, "stream interval -1s is below the minimum"},
		{"metrics already registered", &snapshot.Store{}, Options{Registerer: reg}, "registering metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewServer(tt.reader, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewServer = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// testPKI is a server CA with a certificate for 127.0.0.1, a client CA with
// a client certificate, and a client certificate from an unrelated CA.
type testPKI struct {
	dir                         string
	serverCA, clientCA, rogueCA *pki.CA
	serverCert, serverKey       string
	clientCAFile                string
	clientPair, roguePair       tls.Certificate
	serverRoots                 *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	var err error
	for _, ca := range []struct {
		to   **pki.CA
		name string
	}{{&p.serverCA, "foresight-ca"}, {&p.clientCA, "keda-clients"}, {&p.rogueCA, "rogue"}} {
		if *ca.to, err = pki.NewCA(ca.name, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	p.serverCert, p.serverKey = filepath.Join(p.dir, "tls.crt"), filepath.Join(p.dir, "tls.key")
	p.issueServer(t)
	p.clientCAFile = filepath.Join(p.dir, "client-ca.crt")
	if err := p.clientCA.WriteCert(p.clientCAFile); err != nil {
		t.Fatal(err)
	}
	p.clientPair = clientPair(t, p.clientCA)
	p.roguePair = clientPair(t, p.rogueCA)
	p.serverRoots = x509.NewCertPool()
	p.serverRoots.AddCert(p.serverCA.Cert)
	return p
}

// issueServer (re)writes the server's key pair; each call a new serial.
func (p *testPKI) issueServer(t *testing.T) *x509.Certificate {
	t.Helper()
	certPEM, _, err := p.serverCA.Issue(x509.Certificate{
		Subject:     pkix.Name{CommonName: "foresight.foresight.svc"},
		DNSNames:    []string{"foresight.foresight.svc", "localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, p.serverCert, p.serverKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, mustRead(t, p.serverKey))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func clientPair(t *testing.T, ca *pki.CA) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.Sign(x509.Certificate{
		Subject:     pkix.Name{CommonName: "keda-operator"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTLS(t *testing.T) {
	p := newTestPKI(t)
	otherRoots := x509.NewCertPool()
	otherRoots.AddCert(p.rogueCA.Cert)
	clientTLS := func(roots *x509.CertPool, certs ...tls.Certificate) credentials.TransportCredentials {
		return credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12})
	}

	tests := []struct {
		name      string
		plaintext bool // server without TLS
		clientCA  bool // server requires client certificates
		client    credentials.TransportCredentials
		wantOK    bool
	}{
		{"plaintext server, plaintext client", true, false, insecure.NewCredentials(), true},
		{"plaintext server, TLS client", true, false, clientTLS(p.serverRoots), false},
		{"server TLS, client trusts the CA", false, false, clientTLS(p.serverRoots), true},
		{"server TLS, client certificate not needed but accepted", false, false, clientTLS(p.serverRoots, p.clientPair), true},
		{"server TLS, plaintext client", false, false, insecure.NewCredentials(), false},
		{"server TLS, client does not trust the CA", false, false, clientTLS(otherRoots), false},
		{"mTLS, client certificate from the client CA", false, true, clientTLS(p.serverRoots, p.clientPair), true},
		{"mTLS, client without a certificate", false, true, clientTLS(p.serverRoots), false},
		{"mTLS, client certificate from another CA", false, true, clientTLS(p.serverRoots, p.roguePair), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clientCA := ""
			if tt.clientCA {
				clientCA = p.clientCAFile
			}
			var creds credentials.TransportCredentials
			if !tt.plaintext {
				var err error
				if creds, err = TLSCredentials(p.serverCert, p.serverKey, clientCA); err != nil {
					t.Fatal(err)
				}
			}
			s, reg := newServer(t, &snapshot.Store{}, Options{})
			addr, _ := serve(t, s, creds)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := pb.NewExternalScalerClient(dial(t, addr, tt.client)).GetMetricSpec(ctx,
				&pb.ScaledObjectRef{Namespace: "boutique", ScalerMetadata: map[string]string{"service": "frontend"}})
			if tt.wantOK && err != nil {
				t.Fatalf("GetMetricSpec: %v, want success", err)
			}
			if !tt.wantOK {
				if err == nil {
					t.Fatal("GetMetricSpec succeeded, want the connection refused")
				}
				t.Logf("refused as expected: %v", err)
				if status.Code(err) != codes.Unavailable {
					t.Errorf("GetMetricSpec: %v, want a transport failure (Unavailable)", err)
				}
				if n := counter(t, reg, "GetMetricSpec", "OK"); n != 0 {
					t.Errorf("a refused client reached the scaler (%v requests)", n)
				}
			}
		})
	}
}

// serverSerial is the serial number of the certificate addr presents.
func serverSerial(t *testing.T, addr string, roots *x509.CertPool) *big.Int {
	t.Helper()
	d := &tls.Dialer{Config: &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(callCtx(t), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber
}

func TestTLSCredentialsReloadRenewedCertificate(t *testing.T) {
	p := newTestPKI(t)
	first, err := x509.ParseCertificate(mustReadPair(t, p).Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	creds, err := TLSCredentials(p.serverCert, p.serverKey, "")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newServer(t, &snapshot.Store{}, Options{})
	addr, _ := serve(t, s, creds)
	if got := serverSerial(t, addr, p.serverRoots); got.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("serial %v, want the first certificate's %v", got, first.SerialNumber)
	}

	renewed := p.issueServer(t)
	if got := serverSerial(t, addr, p.serverRoots); got.Cmp(renewed.SerialNumber) != 0 {
		t.Fatalf("after renewal: serial %v, want the renewed certificate's %v", got, renewed.SerialNumber)
	}

	// A broken renewal keeps the last good certificate.
	if err := os.WriteFile(p.serverCert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := serverSerial(t, addr, p.serverRoots); got.Cmp(renewed.SerialNumber) != 0 {
		t.Fatalf("after a broken renewal: serial %v, want the last good %v", got, renewed.SerialNumber)
	}
}

func mustReadPair(t *testing.T, p *testPKI) tls.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func TestTLSCredentialsErrors(t *testing.T) {
	p := newTestPKI(t)
	garbage := filepath.Join(p.dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("no PEM here"), 0o600); err != nil {
		t.Fatal(err)
	}
	otherKey := filepath.Join(p.dir, "other.key")
	if _, _, err := p.rogueCA.Issue(x509.Certificate{Subject: pkix.Name{CommonName: "other"}}, filepath.Join(p.dir, "other.crt"), otherKey, time.Now()); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(p.dir, "missing.pem")

	tests := []struct {
		name                string
		cert, key, clientCA string
		wantErr             string
	}{
		{"no certificate", "", p.serverKey, "", "both a certificate and a key file are required"},
		{"no key", p.serverCert, "", "", "both a certificate and a key file are required"},
		{"certificate file missing", missing, p.serverKey, "", "reading certificate"},
		{"key file missing", p.serverCert, missing, "", "reading key"},
		{"key of another certificate", p.serverCert, otherKey, "", "loading key pair"},
		{"client CA file missing", p.serverCert, p.serverKey, missing, "reading client CA"},
		{"client CA file without a certificate", p.serverCert, p.serverKey, garbage, "no PEM certificate in client CA file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := TLSCredentials(tt.cert, tt.key, tt.clientCA)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("TLSCredentials = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
