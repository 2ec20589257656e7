package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/authorization/path"
	"k8s.io/apiserver/pkg/authorization/union"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/client-go/kubernetes"
	"k8s.io/component-base/metrics/legacyregistry"
	apiservermetrics "sigs.k8s.io/custom-metrics-apiserver/pkg/apiserver/metrics"
	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/cmd/options"

	"github.com/foresightscale/foresight/adapter/respcache"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/internal/textlimit"
)

// Defaults of the serving flags.
const (
	DefaultSecurePort         = 6443
	DefaultMetricsBindAddress = "127.0.0.1:8080"
)

// MaxRequestURIBytes bounds the request target (path and query, as sent) of
// every request to the metrics APIs. The library parses labelSelector and
// metricLabelSelector before authentication (the request-info filter decodes
// list options) and again in the provider, and a 400 KB selector × 100
// concurrent requests took the process to 1.3 GB; the API server's own limit
// is its 1 MiB MaxHeaderBytes. 8 KiB is far beyond any real caller: an HPA or
// KEDA selector is a handful of `key=value` or `key in (...)` requirements
// (label keys are at most 317 bytes, values 63), Knative's is one
// requirement, the longest path (custom metrics of a named Deployment) is
// under 500 bytes, and many proxies in front of API servers (nginx, Apache)
// already refuse request lines over 8 KiB.
const MaxRequestURIBytes = 8 << 10

// logPrefixBytes bounds how much of a refused request target the log quotes.
const logPrefixBytes = 200

// RejectReasonURITooLong is the reason label of a request refused for its
// URI length.
const RejectReasonURITooLong = "uri_too_long"

// httpShutdownTimeout bounds how long the /metrics server waits for in-flight
// scrapes when stopping.
const httpShutdownTimeout = 5 * time.Second

// Adapter serves the external and custom metrics APIs over HTTPS (through the
// custom-metrics-apiserver library, whose flags it exposes) and /metrics,
// /healthz and /readyz over HTTP. Create it with New, add Flags() to the
// command line, then call Run once.
type Adapter struct {
	basecmd.AdapterBase

	// MetricsBindAddress is where /metrics, /healthz and /readyz listen.
	MetricsBindAddress string

	// Demo runs without a cluster: the adapter generates its own CA, serving
	// and client certificates and a kubeconfig, authenticates clients by
	// certificate only and allows only the demo client (group system:masters).
	Demo bool
	// DemoDir is where demo mode writes those files; empty means a per-user
	// cache directory.
	DemoDir string

	// PodMetrics serves Pods metrics in the custom metrics API (for
	// Knative's HPA class); it lists pods through the lister kubeconfig.
	PodMetrics bool
	// PodServiceLabels name a pod's service, first match wins.
	PodServiceLabels []string

	// Log receives the adapter's own logs; nil means slog.Default().
	Log *slog.Logger
	// StatusPage, when set, is served on the metrics port for every path
	// but /metrics, /healthz and /readyz (the status page at "/").
	StatusPage http.Handler
	// ResponseCache answers repeated external-metric GETs from answers
	// encoded once per snapshot, after authenticating and authorising each
	// request (package respcache). On by default.
	ResponseCache bool

	flagsOnce sync.Once
	demo      *DemoCredentials
	ran       atomic.Bool
}

// New returns an adapter with Foresight's defaults: API server name
// "foresight", secure port 6443, and a self-signed serving certificate kept in
// memory (not written to the working directory) unless --tls-cert-file or
// --cert-dir is given.
func New() *Adapter {
	a := &Adapter{MetricsBindAddress: DefaultMetricsBindAddress, PodServiceLabels: slices.Clone(DefaultPodServiceLabels), ResponseCache: true}
	a.Name = "foresight"
	// Our own flag set, so that merely building an Adapter (in tests, twice)
	// never touches pflag.CommandLine.
	a.FlagSet = pflag.NewFlagSet("adapter", pflag.ContinueOnError)
	a.CustomMetricsAdapterServerOptions = options.NewCustomMetricsAdapterServerOptions()
	a.SecureServing.BindPort = DefaultSecurePort
	a.SecureServing.ServerCert.CertDirectory = ""
	return a
}

