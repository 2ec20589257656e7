// Package keda serves Foresight's forecasts to KEDA as an external scaler:
// the ExternalScaler gRPC service of github.com/kedacore/keda/v2
// (pkg/scalers/externalscaler), for ScaledObject triggers of type
// `external` and `external-push`. Like the rest of the adapter it only reads
// a snapshot.Reader, once per request, so a call never waits on the model.
package keda

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/foresightscale/foresight/adapter"
	"github.com/foresightscale/foresight/forecaster/snapshot"
)

// Trigger metadata keys (ScaledObject `triggers[].metadata`).
const (
	KeyService         = "service"
	KeyNamespace       = "namespace"
	KeyMetric          = "metric"
	KeyTargetValue     = "targetValue"
	KeyActivationValue = "activationValue"
)

// KEDA sends the trigger's whole metadata, including the keys it reads
// itself (pkg/scalers/external_scaler.go: scalerAddress, enableTLS,
// unsafeSsl); they are accepted and ignored.
var kedaKeys = map[string]bool{"scalerAddress": true, "enableTLS": true, "unsafeSsl": true}

// fromEnvSuffix: KEDA resolves `<key>FromEnv` from the scale target's
// container environment and passes the value under the same key.
const fromEnvSuffix = "FromEnv"

var ownKeys = []string{KeyService, KeyNamespace, KeyMetric, KeyTargetValue, KeyActivationValue}

// DefaultStreamInterval is how often StreamIsActive repeats an unchanged
// result when Options.StreamInterval is zero.
const DefaultStreamInterval = 15 * time.Second

// MinStreamInterval bounds the repeat rate a misconfiguration could ask for.
const MinStreamInterval = 100 * time.Millisecond

// streamCheckEvery is how often an open stream re-reads the snapshot, so a
// change in activity reaches KEDA within a second rather than one
// StreamInterval (KEDA scales from zero on the first `true` it receives).
const streamCheckEvery = time.Second

// shutdownTimeout bounds GracefulStop; then connections are closed.
const shutdownTimeout = 5 * time.Second

// serviceName is the ExternalScaler service's full gRPC name; only its
// methods are counted in foresight_keda_requests_total.
var serviceName = pb.ExternalScaler_ServiceDesc.ServiceName

// metricKind is one metric a trigger can select.
type metricKind struct {
	name string
	// short names it in the HPA metric name.
	short string
	// defaultTarget is the targetValue when the trigger sets none; 0 means
	// the trigger must set it.
	defaultTarget float64
}

var metricKinds = map[string]metricKind{
	adapter.MetricPredictedReplicas: {
		name: adapter.MetricPredictedReplicas, short: "predicted-replicas",
		// The prediction is the whole Deployment's count: with an
		// AverageValue target of 1 the HPA's desired count equals it, as
		// with the shipped External-metric HPAs.
		defaultTarget: 1,
	},
	adapter.MetricPredictedRequests: {name: adapter.MetricPredictedRequests, short: "predicted-requests"},
	adapter.MetricPredictedCPUCores: {name: adapter.MetricPredictedCPUCores, short: "predicted-cpu-cores"},
}

// trigger is one validated ScaledObject trigger.
type trigger struct {
	namespace, service string
	metric             metricKind
	target             float64
	activation         float64
}

// metricName is the HPA metric name for the trigger (KEDA prefixes it with
// "s<trigger index>-"): stable for given metadata and a valid path segment.
func (t trigger) metricName() string {
	return "foresight-" + sanitize(t.service) + "-" + t.metric.short
}

// sanitize keeps letters, digits, '-' and '_'; anything else becomes '-'
// (KEDA's own scalers do the same for '/', '.', ':' and the like).
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, s)
}

