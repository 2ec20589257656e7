// Package backtest judges a forecasting model against classical baselines by
// rolling-origin evaluation: every method is fitted on the training part of
// a history, then forecasts from every origin of the test part (the same
// origins and horizons for all), each forecast using only the history up to
// its origin. Errors are measured only against observed actuals (filled
// gaps are counted, never scored) and reported per service × horizon and
// pooled over services (every observed point weighs the same), as JSON for
// scripts, a table for people, and plots.
package backtest

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/foresightscale/foresight/forecaster/baseline"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/models/dataset"
)

// P90 is the upper quantile a model's headroom is judged at.
const P90 = 0.9

// Config says what to evaluate and how.
type Config struct {
	// Target is the feature scored (the request rate).
	Target source.Feature
	// Window and Horizon are the model's: origins start once a window of
	// history exists and forecasts run Horizon steps.
	Window, Horizon int
	// TrainEnd splits the dataset: methods learn from steps [0, TrainEnd),
	// forecasts are scored on steps TrainEnd and later.
	TrainEnd int
	// Stride evaluates every Stride-th origin (1: every origin).
	Stride int
	// Methods are evaluated in this order; names must be unique. A
	// baseline.QuantileMethod with a P90 output of Target also gets its
	// P90 judged (and the last-value-plus-headroom baseline beside it).
	Methods []baseline.Method
	// ModelName names the model file in the report.
	ModelName string
}

// Result is a finished backtest: the report and every forecast behind it
// (for plots).
type Result struct {
	Report  *Report
	Dataset *dataset.Dataset
	Target  int // feature index of Config.Target
	Config  Config
	// Origins are the last input steps of the evaluated windows.
	Origins []int
	// Forecasts[m][o][h][n] is method m's forecast from origin o, h+1
	// steps ahead, for service n (clipped at 0).
	Forecasts [][][][]float64
	// P90[o][h][n] is the quantile-0.9 forecast of the method at P90Method,
	// or nil.
	P90       [][][]float64
	P90Method int
}

// Run fits every method and evaluates it from every test origin. It stops
// at the first method that fails, naming it: a backtest that silently drops
// a method is not a comparison.
func Run(ctx context.Context, ds *dataset.Dataset, cfg Config) (*Result, error) {
	target, err := cfg.validate(ds)
	if err != nil {
		return nil, err
	}
	var origins []int
	for i, o := range ds.Origins(cfg.Window, cfg.Horizon, cfg.TrainEnd-1, ds.Steps) {
		if i%cfg.Stride == 0 {
			origins = append(origins, o)
		}
	}
	if len(origins) == 0 {
		return nil, fmt.Errorf("backtest: the test part (steps %d..%d) holds no window of %d steps followed by %d to forecast",
			cfg.TrainEnd, ds.Steps-1, cfg.Window, cfg.Horizon)
	}
	res := &Result{Dataset: ds, Target: target, Config: cfg, Origins: origins, P90Method: -1}
	for _, m := range cfg.Methods {
		start := time.Now()
		if err := m.Fit(ds, target, cfg.TrainEnd); err != nil {
			return nil, fmt.Errorf("backtest: fitting %s: %w", m.Name(), err)
		}
		slog.Debug("backtest: fitted", "method", m.Name(), "took", time.Since(start), "fitted", describe(m))
	}
	clipped := make([]int, len(cfg.Methods))
	for i, m := range cfg.Methods {
		start := time.Now()
		fc, n, err := forecastAll(ctx, ds, target, origins, cfg.Horizon, m.Name(), m.Forecast)
		if err != nil {
			return nil, err
		}
		res.Forecasts = append(res.Forecasts, fc)
		clipped[i] = n
		if qm, ok := m.(baseline.QuantileMethod); ok && res.P90 == nil && qm.HasQuantile(ds, target, P90) {
			quantile := func(ds *dataset.Dataset, target, last, horizon int) ([][]float64, error) {
				return qm.ForecastQuantile(ds, target, last, horizon, P90)
			}
			res.P90, _, err = forecastAll(ctx, ds, target, origins, cfg.Horizon, m.Name()+" P90", quantile)
			if err != nil {
				return nil, err
			}
			res.P90Method = i
		}
		slog.Debug("backtest: forecast", "method", m.Name(), "origins", len(origins), "took", time.Since(start))
	}
	res.Report = res.report(clipped)
	return res, nil
}