// Flags returns the library's flags (--secure-port, --bind-address,
// --tls-cert-file, --cert-dir, --client-ca-file, --lister-kubeconfig,
// --authentication-kubeconfig, --authorization-kubeconfig, ...) plus
// --metrics-bind-address and --demo-dir.
func (a *Adapter) Flags() *pflag.FlagSet {
	fs := a.AdapterBase.Flags()
	a.flagsOnce.Do(func() {
		fs.StringVar(&a.MetricsBindAddress, "metrics-bind-address", a.MetricsBindAddress,
			"Address (host:port) of the plain-HTTP listener for /metrics, /healthz and /readyz.")
		fs.StringVar(&a.DemoDir, "demo-dir", a.DemoDir,
			"Directory where demo mode writes its CA, certificates and kubeconfig (default: a per-user cache directory).")
		fs.BoolVar(&a.PodMetrics, "pod-metrics", a.PodMetrics,
			"Serve Pods metrics in custom.metrics.k8s.io (each running pod reports its share of its service's prediction), for HPAs of type Pods such as Knative's HPA class. Needs list access to pods.")
		fs.StringSliceVar(&a.PodServiceLabels, "pod-service-labels", a.PodServiceLabels,
			"Pod labels naming a pod's service for --pod-metrics, first match wins.")
		fs.BoolVar(&a.ResponseCache, "response-cache", a.ResponseCache,
			"Answer repeated external-metric GETs from answers encoded once per forecast, after authenticating and authorising each request as the API server does; false sends every request through the API server's whole handler chain.")
	})
	return fs
}

func (a *Adapter) log() *slog.Logger {
	if a.Log == nil {
		return slog.Default()
	}
	return a.Log
}

// SetupDemo writes the demo credentials and configures the API server to use
// them: its own serving certificate, client certificates checked against the
// demo CA, no lookup of the cluster's authentication config map, and the
// library's kubeconfigs pointed at an unreachable server (it only parses them
// at start-up). Unless the flags say otherwise it binds 127.0.0.1.
//
// Run calls it when Demo is set; call it first (after parsing flags) to print
// DemoCredentials.KubectlCommand before serving. Later calls return the same
// credentials.
func (a *Adapter) SetupDemo() (*DemoCredentials, error) {
	if a.demo != nil {
		return a.demo, nil
	}
	fs := a.Flags()
	if !fs.Changed("bind-address") {
		a.SecureServing.BindAddress = net.IPv4(127, 0, 0, 1)
	}
	host := a.SecureServing.BindAddress
	if host == nil || host.IsUnspecified() {
		host = net.IPv4(127, 0, 0, 1)
	}
	port := a.SecureServing.BindPort
	if l := a.SecureServing.Listener; l != nil {
		tcp, ok := l.Addr().(*net.TCPAddr)
		if !ok {
			return nil, fmt.Errorf("secure listener address %v is not TCP", l.Addr())
		}
		port = tcp.Port
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("demo mode needs a secure port between 1 and 65535, got %d", port)
	}

	dir := a.DemoDir
	if dir == "" {
		var err error
		if dir, err = defaultDemoDir(); err != nil {
			return nil, fmt.Errorf("choosing the demo directory: %w", err)
		}
	}
	creds, err := writeDemoCredentials(dir, host, port, time.Now())
	if err != nil {
		return nil, fmt.Errorf("writing demo credentials to %s: %w", dir, err)
	}

	a.SecureServing.ServerCert.CertKey.CertFile = creds.ServingCertFile
	a.SecureServing.ServerCert.CertKey.KeyFile = creds.ServingKeyFile
	a.Authentication.SkipInClusterLookup = true
	a.Authentication.ClientCert.ClientCA = creds.CAFile
	a.Authentication.RemoteKubeConfigFile = creds.UnreachableKubeconfig
	a.Authorization.RemoteKubeConfigFile = creds.UnreachableKubeconfig
	a.RemoteKubeConfigFile = creds.UnreachableKubeconfig

	a.log().Warn("DEMO MODE: delegated authentication and authorization are OFF. "+
		"Only clients presenting the generated demo client certificate (group system:masters) are served; "+
		"no Kubernetes API server is consulted. Do not expose this port.",
		"server", creds.ServerURL, "dir", creds.Dir, "kubeconfig", creds.Kubeconfig)
	a.demo = creds
	return creds, nil
}