// parseTrigger validates the metadata up front and names the offending key
// in a gRPC InvalidArgument error.
func parseTrigger(ref *pb.ScaledObjectRef) (trigger, error) {
	if ref == nil {
		return trigger{}, status.Error(codes.InvalidArgument, "scaledObjectRef is missing")
	}
	values := make(map[string]string, len(ownKeys))
	for key, value := range ref.GetScalerMetadata() {
		if kedaKeys[key] {
			continue
		}
		own := strings.TrimSuffix(key, fromEnvSuffix)
		if !isOwnKey(own) {
			return trigger{}, status.Errorf(codes.InvalidArgument,
				"unknown trigger metadata key %q (Foresight reads %s; KEDA reads %s; TLS material belongs in a TriggerAuthentication)",
				key, strings.Join(ownKeys, ", "), strings.Join(sortedKeys(kedaKeys), ", "))
		}
		if _, dup := values[own]; dup {
			return trigger{}, status.Errorf(codes.InvalidArgument,
				"trigger metadata sets both %q and %q: keep one", own, own+fromEnvSuffix)
		}
		values[own] = strings.TrimSpace(value)
	}

	t := trigger{service: values[KeyService], namespace: ref.GetNamespace()}
	if t.service == "" {
		return trigger{}, status.Errorf(codes.InvalidArgument, "trigger metadata %q is required: the service name Foresight forecasts", KeyService)
	}
	if ns, ok := values[KeyNamespace]; ok {
		if ns == "" {
			return trigger{}, status.Errorf(codes.InvalidArgument, "trigger metadata %q is empty: remove it to use the ScaledObject's namespace", KeyNamespace)
		}
		t.namespace = ns
	}
	if t.namespace == "" {
		return trigger{}, status.Errorf(codes.InvalidArgument, "trigger metadata %q is not set and the ScaledObjectRef has no namespace", KeyNamespace)
	}

	name := adapter.MetricPredictedReplicas
	if m, ok := values[KeyMetric]; ok {
		name = m
	}
	kind, ok := metricKinds[name]
	if !ok {
		return trigger{}, status.Errorf(codes.InvalidArgument, "trigger metadata %q: unknown metric %q (one of %s, %s, %s)",
			KeyMetric, name, adapter.MetricPredictedReplicas, adapter.MetricPredictedRequests, adapter.MetricPredictedCPUCores)
	}
	t.metric = kind

	t.target = kind.defaultTarget
	if v, ok := values[KeyTargetValue]; ok {
		f, err := parseNumber(KeyTargetValue, v)
		if err != nil {
			return trigger{}, err
		}
		if f <= 0 {
			return trigger{}, status.Errorf(codes.InvalidArgument, "trigger metadata %q must be above 0, got %q", KeyTargetValue, v)
		}
		t.target = f
	} else if t.target == 0 {
		return trigger{}, status.Errorf(codes.InvalidArgument,
			"trigger metadata %q is required for metric %s: the value one replica handles", KeyTargetValue, name)
	}

	if v, ok := values[KeyActivationValue]; ok {
		f, err := parseNumber(KeyActivationValue, v)
		if err != nil {
			return trigger{}, err
		}
		if f < 0 {
			return trigger{}, status.Errorf(codes.InvalidArgument, "trigger metadata %q must not be negative, got %q", KeyActivationValue, v)
		}
		t.activation = f
	}
	return t, nil
}

