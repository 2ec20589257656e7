package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/foresightscale/foresight/adapter/status"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/credentials"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	vpaclientset "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/foresightscale/foresight/adapter"
	"github.com/foresightscale/foresight/adapter/keda"
	"github.com/foresightscale/foresight/adapter/vpa"
	"github.com/foresightscale/foresight/forecaster"
	"github.com/foresightscale/foresight/forecaster/budget"
	"github.com/foresightscale/foresight/forecaster/config"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/models"
)

type serveOptions struct {
	configFile    string
	prometheusURL string
	csvPath       string
	modelDir      string
	modelStore    string
	namespace     string
	demo          bool
	adapter       *adapter.Adapter
	// events records model reloads on the pod (nil: no cluster, the demo).
	events forecaster.EventRecorder
	// retrainTurn lets one application's training run at a time.
	retrainTurn chan struct{}

	vpaRecommender string
	vpaInterval    time.Duration
	vpaLeaderElect bool

	kedaAddress, kedaTLSCert, kedaTLSKey, kedaClientCA string

	reclaimMemory bool
}

func newServeCommand() *cobra.Command {
	o := &serveOptions{adapter: adapter.New()}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Forecast continuously and serve the predictions (external metrics API and /metrics)",
		Long: `Runs the forecast loop and serves its predictions through the Kubernetes
external metrics API (HTTPS) and Prometheus /metrics.

With --prometheus-url (or a source in --config) it is the production sidecar.
With no source at all it runs the embedded demo: a synthetic Online Boutique
workload, the shipped model, and an API server with self-signed certificates and
delegated authentication switched off, for trying Foresight without a cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("demo") {
				o.demo = o.prometheusURL == "" && o.csvPath == ""
			}
			return o.run(cmd.Context(), cmd.Flags().Changed("demo"))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.configFile, "config", "", "YAML configuration file (sources, PromQL templates, policy); see docs/configuration.md.")
	f.StringVar(&o.prometheusURL, "prometheus-url", "", "Base URL of a Prometheus-API server (Prometheus, Thanos, Mimir, VictoriaMetrics) to read metrics from.")
	f.StringVar(&o.csvPath, "csv", "", "Replay a recorded wide-format CSV file (cyclically, on the wall clock) instead of querying Prometheus.")
	f.StringVar(&o.modelDir, "model", "", "Model directory holding model.onnx and manifest.json, a model store (a directory `foresight train --promote` writes, or configmap:NAMESPACE/NAME), or \"auto\": the fallback until a model is promoted into --model-store (default: the model built into the binary).")
	f.StringVar(&o.modelStore, "model-store", "", "With --model=auto: the model store (a directory, or configmap:NAMESPACE/NAME) promoted models are read from.")
	f.StringVar(&o.namespace, "namespace", "", "Namespace of the model's services (default from --config, else \"default\").")
	f.BoolVar(&o.demo, "demo", false, "Serve without a cluster: self-signed certificates, client-certificate authentication only. Default: on when no source is configured.")
	f.StringVar(&o.vpaRecommender, "vpa-recommender", "", "Act as the VerticalPodAutoscaler recommender of this name (VPAs opt in with spec.recommenders); empty: off. See docs/vpa.md.")
	f.DurationVar(&o.vpaInterval, "vpa-interval", vpa.DefaultInterval, "Time between passes of the VPA recommender.")
	f.BoolVar(&o.vpaLeaderElect, "vpa-leader-elect", true, "Write VPA status only from the replica holding the Lease "+vpa.DefaultLeaseName+" (in the pod's namespace).")
	f.StringVar(&o.kedaAddress, "keda-scaler-address", "", "host:port of the KEDA external scaler (gRPC), e.g. :9443; empty disables it. See docs/keda.md.")
	f.StringVar(&o.kedaTLSCert, "keda-tls-cert-file", "", "PEM certificate for the KEDA external scaler; empty serves plaintext.")
	f.StringVar(&o.kedaTLSKey, "keda-tls-key-file", "", "PEM key of --keda-tls-cert-file.")
	f.StringVar(&o.kedaClientCA, "keda-client-ca-file", "", "PEM CA bundle; when set, KEDA must present a client certificate signed by it.")
	f.BoolVar(&o.reclaimMemory, "reclaim-memory", true, "Once serving, give back the executable's pages only start-up used (Linux MADV_PAGEOUT), and after each burst of forecasting the heap it freed. See docs/benchmarks.md#footprint-against-prometheus-adapter.")
	f.AddFlagSet(o.adapter.Flags())
	return cmd
}

func (o *serveOptions) run(ctx context.Context, demoExplicit bool) error {
	cfg, err := o.config()
	if err != nil {
		return err
	}
	if !demoExplicit && (cfg.Source.Prometheus != nil || cfg.Source.CSV != nil) {
		o.demo = false
	}
	if !o.demo && cfg.Source.Prometheus == nil && cfg.Source.CSV == nil && cfg.Source.Synthetic == nil {
		// Serving the made-up demo workload to a real HPA would scale real
		// Deployments on fiction: refuse rather than guess.
		return errors.New("no metrics source: set source.prometheus.url in --config or pass --prometheus-url " +
			"(the synthetic workload runs only with --demo or an explicit source.synthetic)")
	}
	log := slog.Default()
	// Caught from the start: SIGHUP's default action ends the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if !o.demo && slices.ContainsFunc(cfg.Applications(), func(a config.App) bool { return a.Model != "" }) {
		o.events = o.reloadEvents(ctx, log)
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	apps, err := o.buildApps(cfg, registry, log)
	if err != nil {
		return err
	}
	reader := mergedReader(apps)
	registry.MustRegister(adapter.NewCollector(reader, time.Now))

	o.adapter.Demo = o.demo
	o.adapter.Log = log
	o.adapter.StatusPage = status.Handler(statusApps(apps), statusRefresh(apps), time.Now)
	if o.demo {
		creds, err := o.adapter.SetupDemo()
		if err != nil {
			return fmt.Errorf("preparing demo credentials: %w", err)
		}
		printDemoHelp(creds, apps, o.adapter.MetricsBindAddress)
	}
	logStartup(log, apps, o.demo)

	var consumers []func(context.Context) error
	if o.kedaAddress != "" || o.kedaTLSCert != "" || o.kedaTLSKey != "" || o.kedaClientCA != "" {
		serveKEDA, err := o.kedaScaler(reader, registry, log)
		if err != nil {
			return err
		}
		consumers = append(consumers, serveKEDA)
	}
	if o.vpaRecommender != "" {
		rec, err := o.vpaRecommenderFor(apps, reader, registry, log)
		if err != nil {
			return err
		}
		consumers = append(consumers, rec.Run)
	}

	g, ctx := errgroup.WithContext(ctx)
	for _, run := range consumers {
		g.Go(func() error { return run(ctx) })
	}
	// One goroutine per application: a loop stuck on a slow backend delays
	// only its own cycles.
	for _, a := range apps {
		g.Go(func() error { return a.loop.Run(ctx) })
	}
	g.Go(func() error { return o.adapter.Run(ctx, reader, registry, appsReady(apps)) })
	if o.reclaimMemory {
		g.Go(func() error { reclaimMemory(ctx, apps, o.retrainTurn, log); return nil })
	}
	var reloaders []*reloader
	for _, a := range apps {
		if a.reloader != nil {
			reloaders = append(reloaders, a.reloader)
		}
	}
	g.Go(func() error { return runReloaders(ctx, reloaders, time.Duration(cfg.ModelReload), hup, log) })
	for _, a := range apps {
		if a.retrainer != nil {
			g.Go(func() error { return a.retrainer.run(ctx) })
		}
	}
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("foresight stopped")
	return nil
}

// reloadEvents is the recorder of model reload Events on this pod, or nil
// (said at info level) when there is no cluster to record them in.
func (o *serveOptions) reloadEvents(ctx context.Context, log *slog.Logger) forecaster.EventRecorder {
	_, client, err := o.kubeClient("model reload events")
	if err == nil {
		var ev *podEvents
		if ev, err = newPodEvents(ctx, client); err == nil {
			return ev
		}
	}
	log.Info("model reloads are logged and counted but not recorded as Kubernetes Events", "reason", err)
	return nil
}

// budgeter checks an application's budgets against its model and builds
// their Budgeter (nil without budgets); key is the budgets' key path prefix
// in errors ("" or "apps[1]."). Budgets on a ResourceQuota read it with the
// adapter's Kubernetes client configuration.
func (o *serveOptions) budgeter(budgets []budget.Config, key string, pol policy.Config, services []string, registry prometheus.Registerer, log *slog.Logger) (*budget.Budgeter, error) {
	if len(budgets) == 0 {
		return nil, nil
	}
	if err := budget.Validate(budgets, services); err != nil {
		return nil, fmt.Errorf("configuration: %w", prefixErrors(key, err))
	}
	var getQuota budget.QuotaGetter
	if slices.ContainsFunc(budgets, func(b budget.Config) bool { return b.ResourceQuota != nil }) {
		if o.demo {
			return nil, errors.New("a budget on a ResourceQuota needs a cluster; it cannot run with --demo (use totalCPU)")
		}
		_, client, err := o.kubeClient("budgets")
		if err != nil {
			return nil, err
		}
		getQuota = func(ctx context.Context, namespace, name string) (*corev1.ResourceQuota, error) {
			return client.CoreV1().ResourceQuotas(namespace).Get(ctx, name, metav1.GetOptions{})
		}
	}
	return budget.NewBudgeter(budgets, getQuota, pol.MinReplicasFor, registry, log)
}

// kedaScaler listens for KEDA's external scaler calls and returns the
// function that serves them until its context ends.
func (o *serveOptions) kedaScaler(reader snapshot.Reader, registry *prometheus.Registry, log *slog.Logger) (func(context.Context) error, error) {
	if o.kedaAddress == "" {
		return nil, errors.New("--keda-tls-cert-file, --keda-tls-key-file and --keda-client-ca-file need --keda-scaler-address")
	}
	var creds credentials.TransportCredentials
	switch {
	case o.kedaTLSCert != "" || o.kedaTLSKey != "":
		c, err := keda.TLSCredentials(o.kedaTLSCert, o.kedaTLSKey, o.kedaClientCA)
		if err != nil {
			return nil, fmt.Errorf("KEDA external scaler: %w", err)
		}
		creds = c
	case o.kedaClientCA != "":
		return nil, errors.New("--keda-client-ca-file needs --keda-tls-cert-file and --keda-tls-key-file")
	}
	scaler, err := keda.NewServer(reader, keda.Options{Now: time.Now, Log: log.With("component", "keda"), Registerer: registry})
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", o.kedaAddress)
	if err != nil {
		return nil, fmt.Errorf("KEDA external scaler: listening on %s: %w", o.kedaAddress, err)
	}
	log.Info("serving the KEDA external scaler", "address", lis.Addr().String(), "tls", creds != nil)
	return func(ctx context.Context) error { return scaler.Serve(ctx, lis, creds) }, nil
}

// kubeClient is the Kubernetes client of the adapter's configuration
// (--lister-kubeconfig, else in-cluster); purpose prefixes its errors.
func (o *serveOptions) kubeClient(purpose string) (*rest.Config, kubernetes.Interface, error) {
	restCfg, err := o.adapter.ClientConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: Kubernetes client configuration: %w", purpose, err)
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: Kubernetes client: %w", purpose, err)
	}
	return restCfg, client, nil
}

// vpaRecommenderFor builds the VPA recommender with the adapter's
// Kubernetes client configuration (--lister-kubeconfig, else in-cluster).
func (o *serveOptions) vpaRecommenderFor(apps []*application, reader snapshot.Reader, registry *prometheus.Registry, log *slog.Logger) (*vpa.Recommender, error) {
	if o.demo {
		return nil, errors.New("--vpa-recommender needs a cluster; it cannot run with --demo")
	}
	restCfg, kubeClient, err := o.kubeClient("VPA recommender")
	if err != nil {
		return nil, err
	}
	vpaClient, err := vpaclientset.NewForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("VPA recommender: VPA client: %w", err)
	}
	// Predictions exist only in the applications' namespaces: with one,
	// list VPAs there only (namespaced RBAC is enough); with several, in
	// every namespace.
	namespace := apps[0].Namespace
	for _, a := range apps {
		if a.Namespace != namespace {
			namespace = ""
		}
	}
	opts := vpa.Options{VPAClient: vpaClient, KubeClient: kubeClient, Reader: reader, Name: o.vpaRecommender,
		Interval: o.vpaInterval, Namespace: namespace, Log: log, Registerer: registry}
	if o.vpaLeaderElect {
		opts.LeaderElection = &vpa.LeaderElection{}
	}
	return vpa.New(opts)
}

// config reads the file (if any) and applies the flags on top.
func (o *serveOptions) config() (config.Config, error) {
	cfg := config.Default()
	if o.configFile != "" {
		var err error
		if cfg, err = config.Load(o.configFile); err != nil {
			return cfg, err
		}
	}
	if o.prometheusURL != "" && o.csvPath != "" {
		return cfg, errors.New("--prometheus-url and --csv are mutually exclusive")
	}
	if o.prometheusURL != "" || o.csvPath != "" {
		cfg.Source = config.SourceConfig{}
	}
	if o.prometheusURL != "" {
		p := source.DefaultPrometheusConfig()
		p.URL = o.prometheusURL
		cfg.Source.Prometheus = &p
	}
	if o.csvPath != "" {
		cfg.Source.CSV = &config.CSVConfig{Path: o.csvPath, Replay: true}
	}
	if strings.Contains(o.namespace, ",") {
		return cfg, fmt.Errorf("--namespace %q: one namespace only; to serve several, list them as applications under apps: in --config (docs/configuration.md, \"Several applications\")", o.namespace)
	}
	if len(cfg.Apps) > 0 {
		// Each application has its own: a flag would apply to none.
		if o.modelDir != "" || o.modelStore != "" {
			return cfg, errors.New("--model, --model-store: not used with apps in --config; set each application's apps[i].model and apps[i].modelStore")
		}
		if o.namespace != "" {
			return cfg, errors.New("--namespace: not used with apps in --config; set each application's apps[i].namespace")
		}
	}
	if o.modelDir != "" {
		cfg.Model = o.modelDir
	}
	if o.modelStore != "" {
		cfg.ModelStore = o.modelStore
	}
	if o.namespace != "" {
		cfg.Namespace = o.namespace
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

// loadModel loads the model directory of --model, or the built-in model
// when dir is empty.
func loadModel(dir string) (*model.Model, error) { return loadModelFrom(dir, "--model") }

// loadModelFrom is loadModel for a directory set by key, which names it in
// errors.
func loadModelFrom(dir, key string) (*model.Model, error) {
	if dir == "" {
		m, err := model.LoadFS(models.Demo())
		if err != nil {
			return nil, fmt.Errorf("loading the built-in model: %w", err)
		}
		return m, nil
	}
	m, err := model.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return m, nil
}

// makeSource builds the configured source; for the synthetic demo source it
// also returns the generator, whose pod capacities size the demo policy.
func makeSource(cfg config.SourceConfig, m *model.Manifest, log *slog.Logger) (source.Source, *synthetic.Generator, error) {
	switch {
	case cfg.Prometheus != nil:
		p, err := source.NewPrometheus(*cfg.Prometheus, log)
		if err != nil {
			return nil, nil, fmt.Errorf("prometheus source: %w", err)
		}
		return p, nil, nil
	case cfg.CSV != nil:
		c, err := source.NewCSV(cfg.CSV.Path, source.CSVOptions{Replay: cfg.CSV.Replay})
		if err != nil {
			return nil, nil, err // already reads "csv source <file>:<line>: ..."
		}
		return c, nil, nil
	default:
		gen, err := demoGenerator(cfg.Synthetic, m.Graph())
		if err != nil {
			return nil, nil, fmt.Errorf("synthetic source: %w", err)
		}
		return source.NewSynthetic(gen), gen, nil
	}
}

func demoGenerator(sc *config.SyntheticConfig, g topology.Graph) (*synthetic.Generator, error) {
	c := synthetic.DefaultConfig()
	if sc != nil {
		if sc.Seed != 0 {
			c.Seed = sc.Seed
		}
		if sc.DayLength > 0 {
			c.Diurnal.Period = time.Duration(sc.DayLength)
		}
	}
	return synthetic.New(c, g)
}

// capacitiesFromSynthetic sets the pod capacity of every service the policy
// leaves unset from the synthetic workload's own pods. It changes a copy of
// the per-service map, which other applications' policies may share.
func capacitiesFromSynthetic(pol *policy.Config, gen *synthetic.Generator, services []string) error {
	pol.Services = maps.Clone(pol.Services)
	if pol.Services == nil {
		pol.Services = map[string]policy.ServiceConfig{}
	}
	for _, svc := range services {
		c, err := gen.CapacityPerPod(svc)
		if err != nil {
			return err
		}
		sc := pol.Services[svc]
		if sc.CapacityPerPod == 0 {
			sc.CapacityPerPod = c
		}
		pol.Services[svc] = sc
	}
	return nil
}

// printDemoHelp prints what the demo runs on and ready-to-paste commands
// for the first application's namespace.
func printDemoHelp(creds *adapter.DemoCredentials, apps []*application, metricsAddr string) {
	namespace := apps[0].Namespace
	others := ""
	if len(apps) > 1 {
		var names []string
		for _, a := range apps[1:] {
			if a.Namespace != namespace && !slices.Contains(names, a.Namespace) {
				names = append(names, a.Namespace)
			}
		}
		if len(names) > 0 {
			others = fmt.Sprintf("\n  The other applications: replace namespaces/%s with namespaces/%s.\n", namespace, strings.Join(names, ", namespaces/"))
		}
	}
	fmt.Fprintf(os.Stderr, `
Status page: open http://%s/ in a browser.

Foresight demo: %s
The external metrics API runs with self-signed certificates; only the demo client certificate is accepted.

  Predicted replicas through the external metrics API (needs kubectl):
    %s

  The same with curl:
    %s
%s
  Prometheus metrics:
    curl -s http://%s/metrics | grep '^foresight_predicted'

`, metricsAddr, demoSummary(apps), creds.KubectlCommand(namespace, "foresight_predicted_replicas"),
		creds.CurlCommand(namespace, "foresight_predicted_replicas"), others, metricsAddr)
}

// statusRefresh is how often the status page reloads: the shortest forecast
// interval among the applications.
func statusRefresh(apps []*application) time.Duration {
	var d time.Duration
	for _, a := range apps {
		if i := a.loop.Interval(); d == 0 || i < d {
			d = i
		}
	}
	return d
}
