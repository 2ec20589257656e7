package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/foresightscale/foresight/forecaster/backtest"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/textlimit"
)

func newBacktestCommand() *cobra.Command {
	opts := backtest.DefaultOptions()
	var modelDir, dataPath, format, plotsDir string
	var plotHorizon int
	var horizons bool
	cmd := &cobra.Command{
		Use:   "backtest",
		Short: "Judge a model against classical baselines by rolling-origin evaluation on a recorded CSV",
		Long: `Fit the classical baselines (last value, seasonal naive, Holt-Winters, linear
regression, FFT, autoregression) on the first part of a recorded wide-format CSV,
then forecast the request rate from every origin of the rest with them and with
the model (reported as "gnn"), and score every method on the same points.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("--format: want table or json, got %q", format)
			}
			if dataPath == "" {
				return fmt.Errorf("--data: a CSV file is required")
			}
			m, err := loadModel(modelDir)
			if err != nil {
				return err
			}
			if plotsDir != "" && (plotHorizon < 0 || plotHorizon > m.Manifest().Horizon) {
				return fmt.Errorf("--plot-horizon: %d is outside 1..%d (the model's horizon)", plotHorizon, m.Manifest().Horizon)
			}
			start := time.Now()
			res, err := backtest.Evaluate(cmd.Context(), m, dataPath, opts)
			if err != nil {
				return err
			}
			if ig := res.Report.IgnoredServices; len(ig) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "ignored %d services of the file that model %s does not know (retrain to cover them): %s\n",
					len(ig), m.Manifest().Name, textlimit.Cut(strings.Join(ig, ", "), 500))
			}
			if format == "json" {
				err = res.Report.WriteJSON(cmd.OutOrStdout()) // with horizons, always
			} else {
				err = res.Report.WriteTable(cmd.OutOrStdout())
				if err == nil && horizons {
					err = res.Report.WriteHorizonTable(cmd.OutOrStdout())
				}
			}
			if err != nil {
				return err
			}
			if plotsDir != "" {
				h := plotHorizon
				if h == 0 {
					h = m.Manifest().Horizon
				}
				files, err := res.WritePlots(plotsDir, h)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d plots into %s\n", len(files), plotsDir)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "backtest took %v\n", time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelDir, "model", "", "Model directory (model.onnx + manifest.json); default: the built-in demo model.")
	f.StringVar(&dataPath, "data", "", "Wide-format CSV to evaluate on (required).")
	f.StringVar(&format, "format", "table", "Output format: table or json.")
	f.Float64Var(&opts.Split, "split", opts.Split, "Share of the history used for training; the rest is the test part.")
	f.IntVar(&opts.Stride, "stride", opts.Stride, "Evaluate every N-th origin of the test part.")
	f.IntVar(&opts.Season, "season", opts.Season, "Seasonal period in steps for the seasonal baselines; 0 detects it per service.")
	f.Var(featureFlag{&opts.Target}, "target", "Feature scored: requests or cpu.")
	f.BoolVar(&horizons, "horizons", false, "Also print every method's MAE at every step ahead, the winner of each step, and the model's MAE over the best classical method's (the JSON report always has them, under horizons).")
	f.StringVar(&plotsDir, "plots", "", "Directory to write PNG plots into (none when empty).")
	f.IntVar(&plotHorizon, "plot-horizon", 0, "Horizon (steps) of the forecast-vs-actual plots; default: the model's horizon.")
	return cmd
}

// featureFlag is a --target value: a feature name.
type featureFlag struct{ f *source.Feature }

func (v featureFlag) String() string {
	if v.f == nil {
		return ""
	}
	return string(*v.f)
}

func (v featureFlag) Set(s string) error {
	f, err := source.ParseFeature(s)
	if err != nil {
		return err
	}
	*v.f = f
	return nil
}

func (featureFlag) Type() string { return "feature" }
