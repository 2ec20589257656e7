package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/foresightscale/foresight/forecaster/simulator"
	"github.com/foresightscale/foresight/forecaster/simulator/workload"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/widecsv"
)

func newSimulateCommand() *cobra.Command {
	opts := simulator.DefaultCompareOptions()
	var (
		traceArg, appArg, modelDir, format, outDir, plotsDir, policies, historyOut string
		load                                                                       workload.Options
	)
	load.Scale, load.Compress = 1, 1
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Replay a request trace through a simulated application under reactive and proactive scaling policies",
		Long: `Replay a request trace (a file or a generator) through a simulated microservice
application, second by second, once per scaling policy: the stock CPU HPA, its
fast variant, Foresight (its own forecast loop and model driving an HPA on
foresight_predicted_replicas), Holt-Winters, an oracle that knows the future, and
a static allocation sized for the peak. Report SLO-violation seconds (end-to-end
p99 over the SLO), cost in CPU core-hours requested, latency and scaling actions.

--trace takes a file (one number per line = requests/s per second, or
"timestamp,count" rows per minute) or a generator: ` + strings.Join(workload.Generators(), ", ") + `
(e.g. "bursty" or "step:low=50,high=200,at=10m").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("--format: want table or json, got %q", format)
			}
			if traceArg == "" {
				return fmt.Errorf("--trace: a trace file or generator is required (generators: %s)", strings.Join(workload.Generators(), ", "))
			}
			if policies != "all" {
				opts.Policies = strings.Split(policies, ",")
			}
			if historyOut != "" && (len(opts.Policies) != 1 || opts.Sweep) {
				return fmt.Errorf("--export-history: simulate one policy (--policy cpu-hpa, say) without --sweep: the history is that run's metrics")
			}
			if appArg != "boutique" {
				app, err := simulator.LoadApp(appArg)
				if err != nil {
					return fmt.Errorf("--app: %w", err)
				}
				opts.Config.App = app
			}
			trace, err := workload.Open(traceArg, load)
			if err != nil {
				return fmt.Errorf("--trace: %w", err)
			}
			if opts.Model, err = loadModel(modelDir); err != nil {
				return err
			}
			started := time.Now()
			progress, finish := simulateProgress(cmd.ErrOrStderr())
			opts.Progress = progress
			rep, err := simulator.Compare(cmd.Context(), trace, opts)
			finish()
			if err != nil {
				return err
			}
			if format == "json" {
				err = rep.WriteJSON(cmd.OutOrStdout())
			} else {
				err = rep.WriteTable(cmd.OutOrStdout())
			}
			if err != nil {
				return err
			}
			if outDir != "" {
				if err := os.MkdirAll(outDir, 0o755); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				if err := writeJSON(filepath.Join(outDir, "report.json"), rep); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", filepath.Join(outDir, "report.json"))
			}
			if historyOut != "" {
				if err := exportHistory(cmd.Context(), historyOut, rep.Runs[opts.Policies[0]]); err != nil {
					return fmt.Errorf("--export-history: %w", err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", historyOut)
			}
			if plotsDir != "" {
				files, err := rep.WritePlots(plotsDir)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d plots into %s\n", len(files), plotsDir)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "simulation took %v\n", time.Since(started).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	cfg := &opts.Config
	f.StringVar(&traceArg, "trace", "", "Trace file or generator spec (required).")
	f.Float64Var(&load.Scale, "scale", 1, "Multiply the trace's request rate by this factor.")
	f.Float64Var(&load.Compress, "compress", 1, "Time compression: 60 plays one minute of the trace per simulated second.")
	f.DurationVar(&load.Duration, "duration", 0, "Truncate the trace (or set a generator's length; default 1h).")
	f.Int64Var(&load.Seed, "seed", 1, "Seed of generators' randomness.")
	f.Int64Var(&cfg.Seed, "sim-seed", cfg.Seed, "Seed of the simulation (pod start-up jitter).")
	f.StringVar(&appArg, "app", "boutique", `Application: "boutique" (Online Boutique) or a YAML file (see docs/simulate.md).`)
	f.StringVar(&policies, "policy", "all", "Policies to run: all, or a comma-separated list of "+strings.Join(simulator.AllPolicies, ", ")+".")
	f.StringVar(&modelDir, "model", "", "Foresight's model directory; default: the built-in demo model.")
	f.DurationVar(&cfg.SLO, "slo", cfg.SLO, "End-to-end p99 latency objective.")
	f.DurationVar(&cfg.StartupDelay, "startup-delay", cfg.StartupDelay, "Time a new pod takes to serve.")
	f.Float64Var(&cfg.StartupJitter, "startup-jitter", cfg.StartupJitter, "Each pod's start-up delay varies uniformly within ± this fraction.")
	f.DurationVar(&cfg.WarmUp, "warm-up", cfg.WarmUp, "Unscored time at the trace's first-minute rate before it starts.")
	f.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "A request that waited longer in a queue is dropped.")
	f.Int32Var(&opts.HPATarget, "hpa-target", opts.HPATarget, "CPU HPAs' target utilisation (%), also the load per pod the forecasting policies size for.")
	f.Float64Var(&opts.Foresight.Headroom, "headroom", opts.Foresight.Headroom, "Foresight's headroom above the forecast peak.")
	f.Float64Var(&opts.Foresight.Quantile, "quantile", opts.Foresight.Quantile, "Forecast quantile Foresight sizes from (0.5: the point forecast).")
	f.StringVar((*string)(&opts.Sizing), "sizing", string(opts.Sizing), `How Foresight and Holt-Winters size services: "queueing" (each pod an M/M/c server, the SLO shared along the call path) or "capacity" (a fixed capacity per pod at --hpa-target).`)
	f.BoolVar(&opts.Foresight.Burst.Enabled, "burst", opts.Foresight.Burst.Enabled, "Foresight sizes for each service's recent short-window peaks within a step (policy.burst), read from requests_peak at --peak-resolution.")
	f.DurationVar(&cfg.PeakResolution, "peak-resolution", cfg.PeakResolution, "Window of the short request rates requests_peak reports the largest of per step: a Prometheus scrape interval.")
	f.BoolVar(&opts.Foresight.AdaptiveUpper, "adaptive-upper", opts.Foresight.AdaptiveUpper, "Foresight sizes from an upper bound that follows its recent errors (policy.adaptiveUpper) instead of the model's own quantile.")
	f.BoolVar(&opts.SLOFeedback, "slo-feedback", opts.SLOFeedback, "Foresight tunes its headroom from the entry service's p99 against --slo (policy.slo), starting at --headroom.")
	f.BoolVar(&opts.Sweep, "sweep", false, "Also sweep the CPU HPA's target and Foresight's headroom and quantile (the cost–violation frontier).")
	f.StringVar(&format, "format", "table", "Output format: table or json.")
	f.StringVar(&outDir, "out", "", "Directory to write report.json into (none when empty).")
	f.StringVar(&historyOut, "export-history", "", "Write the simulated metrics of the one policy run (warm-up included) as a wide-format CSV at a 30 s step, what `foresight train --data` reads: train a model on this application's own history, then pass it with --model.")
	f.StringVar(&plotsDir, "plots", "", "Directory to write PNG plots into: load, replicas and latency over time per policy, and with --sweep the cost–violation frontier.")
	return cmd
}

// simulateProgress draws a progress bar over the simulations on a terminal
// and logs one line per simulation otherwise.
func simulateProgress(w io.Writer) (func(done, total int, name string), func()) {
	f, isFile := w.(*os.File)
	if !isFile || !term.IsTerminal(int(f.Fd())) {
		return func(done, total int, name string) {
			if name != "" {
				slog.Info("simulating", "policy", name, "run", done+1, "of", total)
			}
		}, func() {}
	}
	var bar *progressbar.ProgressBar
	return func(done, total int, name string) {
			if bar == nil {
				bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(w), progressbar.OptionShowCount(),
					progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
			}
			bar.Describe(name)
			_ = bar.Set(done)
		}, func() {
			if bar != nil {
				_ = bar.Finish()
			}
		}
}

// historyStep is the step of an exported history: the forecasting step.
const historyStep = 30 * time.Second

// exportHistory writes run's metrics, as the simulated Prometheus serves
// them (simulator.Source), to path in the wide CSV format training reads.
func exportHistory(ctx context.Context, path string, run *simulator.Run) error {
	if run == nil {
		return errors.New("no run to export")
	}
	names := make([]string, len(run.Config.App.Services))
	for i, svc := range run.Config.App.Services {
		names[i] = svc.Name
	}
	start, end := simulator.At(int(historyStep/time.Second)), simulator.At(run.Second())
	data, err := (&simulator.Source{Run: run}).Fetch(ctx, source.Query{
		Services: names, Features: source.AllFeatures, Start: start, End: end, Step: historyStep,
	})
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := widecsv.Write(f, data, start, end, historyStep); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
