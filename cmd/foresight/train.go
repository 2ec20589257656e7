package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/foresightscale/foresight/forecaster/config"
	"github.com/foresightscale/foresight/forecaster/discovery"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/internal/textlimit"
	"github.com/foresightscale/foresight/models"
	"github.com/foresightscale/foresight/models/gnn"
	"github.com/foresightscale/foresight/models/store"
	"github.com/foresightscale/foresight/models/training"
)

type trainOptions struct {
	data          string
	synthetic     bool
	syntheticDays int
	prometheusURL string
	configFile    string
	app           string
	namespace     string
	services      []string
	callGraph     string
	step          time.Duration
	start, end    string
	out           string
	name          string
	epochs        int
	seed          int64
	testFraction  float64
	season        string
	promote       string
	keep          int
	margin        float64
	maxLastValue  float64
	kubeconfig    string
	history       time.Duration
	minHistory    time.Duration
	report        string
	promConfig    source.PrometheusConfig // the Prometheus read, for discovery
}

// discoverMesh reports whether --call-graph is discover[:MESH], and the
// mesh it names ("auto" for plain discover).
func (o *trainOptions) discoverMesh() (string, bool) {
	switch {
	case o.callGraph == "discover":
		return "auto", true
	case strings.HasPrefix(o.callGraph, "discover:"):
		return strings.TrimPrefix(o.callGraph, "discover:"), true
	}
	return "", false
}