func isOwnKey(key string) bool {
	for _, k := range ownKeys {
		if k == key {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// parseNumber parses a finite number no larger than KEDA can carry.
func parseNumber(key, v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f > adapter.MaxValue {
		return 0, status.Errorf(codes.InvalidArgument, "trigger metadata %q: %q is not a finite number", key, v)
	}
	return f, nil
}

// Options configure a Server. The zero value is usable.
type Options struct {
	// Now decides freshness; nil means time.Now.
	Now func() time.Time
	// Log receives the server's logs; nil means slog.Default().
	Log *slog.Logger
	// Registerer gets foresight_keda_requests_total and
	// foresight_keda_streams; nil registers nothing.
	Registerer prometheus.Registerer
	// StreamInterval is how often StreamIsActive repeats an unchanged
	// result; 0 means DefaultStreamInterval. A change is sent within a
	// second regardless.
	StreamInterval time.Duration
}

// Server implements KEDA's ExternalScaler service on the forecaster's latest
// snapshot. Create it with NewServer and run it with Serve, or register it on
// a grpc.Server of your own with pb.RegisterExternalScalerServer.
type Server struct {
	// Unimplemented: StreamMetricSpec. A trigger's target never changes
	// while its metadata stays the same, and KEDA falls back to
	// GetMetricSpec silently when the method is Unimplemented.
	pb.UnimplementedExternalScalerServer

	reader     snapshot.Reader
	now        func() time.Time
	log        *slog.Logger
	interval   time.Duration
	checkEvery time.Duration

	requests *prometheus.CounterVec
	streams  prometheus.Gauge

	// stopping is closed when Serve shuts down, to end open streams:
	// GracefulStop waits for every RPC, and a stream only ends when told.
	stopping chan struct{}
	stopOnce sync.Once
	served   atomic.Bool
}

var _ pb.ExternalScalerServer = (*Server)(nil)

// NewServer returns a server that reads reader on every request.
func NewServer(reader snapshot.Reader, opts Options) (*Server, error) {
	if reader == nil {
		return nil, errors.New("KEDA external scaler: snapshot reader is nil")
	}
	s := &Server{
		reader:   reader,
		now:      opts.Now,
		log:      opts.Log,
		interval: opts.StreamInterval,
		stopping: make(chan struct{}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "foresight_keda_requests_total",
			Help: "KEDA external scaler calls by method and gRPC status code (streams are counted when they end; code Unavailable means no fresh prediction was served).",
		}, []string{"method", "code"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "foresight_keda_streams",
			Help: "Open StreamIsActive streams (one per external-push trigger KEDA runs).",
		}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	switch {
	case s.interval == 0:
		s.interval = DefaultStreamInterval
	case s.interval < MinStreamInterval:
		return nil, fmt.Errorf("KEDA external scaler: stream interval %v is below the minimum %v", s.interval, MinStreamInterval)
	}
	s.checkEvery = min(streamCheckEvery, s.interval)
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{s.requests, s.streams} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("KEDA external scaler: registering metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Serve serves the ExternalScaler and the standard gRPC health service
// (grpc.health.v1.Health) on lis until ctx is cancelled, then stops
// gracefully: health turns NOT_SERVING, open streams end cleanly, and after
// a bounded wait the remaining connections are closed. creds nil serves
// plaintext (for a service mesh that provides mTLS); see TLSCredentials.
// Serve closes lis and may be called once. It returns nil after a shutdown
// through ctx and an error when serving fails.
func (s *Server) Serve(ctx context.Context, lis net.Listener, creds credentials.TransportCredentials) error {
	if !s.served.CompareAndSwap(false, true) {
		return errors.New("KEDA external scaler: Serve called twice")
	}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.countUnary),
		grpc.ChainStreamInterceptor(s.countStream),
		// Streams live for hours through load balancers and meshes: ping an
		// idle connection so a vanished KEDA is noticed and its streams end.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	gs := grpc.NewServer(opts...)
	pb.RegisterExternalScalerServer(gs, s)
	hs := health.NewServer()
	hs.SetServingStatus(serviceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)

	s.log.Info("serving the KEDA external scaler", "address", lis.Addr().String(), "tls", creds != nil)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case err := <-errc:
		gs.Stop()
		s.stop()
		return fmt.Errorf("serving the KEDA external scaler on %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}

	hs.Shutdown()
	s.stop()
	done := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(done)
	}()
	timer := time.NewTimer(shutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.log.Warn("KEDA external scaler: graceful stop timed out, closing connections", "timeout", shutdownTimeout)
		gs.Stop()
		<-done
	}
	// ErrServerStopped: ctx was cancelled before gs.Serve got going.
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serving the KEDA external scaler on %s: %w", lis.Addr(), err)
	}
	s.log.Info("stopped the KEDA external scaler")
	return nil
}

func (s *Server) stop() { s.stopOnce.Do(func() { close(s.stopping) }) }

func (s *Server) countUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	s.count(info.FullMethod, err)
	return resp, err
}

func (s *Server) countStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	s.count(info.FullMethod, err)
	return err
}

// count records ExternalScaler calls only: health probes would drown them.
func (s *Server) count(fullMethod string, err error) {
	if !strings.HasPrefix(fullMethod, "/"+serviceName+"/") {
		return
	}
	s.requests.WithLabelValues(path.Base(fullMethod), status.Code(err).String()).Inc()
}

// GetMetricSpec returns the trigger's metric name and per-replica target.
// It needs no prediction, so KEDA can create the HPA before the first cycle.
func (s *Server) GetMetricSpec(_ context.Context, ref *pb.ScaledObjectRef) (*pb.GetMetricSpecResponse, error) {
	t, err := s.parse("GetMetricSpec", ref)
	if err != nil {
		return nil, err
	}
	return &pb.GetMetricSpecResponse{MetricSpecs: []*pb.MetricSpec{{
		MetricName:      t.metricName(),
		TargetSizeFloat: t.target,
		// Deprecated field, for a KEDA that does not read targetSizeFloat;
		// at least 1 because 0 is no target at all.
		TargetSize: max(1, int64(math.Round(t.target))),
	}}}, nil
}

// GetMetrics returns the trigger's current forecast value, or Unavailable
// when there is no fresh, valid prediction: never a made-up 0. KEDA then
// reports the error to the HPA, which keeps the current replica count, or,
// with `fallback` on the ScaledObject, serves the fallback replica count
// after fallback.failureThreshold consecutive failures.
func (s *Server) GetMetrics(_ context.Context, req *pb.GetMetricsRequest) (*pb.GetMetricsResponse, error) {
	t, err := s.parse("GetMetrics", req.GetScaledObjectRef())
	if err != nil {
		return nil, err
	}
	if want := t.metricName(); req.GetMetricName() != want {
		return nil, status.Errorf(codes.NotFound, "metric %q is not served for this trigger (its metadata gives %q)", req.GetMetricName(), want)
	}
	v, err := s.value("GetMetrics", req.GetScaledObjectRef(), t)
	if err != nil {
		return nil, err
	}
	return &pb.GetMetricsResponse{MetricValues: []*pb.MetricValue{{
		MetricName:       req.GetMetricName(),
		MetricValueFloat: v,
		// Deprecated field; KEDA reads it only when metricValueFloat is 0.
		MetricValue: int64(math.Round(v)),
	}}}, nil
}

// IsActive reports whether the forecast value is above activationValue.
//
// Without a fresh, valid prediction it returns Unavailable rather than
// false. In KEDA v2.21 (pkg/scaling/scale_handler.go getScalerState and
// executor/scale_scaledobjects.go RequestScale) an error marks the
// ScaledObject as erroring, and an erroring ScaledObject is never scaled to
// zero or idle: without `fallback` it only turns Ready=False, with
// `fallback.replicas` it waits for the HPA's fallback. A plain false would
// instead let KEDA scale a minReplicaCount: 0 workload to zero after the
// cooldown, just because Foresight had nothing to say.
func (s *Server) IsActive(_ context.Context, ref *pb.ScaledObjectRef) (*pb.IsActiveResponse, error) {
	t, err := s.parse("IsActive", ref)
	if err != nil {
		return nil, err
	}
	v, err := s.value("IsActive", ref, t)
	if err != nil {
		return nil, err
	}
	return &pb.IsActiveResponse{Result: v > t.activation}, nil
}

// StreamIsActive sends the IsActive result when the stream opens, when it
// changes (checked every second) and every StreamInterval otherwise, until
// KEDA cancels the stream or the server stops. KEDA (`external-push`
// triggers) acts on `true` at once, which lets a forecast scale a workload
// from zero before its traffic arrives; `false` it leaves to its polling.
//
// While there is no fresh prediction nothing is sent and the stream stays
// open: KEDA keeps its state, its polling IsActive reports the error, and
// the first fresh prediction is sent as soon as it appears. Ending the
// stream with an error instead would only add KEDA's reconnect backoff (up
// to a minute) to the recovery.
func (s *Server) StreamIsActive(ref *pb.ScaledObjectRef, stream grpc.ServerStreamingServer[pb.IsActiveResponse]) error {
	t, err := s.parse("StreamIsActive", ref)
	if err != nil {
		return err
	}
	s.streams.Inc()
	defer s.streams.Dec()
	log := s.log.With("scaledObject", ref.GetNamespace()+"/"+ref.GetName(), "namespace", t.namespace, "service", t.service, "metric", t.metric.name)

	check := time.NewTicker(s.checkEvery)
	defer check.Stop()
	repeat := time.NewTicker(s.interval)
	defer repeat.Stop()
	var (
		sent, last bool // whether a result was sent since the last outage, and which
		due        bool // StreamInterval has passed since the last send
		wasDown    bool
	)
	for {
		v, err := s.current(t)
		switch {
		case err != nil:
			if !wasDown {
				log.Warn("KEDA stream: no fresh prediction, sending nothing until there is one", "err", status.Convert(err).Message())
			}
			wasDown, sent = true, false
		default:
			if wasDown {
				log.Info("KEDA stream: fresh prediction again")
				wasDown = false
			}
			active := v > t.activation
			if !sent || active != last || due {
				if err := stream.Send(&pb.IsActiveResponse{Result: active}); err != nil {
					return err
				}
				sent, last, due = true, active, false
			}
		}
		select {
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		case <-s.stopping:
			// A clean end (io.EOF at KEDA) makes it reconnect after 2 s,
			// through the Service, to a replica that is still running.
			return nil
		case <-repeat.C:
			due = true
		case <-check.C:
		}
	}
}

// parse validates the trigger and logs what KEDA got wrong.
func (s *Server) parse(method string, ref *pb.ScaledObjectRef) (trigger, error) {
	t, err := parseTrigger(ref)
	if err != nil {
		s.log.Warn("KEDA external scaler: invalid trigger", "method", method,
			"scaledObject", ref.GetNamespace()+"/"+ref.GetName(), "err", status.Convert(err).Message())
	}
	return t, err
}

// value is current with the failure logged: every failure means KEDA gets
// no number for this trigger, which operators need to see.
func (s *Server) value(method string, ref *pb.ScaledObjectRef, t trigger) (float64, error) {
	v, err := s.current(t)
	if err != nil {
		s.log.Warn("KEDA external scaler: not serving a value", "method", method,
			"scaledObject", ref.GetNamespace()+"/"+ref.GetName(), "namespace", t.namespace, "service", t.service,
			"metric", t.metric.name, "err", status.Convert(err).Message())
	}
	return v, err
}

// current reads the latest snapshot and returns the trigger's value, or an
// Unavailable error saying why there is none.
func (s *Server) current(t trigger) (float64, error) {
	snap := s.reader.Latest()
	if snap == nil {
		return 0, status.Error(codes.Unavailable, "no forecast yet: Foresight has not completed its first cycle")
	}
	now := s.now()
	var fresh, expired *snapshot.Prediction
	duplicates := false
	for i := range snap.Predictions {
		p := &snap.Predictions[i]
		if p.Namespace != t.namespace || p.Service != t.service {
			continue
		}
		if !now.Before(p.ExpiresAt) {
			if expired == nil || p.ExpiresAt.After(expired.ExpiresAt) {
				expired = p
			}
			continue
		}
		// The forecaster never publishes two predictions for a service;
		// if it did, serve the newest, as the other publishers do.
		if fresh != nil {
			duplicates = true
			if !p.ComputedAt.After(fresh.ComputedAt) {
				continue
			}
		}
		fresh = p
	}
	if duplicates {
		s.log.Warn("snapshot holds more than one prediction for a service; serving the newest", "namespace", t.namespace, "service", t.service)
	}
	switch {
	case fresh == nil && expired != nil:
		reason := ""
		if expired.HeldReason != "" {
			reason = " (held: " + expired.HeldReason + ")"
		}
		return 0, status.Errorf(codes.Unavailable, "the prediction for %s/%s expired at %s%s",
			t.namespace, t.service, expired.ExpiresAt.UTC().Format(time.RFC3339), reason)
	case fresh == nil:
		return 0, status.Errorf(codes.Unavailable,
			"no prediction for %s/%s in the latest forecast: check the service and namespace against Foresight's configuration",
			t.namespace, t.service)
	}
	v, err := adapter.PublishableValue(t.metric.name, *fresh)
	if err != nil {
		return 0, status.Errorf(codes.Unavailable, "not serving an invalid prediction for %s/%s: %v", t.namespace, t.service, err)
	}
	return v, nil
}

// TLSCredentials serves TLS with the key pair in certFile and keyFile. With
// clientCAFile set, clients must present a certificate signed by one of its
// CAs (KEDA sends the tlsClientCert/tlsClientKey of the trigger's
// TriggerAuthentication). All three files are re-read on each new
// connection and replaced when their contents change, so a certificate
// renewed in a mounted Secret takes effect without a restart; a renewal
// that fails to load is logged (to slog.Default) and the previous one is
// kept. KEDA keeps its
// connection open, so this costs a few small reads per connection.
func TLSCredentials(certFile, keyFile, clientCAFile string) (credentials.TransportCredentials, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("KEDA external scaler TLS: both a certificate and a key file are required")
	}
	files := &tlsFiles{certFile: certFile, keyFile: keyFile, clientCAFile: clientCAFile, log: slog.Default()}
	if _, err := files.load(); err != nil {
		return nil, err
	}
	return credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return files.config()
		},
	}), nil
}