func (cfg Config) validate(ds *dataset.Dataset) (int, error) {
	if ds == nil {
		return 0, fmt.Errorf("backtest: no dataset")
	}
	target := ds.FeatureIndex(cfg.Target)
	switch {
	case target < 0:
		return 0, fmt.Errorf("backtest: target feature %q is not in the dataset (%v)", cfg.Target, ds.Features)
	case cfg.Window < 1 || cfg.Horizon < 1:
		return 0, fmt.Errorf("backtest: window (%d) and horizon (%d) must be at least 1 step", cfg.Window, cfg.Horizon)
	case cfg.TrainEnd < cfg.Window || cfg.TrainEnd >= ds.Steps:
		return 0, fmt.Errorf("backtest: training part of %d steps: need at least the window (%d) and less than the %d steps of data", cfg.TrainEnd, cfg.Window, ds.Steps)
	case cfg.Stride < 1:
		return 0, fmt.Errorf("backtest: stride must be at least 1, got %d", cfg.Stride)
	case len(cfg.Methods) == 0:
		return 0, fmt.Errorf("backtest: no methods to evaluate")
	}
	seen := make(map[string]bool, len(cfg.Methods))
	for _, m := range cfg.Methods {
		if seen[m.Name()] {
			return 0, fmt.Errorf("backtest: method %q listed twice", m.Name())
		}
		seen[m.Name()] = true
	}
	return target, nil
}

type forecastFunc func(ds *dataset.Dataset, target, last, horizon int) ([][]float64, error)

// forecastAll runs one method from every origin. Every forecast must be
// [horizon][services] and finite; a negative one is clipped to 0 (no
// feature is negative, and the serving policy never publishes one) and
// counted.
func forecastAll(ctx context.Context, ds *dataset.Dataset, target int, origins []int, horizon int, name string, forecast forecastFunc) ([][][]float64, int, error) {
	out := make([][][]float64, len(origins))
	clipped := 0
	for o, last := range origins {
		if err := ctx.Err(); err != nil {
			return nil, 0, fmt.Errorf("backtest: %s: %w", name, err)
		}
		fc, err := forecast(ds, target, last, horizon)
		if err != nil {
			return nil, 0, fmt.Errorf("backtest: %s from step %d: %w", name, last, err)
		}
		if len(fc) != horizon {
			return nil, 0, fmt.Errorf("backtest: %s from step %d: %d horizon steps, want %d", name, last, len(fc), horizon)
		}
		for h, row := range fc {
			if len(row) != len(ds.Services) {
				return nil, 0, fmt.Errorf("backtest: %s from step %d: %d services at h=%d, want %d", name, last, len(row), h+1, len(ds.Services))
			}
			for n, v := range row {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return nil, 0, fmt.Errorf("backtest: %s from step %d: forecast for %s at h=%d is %v", name, last, ds.Services[n], h+1, v)
				}
				if v < 0 {
					row[n] = 0
					clipped++
				}
			}
		}
		out[o] = fc
	}
	return out, clipped, nil
}

func describe(m baseline.Method) string {
	if d, ok := m.(baseline.Describer); ok {
		return d.Describe()
	}
	return ""
}

// actual returns the target at step t for service n and whether it was observed.
func (r *Result) actual(t, n int) (float64, bool) {
	return r.Dataset.Raw[r.Target][t][n], r.Dataset.Observed[r.Target][t][n]
}

// scoreMethod sums the errors of forecasts fc per service and horizon.
func (r *Result) scoreMethod(fc [][][]float64) [][]errorSums {
	sums := make([][]errorSums, len(r.Dataset.Services))
	for n := range sums {
		sums[n] = make([]errorSums, r.Config.Horizon)
	}
	for o, last := range r.Origins {
		for h := range r.Config.Horizon {
			for n := range r.Dataset.Services {
				if a, ok := r.actual(last+h+1, n); ok {
					sums[n][h].add(fc[o][h][n], a)
				}
			}
		}
	}
	return sums
}

// MethodNames returns the evaluated methods' names in order.
func (r *Result) MethodNames() []string {
	names := make([]string, len(r.Config.Methods))
	for i, m := range r.Config.Methods {
		names[i] = m.Name()
	}
	return names
}

// method returns the index of the named method, or -1.
func (r *Result) method(name string) int { return slices.Index(r.MethodNames(), name) }