// discoverGraph reads the call graph from the mesh metrics of the
// history's Prometheus, at the history's end, as `foresight topology`
// does: a scheduled retrain then follows services and calls added or
// removed since the last one. An application without mesh metrics trains
// without a call graph (said), as it would without --call-graph.
func (o *trainOptions) discoverGraph(ctx context.Context, cfg *training.Config) error {
	name, _ := o.discoverMesh()
	mesh, err := discovery.ParseMesh(name)
	if err != nil {
		return fmt.Errorf("--call-graph %s: %w", o.callGraph, err)
	}
	if o.promConfig.URL == "" {
		return fmt.Errorf("--call-graph %s reads the mesh metrics of Prometheus: give --prometheus-url or --config", o.callGraph)
	}
	api, err := source.NewPrometheusAPI(o.promConfig)
	if err != nil {
		return err
	}
	res, err := discovery.Discover(ctx, api, discovery.Options{Namespace: cfg.Namespace, At: cfg.End, Mesh: mesh, Logger: slog.Default()})
	if errors.Is(err, discovery.ErrNoData) {
		slog.Warn("no call graph discovered; training without one (the model learns its adjacency alone)", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("--call-graph %s: %w", o.callGraph, err)
	}
	cfg.Options.Graph.Edges = res.Graph.Graph.Edges
	slog.Info("call graph discovered", "mesh", res.Mesh, "namespace", res.Namespace, "services", len(res.Graph.Graph.Services), "edges", len(res.Graph.Graph.Edges))
	return nil
}

// defaultPrometheusStep is the training step when reading Prometheus without
// --step: the step of the shipped recording rules and of boutique.csv.
const defaultPrometheusStep = 30 * time.Second

func newTrainCommand() *cobra.Command {
	o := &trainOptions{syntheticDays: training.SyntheticDays, testFraction: training.DefaultTestFraction,
		keep: store.DefaultKeep, margin: defaultPromoteMargin, maxLastValue: 1}
	cmd := &cobra.Command{
		Use:   "train (--out DIR | --promote STORE) (--data FILE.csv | --synthetic | --prometheus-url URL --start T --end T | --config FILE --start T --end T) [--call-graph FILE.csv]",
		Short: "Train the spatiotemporal GNN on a cluster's history and write model.onnx, manifest.json, report.json",
		Long: `Trains Foresight's spatiotemporal GNN in Go and exports it to ONNX, for any application.

The services come from the history itself (the CSV's columns, or every service the
Prometheus queries return), the step from the CSV's rows (or --step), and the call graph
from --call-graph (caller,callee[,fanOut]; see "foresight topology"); without one the
model learns its adjacency alone. A service without a usable request rate or CPU series
is left out; a feature a service has no usable series of is modelled without; both are
reported, and written to report.json.

The history is split chronologically: the most recent --test-fraction of the windows is
held out for the report, 15% of the rest drives early stopping. Training is deterministic
for a given --seed. Ctrl-C stops early and keeps the best model so far. Files are written
under temporary names and renamed, so a failed run never replaces a good model.

The history starts at its first request-rate or CPU sample: a young application's
--history 168h that holds six hours of data trains on the six hours (report.json's
start says from when). With --min-history, a shorter history trains nothing, writes
nothing and leaves the --promote store as it is: a scheduled retrain tries again later.

Exit status: 0 trained (promoted or kept), 3 not enough history yet (--min-history),
1 any other error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), cmd.ErrOrStderr()) },
	}
	f := cmd.Flags()
	f.StringVar(&o.data, "data", "", "Wide-format CSV history (columns step,timestamp_local,<service>_<metric>; any services, any step).")
	f.BoolVar(&o.synthetic, "synthetic", false, "Train on the built-in synthetic Online Boutique workload (seeded, reproducible: the demo model's recipe).")
	f.IntVar(&o.syntheticDays, "synthetic-days", o.syntheticDays, "Days of synthetic history to train on.")
	f.StringVar(&o.prometheusURL, "prometheus-url", "", "Read the history from this Prometheus-API server (needs --start and --end).")
	f.StringVar(&o.configFile, "config", "", "Read the history with serve's configuration (source.prometheus: URL, queries, tenant, TLS/auth; namespace); --prometheus-url and --namespace override it.")
	f.StringVar(&o.app, "app", "", "With a --config that lists apps: the application to train (its namespace, queries and services); needed when there are several.")
	f.StringVar(&o.namespace, "namespace", "", "Namespace of the services (Prometheus queries); default from --config, else \"default\".")
	f.StringSliceVar(&o.services, "services", nil, "Only these services (comma-separated); default: every service in the history.")
	f.StringVar(&o.callGraph, "call-graph", "", "Call graph CSV (caller,callee[,fanOut]), e.g. from \"foresight topology\"; or discover[:istio|linkerd|otel] to discover it from the history's Prometheus at the history's end, as \"foresight topology\" does (a scheduled retrain follows the application's calls); default: none, the model learns its adjacency alone.")
	f.DurationVar(&o.step, "step", 0, "Model step; default: the CSV's row interval, or 30s for Prometheus.")
	f.StringVar(&o.start, "start", "", "Start of the history (RFC 3339); default: the CSV's first row.")
	f.DurationVar(&o.history, "history", 0, "Read Prometheus from this long ago up to now, instead of --start/--end (a scheduled retrain, e.g. 168h).")
	f.StringVar(&o.end, "end", "", "End of the history (RFC 3339); default: the CSV's last row.")
	f.DurationVar(&o.minHistory, "min-history", 0, "Train only if the history, from its first request-rate or CPU sample to its end, is at least this long (e.g. 24h); otherwise exit with status 3 and write nothing. Default: no minimum.")
	f.StringVar(&o.report, "report", "", "Also write the report (report.json's content, with the --promote decision) to this file, e.g. for the process that ran the training.")
	f.StringVar(&o.out, "out", "", "Directory to write model.onnx, manifest.json and report.json into (required unless --promote).")
	f.StringVar(&o.name, "name", "", "Model name (manifest, foresight_model_info); default: from the data file or namespace, e.g. bookinfo-gnn.")
	f.IntVar(&o.epochs, "epochs", 0, "Maximum epochs (default: the model's default); early stopping may end sooner.")
	f.Int64Var(&o.seed, "seed", 1, "Random seed: the same data and seed give the same model.")
	f.Float64Var(&o.testFraction, "test-fraction", o.testFraction, "Share of the most recent windows held out for the report.")
	f.StringVar(&o.promote, "promote", "", "Model store (a directory, or configmap:[NAMESPACE/]NAME through the Kubernetes API): backtest the new model against the newest model there (the champion) and last value on the held-out part, and save it there as a new version only if it wins (see --promote-margin, --max-last-value-ratio).")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "With --promote configmap:…: the kubeconfig to write it with; default: in-cluster (the Job's ServiceAccount), else $KUBECONFIG.")
	f.IntVar(&o.keep, "keep", o.keep, "With --promote: versions the store keeps (older ones are removed).")
	f.Float64Var(&o.margin, "promote-margin", o.margin, "With --promote: the new model's mean held-out MAE must be below (1 − margin) × the champion's.")
	f.Float64Var(&o.maxLastValue, "max-last-value-ratio", o.maxLastValue, "With --promote: the new model's held-out MAE may be at most this times last value's, at every step.")
	f.StringVar(&o.season, "season", "auto", "Seasonal context: \"auto\" detects the load's cycle on the training part, \"none\" trains without, a duration (e.g. 24h) sets the period; serve then also reads the history one period back.")
	return cmd
}

// defaultPromoteMargin is how much better (mean held-out MAE) a new model
// must be than the serving one to replace it: less would swap models on
// noise.
const defaultPromoteMargin = 0.02

func (o *trainOptions) run(ctx context.Context, stderr io.Writer) error {
	if o.out == "" && o.promote == "" {
		return errors.New("--out or --promote is required")
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	if _, discover := o.discoverMesh(); discover {
		if err := o.discoverGraph(ctx, &cfg); err != nil {
			return err
		}
	}
	var st modelStore
	if o.promote != "" {
		if !(o.margin >= 0 && o.margin < 1) || !(o.maxLastValue > 0) {
			return fmt.Errorf("--promote-margin %v must be in [0, 1) and --max-last-value-ratio %v positive", o.margin, o.maxLastValue)
		}
		if st, err = openStore(o.promote, cmp.Or(cfg.Namespace, "default"), o.kubeconfig, o.keep); err != nil {
			return err
		}
		if cfg.Champion, err = st.champion(ctx); err != nil {
			return err
		}
	}
	progress, finish := progressReporter(stderr, cfg.Options.Epochs)
	m, report, err := training.Run(ctx, cfg, progress)
	finish()
	interrupted := err != nil && errors.Is(err, context.Canceled) && m != nil
	if err != nil && !interrupted {
		return err
	}
	onnxBytes, manifest, err := m.Export()
	if err != nil {
		return fmt.Errorf("exporting: %w", err)
	}
	var promoted string
	if st != nil && !interrupted {
		if promoted, err = promote(ctx, st, report, onnxBytes, manifest, o.margin, o.maxLastValue); err != nil {
			return err
		}
	}
	if o.out != "" {
		if err := models.Write(o.out, onnxBytes, manifest); err != nil {
			return err
		}
		if err := writeJSON(filepath.Join(o.out, "report.json"), report); err != nil {
			return err
		}
	}
	if o.report != "" {
		if err := writeJSON(o.report, report); err != nil {
			return fmt.Errorf("--report: %w", err)
		}
	}
	if report.Start.After(cfg.Start) {
		fmt.Fprintf(stderr, "history from %s: no request-rate or CPU sample between %s and then\n",
			report.Start.Format(time.RFC3339), cfg.Start.Format(time.RFC3339))
	}
	if interrupted {
		slog.Warn("training interrupted: promoted nothing; --out (if given) has the best model so far", "bestEpoch", report.BestEpoch, "dir", o.out)
	}
	printTrainSummary(stderr, o.out, report)
	if d := report.Decision; d != nil {
		if promoted != "" {
			fmt.Fprintf(stderr, "%s; saved as version %s in %s\n", d.Reason, promoted, st)
		} else {
			fmt.Fprintf(stderr, "%s; the store %s is unchanged\n", d.Reason, st)
		}
	}
	return nil
}

// config turns the flags into a training configuration.
func (o *trainOptions) config() (training.Config, error) {
	cfg := training.Config{TestFraction: o.testFraction, ValidationFraction: training.DefaultValidationFraction}
	sources := 0
	for _, set := range []bool{o.data != "", o.synthetic, o.prometheusURL != "" || o.configFile != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return cfg, errors.New("give exactly one of --data, --synthetic, --prometheus-url (or --config)")
	}
	if o.synthetic && (o.callGraph != "" || len(o.services) > 0 || o.step != 0) {
		return cfg, errors.New("--synthetic trains the demo model on its own Online Boutique topology and step; --call-graph, --services and --step apply to --data and Prometheus")
	}
	opts := training.DemoOptions()
	if !o.synthetic {
		graph, err := o.graph()
		if err != nil {
			return cfg, err
		}
		opts = gnn.DefaultOptions(graph)
	}
	opts.Seed = o.seed
	if o.epochs > 0 {
		opts.Epochs = o.epochs
	}
	switch {
	case o.data != "":
		c, err := source.NewCSV(o.data, source.CSVOptions{})
		if err != nil {
			return cfg, err
		}
		cfg.Source, cfg.SourceName = c, filepath.Base(o.data)
		cfg.Start, cfg.End = c.Span()
		opts.Step = c.Interval()
		opts.Name = modelName(strings.TrimSuffix(filepath.Base(o.data), filepath.Ext(o.data)))
	case o.synthetic:
		syn, err := training.SyntheticConfig(o.syntheticDays, opts)
		if err != nil {
			return cfg, err
		}
		cfg.Source, cfg.SourceName, cfg.Start, cfg.End = syn.Source, syn.SourceName, syn.Start, syn.End
	default:
		prom, namespace, err := o.prometheus()
		if err != nil {
			return cfg, err
		}
		cfg.Source, cfg.SourceName, cfg.Namespace = prom, o.prometheusURL, namespace
		opts.Step, opts.Name = defaultPrometheusStep, modelName(namespace)
		if len(opts.Graph.Services) == 0 {
			opts.Graph.Services = slices.Clone(o.services) // the application's, from --config
		}
		if o.history == 0 && (o.start == "" || o.end == "") {
			return cfg, errors.New("reading Prometheus needs --start and --end, or --history")
		}
	}
	if o.step != 0 {
		if o.step < model.MinStep || o.step > model.MaxStep {
			return cfg, fmt.Errorf("--step %v: must be between %v and %v", o.step, model.MinStep, model.MaxStep)
		}
		opts.Step = o.step
	}
	if o.name != "" {
		opts.Name = o.name
	}
	switch {
	case o.history == 0:
	case o.data != "" || o.synthetic:
		return cfg, errors.New("--history reads Prometheus up to now; a CSV's span is its rows (cut it with --start and --end)")
	case o.history < 0 || o.start != "" || o.end != "":
		return cfg, errors.New("--history is the positive span up to now: give it, or --start and --end, not both")
	default:
		// A scheduled retrain: the span up to the last whole step.
		end := time.Now().UTC().Truncate(opts.Step)
		o.start, o.end = end.Add(-o.history).Format(time.RFC3339), end.Format(time.RFC3339)
	}
	var err error
	if cfg.Start, err = o.time("--start", o.start, cfg.Start); err != nil {
		return cfg, err
	}
	if cfg.End, err = o.time("--end", o.end, cfg.End); err != nil {
		return cfg, err
	}
	if !cfg.End.After(cfg.Start) {
		return cfg, fmt.Errorf("--end %v is not after --start %v", cfg.End, cfg.Start)
	}
	if cfg.Season, err = parseSeason(o.season, opts.Step); err != nil {
		return cfg, err
	}
	if o.minHistory < 0 {
		return cfg, fmt.Errorf("--min-history %v must not be negative", o.minHistory)
	}
	cfg.MinHistory = o.minHistory
	cfg.Options = opts
	return cfg, nil
}

// parseSeason reads --season: auto, none, or a period that is a whole
// number of steps.
func parseSeason(v string, step time.Duration) (int, error) {
	switch v {
	case "", "auto":
		return training.SeasonAuto, nil
	case "none":
		return training.SeasonNone, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--season %q: want auto, none or a positive duration such as 24h", v)
	}
	if d%step != 0 || d/step > model.MaxPeriodSteps {
		return 0, fmt.Errorf("--season %v: must be a whole number of steps (%v) and at most %d of them", d, step, model.MaxPeriodSteps)
	}
	return int(d / step), nil
}

// graph is what the flags say of the topology: the --services to keep
// (none: all in the history) and the --call-graph edges (none: the model
// learns its adjacency alone).
func (o *trainOptions) graph() (topology.Graph, error) {
	g := topology.Graph{Services: slices.Clone(o.services)}
	if _, discover := o.discoverMesh(); o.callGraph == "" || discover {
		return g, nil // discovered later, from the history's Prometheus
	}
	f, err := os.Open(o.callGraph)
	if err != nil {
		return g, fmt.Errorf("--call-graph: %w", err)
	}
	defer f.Close()
	// Any services: edges naming a service the history does not have are
	// dropped and reported by training, not refused here.
	cg, err := topology.ParseCallGraphCSV(f, nil)
	if err != nil {
		return g, fmt.Errorf("--call-graph %s: %w", o.callGraph, err)
	}
	g.Edges = cg.Edges
	return g, nil
}

// prometheus builds the Prometheus source from --config and the flags, and
// returns it with the namespace to read.
func (o *trainOptions) prometheus() (source.Source, string, error) {
	p, namespace := source.DefaultPrometheusConfig(), "default"
	if o.app != "" && o.configFile == "" {
		return nil, "", errors.New("--app needs --config (the applications are listed there)")
	}
	if o.configFile != "" {
		c, err := config.Load(o.configFile)
		if err != nil {
			return nil, "", err
		}
		app, err := pickApplication(c, o.app, o.configFile)
		if err != nil {
			return nil, "", err
		}
		if app.Source.Prometheus == nil && o.prometheusURL == "" {
			return nil, "", fmt.Errorf("--config %s: no source.prometheus to read the history from (or pass --prometheus-url)", o.configFile)
		}
		if app.Source.Prometheus != nil {
			p = *app.Source.Prometheus
		}
		namespace = app.Namespace
		if len(o.services) == 0 {
			o.services = app.Services
		}
	}
	if o.prometheusURL != "" {
		p.URL = o.prometheusURL
	}
	if o.namespace != "" {
		namespace = o.namespace
	}
	o.prometheusURL, o.promConfig = p.URL, p
	// A history of days at the model's step is one large answer per
	// feature, unlike serve's windows of minutes.
	p.MaxResponseBytes = 1 << 30
	prom, err := source.NewPrometheus(p, slog.Default())
	if err != nil {
		return nil, "", err
	}
	return prom, namespace, nil
}

// time parses an RFC 3339 flag, or returns def when it is empty.
func (o *trainOptions) time(flag, value string, def time.Time) (time.Time, error) {
	if value == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339, value)
	if err != nil {
		return t, fmt.Errorf("%s: %w", flag, err)
	}
	return t, nil
}

// modelName derives a model name from a file or namespace name: lower case
// letters, digits and hyphens, ending in "-gnn".
func modelName(base string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(base) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if name == "" {
		name = "foresight"
	}
	return textlimit.Prefix(name, 48) + "-gnn"
}

// progressReporter draws a progress bar on a terminal and writes one log line
// per epoch otherwise (CI logs, files).
func progressReporter(w io.Writer, epochs int) (func(gnn.Progress), func()) {
	f, isFile := w.(*os.File)
	if !isFile || !term.IsTerminal(int(f.Fd())) {
		return func(p gnn.Progress) {
			slog.Info("epoch", "epoch", p.Epoch, "of", p.Epochs, "trainLoss", p.TrainLoss,
				"validationLoss", p.ValLoss, "improved", p.Improved, "eta", p.ETA.Round(time.Second))
		}, func() {}
	}
	bar := progressbar.NewOptions(epochs, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("training"),
		progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	return func(p gnn.Progress) {
			bar.Describe(fmt.Sprintf("epoch %d  train %.4f  val %.4f", p.Epoch, p.TrainLoss, p.ValLoss))
			_ = bar.Set(p.Epoch)
		}, func() {
			_ = bar.Finish()
		}
}

func printTrainSummary(w io.Writer, dir string, r *training.Report) {
	if r.Data != nil {
		for _, line := range r.Data.Summary() {
			fmt.Fprintln(w, line)
		}
	}
	if s := r.Season; s != nil {
		if s.PeriodSteps > 0 {
			fmt.Fprintf(w, "seasonal context: period %s (%d steps), %s; serve also reads the history one period back\n", s.Period, s.PeriodSteps, s.Reason)
		} else {
			fmt.Fprintf(w, "no seasonal context: %s\n", s.Reason)
		}
	}
	wrote := "trained"
	if dir != "" {
		wrote = fmt.Sprintf("wrote %s/{model.onnx,manifest.json,report.json}", dir)
	}
	fmt.Fprintf(w, "%s: %d epochs (best %d, %s), %.0fs, windows train/val/test %d/%d/%d\n",
		wrote, r.Epochs, r.BestEpoch, r.Stopped, r.Seconds, r.Windows.Train, r.Windows.Validation, r.Windows.Test)
	if t := r.Test; t != nil && len(t.MAEByHorizon) > 0 {
		h := len(t.MAEByHorizon) - 1
		target := "request-rate"
		if r.Data != nil && len(r.Data.Targets) > 0 && r.Data.Targets[0] != source.Requests {
			target = string(r.Data.Targets[0]) // a history without any request rate
		}
		fmt.Fprintf(w, "held-out %s MAE at step %d: %.3f (last value %.3f)", target, h+1, t.MAEByHorizon[h], t.LastValueMAEByHorizon[h])
		if t.P90Coverage != nil {
			fmt.Fprintf(w, ", P90 coverage %.3f", *t.P90Coverage)
		}
		if t.P90MeanExcess != nil {
			fmt.Fprintf(w, " with mean excess %.3g", *t.P90MeanExcess)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "held-out MAE / last value's, by step (below 1: the model is better): %s\n", horizonRatios(t.MAEByHorizon, t.LastValueMAEByHorizon))
	}
}

// horizonRatios formats a/b step by step ("-" where b is 0).
func horizonRatios(a, b []float64) string {
	parts := make([]string, len(a))
	for h := range a {
		parts[h] = "-"
		if h < len(b) && b[h] > 0 {
			parts[h] = strconv.FormatFloat(a[h]/b[h], 'f', 3, 64)
		}
	}
	return strings.Join(parts, " ")
}

// writeJSON writes v to path through a temporary file and a rename.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", filepath.Base(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