// tlsFiles holds the last good server TLS configuration built from files.
type tlsFiles struct {
	certFile, keyFile, clientCAFile string
	log                             *slog.Logger

	mu                     sync.Mutex
	certPEM, keyPEM, caPEM []byte
	current                *tls.Config
}

// config returns the configuration of the current files, or the last good
// one when they do not load (e.g. a renewal half written by hand).
func (f *tlsFiles) config() (*tls.Config, error) {
	cfg, err := f.load()
	if err == nil {
		return cfg, nil
	}
	f.mu.Lock()
	last := f.current
	f.mu.Unlock()
	if last == nil {
		return nil, err
	}
	f.log.Warn("KEDA external scaler: keeping the previous TLS certificate", "err", err)
	return last, nil
}

func (f *tlsFiles) load() (*tls.Config, error) {
	certPEM, err := os.ReadFile(f.certFile)
	if err != nil {
		return nil, fmt.Errorf("KEDA external scaler TLS: reading certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(f.keyFile)
	if err != nil {
		return nil, fmt.Errorf("KEDA external scaler TLS: reading key: %w", err)
	}
	var caPEM []byte
	if f.clientCAFile != "" {
		if caPEM, err = os.ReadFile(f.clientCAFile); err != nil {
			return nil, fmt.Errorf("KEDA external scaler TLS: reading client CA: %w", err)
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current != nil && bytes.Equal(certPEM, f.certPEM) && bytes.Equal(keyPEM, f.keyPEM) && bytes.Equal(caPEM, f.caPEM) {
		return f.current, nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("KEDA external scaler TLS: loading key pair %s, %s: %w", f.certFile, f.keyFile, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if f.clientCAFile != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("KEDA external scaler TLS: no PEM certificate in client CA file %s", f.clientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if f.current != nil {
		f.log.Info("KEDA external scaler: loaded renewed TLS files", "cert", f.certFile, "clientCA", f.clientCAFile)
	}
	f.certPEM, f.keyPEM, f.caPEM, f.current = certPEM, keyPEM, caPEM, cfg
	return cfg, nil
}
