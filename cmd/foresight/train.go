package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/models"
	"github.com/foresightscale/foresight/models/gnn"
	"github.com/foresightscale/foresight/models/training"
)

type trainOptions struct {
	data          string
	synthetic     bool
	syntheticDays int
	prometheusURL string
	namespace     string
	start, end    string
	out           string
	name          string
	epochs        int
	seed          int64
	testFraction  float64
}

func newTrainCommand() *cobra.Command {
	o := &trainOptions{syntheticDays: training.SyntheticDays, namespace: "default", testFraction: training.DefaultTestFraction}
	cmd := &cobra.Command{
		Use:   "train --out DIR (--data FILE.csv | --synthetic | --prometheus-url URL --start T --end T)",
		Short: "Train the spatiotemporal GNN on a cluster's history and write model.onnx, manifest.json, report.json",
		Long: `Trains Foresight's spatiotemporal GNN (Online Boutique topology) in Go and exports it to ONNX.

The history is split chronologically: the most recent --test-fraction of the windows is
held out for the report, 15% of the rest drives early stopping. Training is deterministic
for a given --seed. Ctrl-C stops early and keeps the best model so far. Files are written
under temporary names and renamed, so a failed run never replaces a good model.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), cmd.ErrOrStderr()) },
	}
	f := cmd.Flags()
	f.StringVar(&o.data, "data", "", "Wide-format CSV history (columns <service>_<metric>, 30 s rows).")
	f.BoolVar(&o.synthetic, "synthetic", false, "Train on the built-in synthetic workload (seeded, reproducible).")
	f.IntVar(&o.syntheticDays, "synthetic-days", o.syntheticDays, "Days of synthetic history to train on.")
	f.StringVar(&o.prometheusURL, "prometheus-url", "", "Read the history from this Prometheus-API server (default templates; needs --start and --end).")
	f.StringVar(&o.namespace, "namespace", o.namespace, "Namespace of the services (Prometheus queries).")
	f.StringVar(&o.start, "start", "", "Start of the history (RFC 3339); default: the CSV's first row.")
	f.StringVar(&o.end, "end", "", "End of the history (RFC 3339); default: the CSV's last row.")
	f.StringVar(&o.out, "out", "", "Directory to write model.onnx, manifest.json and report.json into (required).")
	f.StringVar(&o.name, "name", "boutique-gnn", "Model name (manifest, foresight_model_info).")
	f.IntVar(&o.epochs, "epochs", 0, "Maximum epochs (default: the model's default); early stopping may end sooner.")
	f.Int64Var(&o.seed, "seed", 1, "Random seed: the same data and seed give the same model.")
	f.Float64Var(&o.testFraction, "test-fraction", o.testFraction, "Share of the most recent windows held out for the report.")
	return cmd
}

func (o *trainOptions) run(ctx context.Context, stderr io.Writer) error {
	if o.out == "" {
		return errors.New("--out is required")
	}
	cfg, err := o.config()
	if err != nil {
		return err
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
	if err := models.Write(o.out, onnxBytes, manifest); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(o.out, "report.json"), report); err != nil {
		return err
	}
	if interrupted {
		slog.Warn("training interrupted: wrote the best model so far", "bestEpoch", report.BestEpoch, "dir", o.out)
	}
	printTrainSummary(stderr, o.out, report)
	return nil
}

// config turns the flags into a training configuration.
func (o *trainOptions) config() (training.Config, error) {
	graph := topology.OnlineBoutique()
	opts := gnn.DefaultOptions(graph)
	opts.Name, opts.Seed = o.name, o.seed
	if o.epochs > 0 {
		opts.Epochs = o.epochs
	}
	cfg := training.Config{
		Namespace: o.namespace, Options: opts,
		TestFraction: o.testFraction, ValidationFraction: training.DefaultValidationFraction,
	}
	sources := 0
	for _, set := range []bool{o.data != "", o.synthetic, o.prometheusURL != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return cfg, errors.New("give exactly one of --data, --synthetic, --prometheus-url")
	}
	var err error
	switch {
	case o.data != "":
		c, err := source.NewCSV(o.data, source.CSVOptions{})
		if err != nil {
			return cfg, err
		}
		cfg.Source, cfg.SourceName = c, filepath.Base(o.data)
		cfg.Start, cfg.End = c.Span()
	case o.synthetic:
		syn, err := training.SyntheticConfig(o.syntheticDays, opts)
		if err != nil {
			return cfg, err
		}
		cfg.Source, cfg.SourceName, cfg.Start, cfg.End = syn.Source, syn.SourceName, syn.Start, syn.End
	default:
		p := source.DefaultPrometheusConfig()
		p.URL = o.prometheusURL
		// A history of weeks at the model's step is one large answer per
		// feature, unlike serve's windows of minutes.
		p.MaxResponseBytes = 1 << 30
		prom, err := source.NewPrometheus(p, slog.Default())
		if err != nil {
			return cfg, err
		}
		cfg.Source, cfg.SourceName = prom, o.prometheusURL
		if o.start == "" || o.end == "" {
			return cfg, errors.New("--prometheus-url needs --start and --end")
		}
	}
	if o.start != "" {
		if cfg.Start, err = time.Parse(time.RFC3339, o.start); err != nil {
			return cfg, fmt.Errorf("--start: %w", err)
		}
	}
	if o.end != "" {
		if cfg.End, err = time.Parse(time.RFC3339, o.end); err != nil {
			return cfg, fmt.Errorf("--end: %w", err)
		}
	}
	if !cfg.End.After(cfg.Start) {
		return cfg, fmt.Errorf("--end %v is not after --start %v", cfg.End, cfg.Start)
	}
	return cfg, nil
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
	fmt.Fprintf(w, "wrote %s/{model.onnx,manifest.json,report.json}: %d epochs (best %d, %s), %.0fs, windows train/val/test %d/%d/%d\n",
		dir, r.Epochs, r.BestEpoch, r.Stopped, r.Seconds, r.Windows.Train, r.Windows.Validation, r.Windows.Test)
	if t := r.Test; t != nil && len(t.MAEByHorizon) > 0 {
		h := len(t.MAEByHorizon) - 1
		fmt.Fprintf(w, "held-out request-rate MAE at step %d: %.3f (last value %.3f)", h+1, t.MAEByHorizon[h], t.LastValueMAEByHorizon[h])
		if t.P90Coverage != nil {
			fmt.Fprintf(w, ", P90 coverage %.3f", *t.P90Coverage)
		}
		fmt.Fprintln(w)
	}
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