// demoAuthorizer allows the always-allowed groups (system:masters: the demo
// client) and paths (/healthz, /readyz, /livez) and denies everything else
// without asking anyone. The delegated authorizer the library builds would
// send a SubjectAccessReview to the unreachable server and answer every other
// client 500 (measured); 403 is the honest answer.
func demoAuthorizer(groups, paths []string) (authorizer.Authorizer, error) {
	byPath, err := path.NewAuthorizer(paths)
	if err != nil {
		return nil, fmt.Errorf("always-allowed paths %v: %w", paths, err)
	}
	return union.New(
		union.NamedAuthorizer{AuthorizerName: "foresight-demo/always-allow-groups", Authorizer: authorizerfactory.NewPrivilegedGroups(groups...)},
		union.NamedAuthorizer{AuthorizerName: "foresight-demo/always-allow-paths", Authorizer: byPath},
	)
}

// registerLibraryMetrics adds the library's metric_freshness_seconds to the
// API server's own /metrics (on the secure port); that registry is global.
var registerLibraryMetrics = sync.OnceValue(func() error {
	return apiservermetrics.RegisterMetrics(legacyregistry.Register)
})

// Run serves until ctx is cancelled or a server fails, then stops both and
// returns once their ports are free. reader supplies the predictions (read on
// every request; an external-metric answer is kept only while reader's
// snapshot is the same, see package respcache), registry is served as
// /metrics, and /readyz answers 200 only while ready returns nil (a nil
// ready means always ready).
// Run may be called once per Adapter.
func (a *Adapter) Run(ctx context.Context, reader snapshot.Reader, registry *prometheus.Registry, ready func() error) error {
	if reader == nil {
		return errors.New("adapter needs a snapshot reader")
	}
	if registry == nil {
		return errors.New("adapter needs a Prometheus registry to serve as /metrics")
	}
	// The library caches its server and closes its listener on shutdown.
	if a.ran.Swap(true) {
		return errors.New("an Adapter runs once; create a new one with New")
	}
	a.Flags() // creates the library's options if the caller never asked for flags
	if a.SecureServing.BindPort == 0 && a.SecureServing.Listener == nil {
		return errors.New("--secure-port 0 would turn the external metrics API off; choose a port")
	}
	if a.Demo {
		if _, err := a.SetupDemo(); err != nil {
			return fmt.Errorf("setting up demo mode: %w", err)
		}
	}
	if err := registerLibraryMetrics(); err != nil {
		a.log().Warn("could not register the metrics library's own metrics", "err", err)
	}
	a.WithExternalMetrics(NewExternalMetricsProvider(reader, time.Now, a.log()))
	// Both APIs are always served; which one the cluster uses is decided by
	// the APIService objects installed (see manifests/components/custom-metrics).
	custom := NewCustomMetricsProvider(reader, time.Now, a.log())
	if a.PodMetrics {
		list, err := a.podLister()
		if err != nil {
			return err
		}
		custom.WithPods(list, a.PodServiceLabels)
	}
	a.WithCustomMetrics(custom)

	rejected, err := registerCounterVec(registry, newRejectedRequestsCounter())
	if err != nil {
		return err
	}
	cacheRequests, err := registerCounterVec(registry, newResponseCacheCounter())
	if err != nil {
		return err
	}
	metricsListener, err := net.Listen("tcp", a.MetricsBindAddress)
	if err != nil {
		return fmt.Errorf("listening for /metrics on %s: %w", a.MetricsBindAddress, err)
	}
	apiServer, err := a.buildAPIServer(rejected, cacheRequests, reader)
	if err != nil {
		metricsListener.Close()
		// Building binds the secure port; release it so a retry can bind again.
		if l := a.SecureServing.Listener; l != nil {
			l.Close()
		}
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 2)
	go func() {
		done <- serveHTTP(ctx, &http.Server{
			Handler:           healthAndMetricsHandler(registry, ready, a.StatusPage),
			ReadHeaderTimeout: 10 * time.Second,
		}, metricsListener)
	}()
	go func() {
		if err := apiServer.PrepareRun().RunWithContext(ctx); err != nil {
			done <- fmt.Errorf("external metrics API server: %w", err)
			return
		}
		done <- nil
	}()
	a.log().Info("serving", "external_metrics_api", fmt.Sprintf("https://%s", a.SecureServing.Listener.Addr()),
		"metrics", fmt.Sprintf("http://%s/metrics", metricsListener.Addr()))

	first := <-done
	cancel() // one stopped: stop the other
	second := <-done
	return errors.Join(first, second)
}

// podLister lists pods with the lister kubeconfig (in-cluster by default).
// One List per HPA sync keeps no pod cache in memory; the selector is the
// HPA's own, so the answer is small.
func (a *Adapter) podLister() (PodLister, error) {
	if a.Demo {
		return nil, errors.New("--pod-metrics needs a cluster to list pods; it cannot run in demo mode")
	}
	cfg, err := a.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--pod-metrics: Kubernetes client configuration: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("--pod-metrics: Kubernetes client: %w", err)
	}
	return func(ctx context.Context, namespace string, selector labels.Selector) ([]corev1.Pod, error) {
		list, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
		if err != nil {
			return nil, err
		}
		return list.Items, nil
	}, nil
}

// buildAPIServer is AdapterBase.Server with the demo authorizer swapped in,
// the response cache in front of the library's handler chain, and
// oversized requests refused in front of both.
func (a *Adapter) buildAPIServer(rejected, cacheRequests *prometheus.CounterVec, reader snapshot.Reader) (*genericapiserver.GenericAPIServer, error) {
	cfg, err := a.Config()
	if err != nil {
		return nil, fmt.Errorf("configuring the external metrics API server: %w", err)
	}
	chain := cfg.GenericConfig.BuildHandlerChainFunc
	if chain == nil {
		chain = genericapiserver.DefaultBuildHandlerChain
	}
	cfg.GenericConfig.BuildHandlerChainFunc = func(apiHandler http.Handler, c *genericapiserver.Config) http.Handler {
		// Outermost: the chain's request-info filter already parses the
		// selectors, before authentication.
		handler := chain(apiHandler, c)
		if a.ResponseCache {
			handler = respcache.New(handler, responseCacheConfig(c, reader, cacheRequests, a.log()))
		}
		return limitRequestURI(handler, MaxRequestURIBytes, rejected, a.log())
	}
	if a.Demo {
		authz, err := demoAuthorizer(a.Authorization.AlwaysAllowGroups, a.Authorization.AlwaysAllowPaths)
		if err != nil {
			return nil, fmt.Errorf("building the demo authorizer: %w", err)
		}
		cfg.GenericConfig.Authorization.Authorizer = authz
	}
	server, err := a.Server()
	if err != nil {
		return nil, fmt.Errorf("building the external metrics API server: %w", err)
	}
	return server.GenericAPIServer, nil
}

// healthAndMetricsHandler serves /metrics from registry, /healthz (the
// process is up), /readyz (ready() is nil) and everything else from status
// (nil: 404).
func healthAndMetricsHandler(registry *prometheus.Registry, ready func() error, status http.Handler) http.Handler {
	mux := http.NewServeMux()
	if status != nil {
		mux.Handle("/", status)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ready != nil {
			if err := ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "not ready: %v\n", err)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// serveHTTP serves on ln until ctx is cancelled, then shuts down gracefully
// within httpShutdownTimeout and closes the listener.
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving /metrics on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
		<-served
		return fmt.Errorf("stopping /metrics on %s: %w", ln.Addr(), err)
	}
	<-served // http.ErrServerClosed
	return nil
}

// newRejectedRequestsCounter returns foresight_api_requests_rejected_total,
// the requests the metrics APIs refused before handling them, by reason.
// Run registers it on the registry it serves as /metrics.
func newRejectedRequestsCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "foresight_api_requests_rejected_total",
		Help: "Requests to the external and custom metrics APIs refused before any parsing, by reason (uri_too_long: request target over the bound).",
	}, []string{"reason"})
	// Present at 0 from the start, so rate() and alerts see the series.
	c.WithLabelValues(RejectReasonURITooLong)
	return c
}

// registerCounterVec registers c on registry, reusing one already there (a
// registry shared by two adapters in one process).
func registerCounterVec(registry *prometheus.Registry, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	err := registry.Register(c)
	if err == nil {
		return c, nil
	}
	var dup prometheus.AlreadyRegisteredError
	if errors.As(err, &dup) {
		if existing, ok := dup.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	return nil, fmt.Errorf("registering a counter on /metrics: %w", err)
}

// limitRequestURI answers 414 with a short Status, before next parses
// anything, to a request whose target (path and query as sent) is longer
// than maxBytes, counting it in rejected (may be nil) and logging only a
// prefix of it and its length.
func limitRequestURI(next http.Handler, maxBytes int, rejected *prometheus.CounterVec, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uri := r.RequestURI
		if uri == "" { // a request built in-process rather than read off the wire
			uri = r.URL.RequestURI()
		}
		if len(uri) <= maxBytes {
			next.ServeHTTP(w, r)
			return
		}
		if rejected != nil {
			rejected.WithLabelValues(RejectReasonURITooLong).Inc()
		}
		log.Warn("refusing a request whose URI is too long (label selector?)",
			"uri_prefix", truncate(uri, logPrefixBytes), "uri_bytes", len(uri), "max_bytes", maxBytes, "remote", r.RemoteAddr)
		writeStatus(w, http.StatusRequestURITooLong, "RequestURITooLong", fmt.Sprintf(
			"request URI is %d bytes, over Foresight's limit of %d: shorten the label selector (an HPA selects a service with matchLabels {service: <name>})",
			len(uri), maxBytes))
	})
}

// writeStatus answers with a Kubernetes Status object, the error body
// clients of an aggregated API expect.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, message string) {
	status := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: message, Reason: reason, Code: int32(code),
	}
	body, err := json.Marshal(status)
	if err != nil { // cannot happen with these fields; still answer the code
		body = []byte(`{"kind":"Status","apiVersion":"v1","status":"Failure"}`)
	}
	w.Header().Set("Content-Type", runtime.ContentTypeJSON)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n')) // a write error means the client hung up
}

// quotePrefix quotes at most n bytes of s and says how long s was when it
// had to cut: what errors show of an input that may be megabytes long.
func quotePrefix(s string, n int) string { return textlimit.Quote(s, n) }

// truncate returns a prefix of at most n bytes of s, never cut inside a rune
// and made valid UTF-8, for logs that must not echo a whole hostile input.
func truncate(s string, n int) string {
	return strings.ToValidUTF8(textlimit.Prefix(s, n), "\uFFFD")
}
