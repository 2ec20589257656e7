// Package baseline holds the forecasting methods a model is judged against:
// the classical predictors autoscalers actually run (last value, seasonal
// naive, Holt-Winters, a least-squares line, FFT, per-service
// autoregression) and the model under test itself, all behind Method so the
// backtest treats them alike. One file per method; adding a baseline is one
// new file.
//
// Every method reads raw (source-unit) values from a dataset.Dataset and
// forecasts in raw units. Fit sees only the training part; Forecast sees
// only the history up to and including its origin, so nothing of the future
// leaks into a forecast.
package baseline

import (
	"fmt"

	"github.com/foresightscale/foresight/models/dataset"
)

// Method is one forecasting method.
type Method interface {
	// Name identifies the method in reports ("last_value", "gnn", ...).
	Name() string
	// Fit learns from steps [0, trainEnd) of feature index target (ds.Raw,
	// ds.Observed).
	Fit(ds *dataset.Dataset, target, trainEnd int) error
	// Forecast returns [horizon][services] raw-unit forecasts of steps
	// last+1 … last+horizon from the history up to and including step last.
	Forecast(ds *dataset.Dataset, target, last, horizon int) ([][]float64, error)
}

// QuantileMethod is a Method that also forecasts quantiles (the model under
// test, when its file has a quantile output).
type QuantileMethod interface {
	Method
	// HasQuantile reports whether the method forecasts quantile q of the
	// feature index target.
	HasQuantile(ds *dataset.Dataset, target int, q float64) bool
	// ForecastQuantile is Forecast for quantile q.
	ForecastQuantile(ds *dataset.Dataset, target, last, horizon int, q float64) ([][]float64, error)
}

// Describer is a Method that can say what it learnt in Fit (periods,
// smoothing parameters), for reports.
type Describer interface {
	Describe() string
}

// The names of the baselines, as they appear in reports.
const (
	LastValueName        = "last_value"
	SeasonalNaiveName    = "seasonal_naive"
	HoltWintersName      = "holt_winters"
	LinearRegressionName = "linear_regression"
	FFTName              = "fft"
	AutoregressionName   = "autoregression"
	ModelName            = "gnn"
)

// Options configures the classical baselines.
type Options struct {
	// Window is the model's input window in steps: what linear_regression
	// fits its line on and autoregression regresses on.
	Window int
	// Season is the seasonal period in steps for seasonal_naive,
	// holt_winters and fft; 0 detects it per service on the training part
	// (see DetectPeriod).
	Season int
}

// Classical returns every classical baseline, in report order.
func Classical(opts Options) ([]Method, error) {
	if opts.Window < 1 {
		return nil, fmt.Errorf("baselines: window must be at least 1 step, got %d", opts.Window)
	}
	if opts.Season < 0 {
		return nil, fmt.Errorf("baselines: season must be 0 (detect) or a period in steps, got %d", opts.Season)
	}
	return []Method{
		&LastValue{},
		&SeasonalNaive{Period: opts.Season},
		&HoltWinters{Period: opts.Season},
		&LinearRegression{Window: opts.Window},
		&FFT{Period: opts.Season},
		&Autoregression{Order: opts.Window},
	}, nil
}

// checkFit validates Fit's arguments.
func checkFit(ds *dataset.Dataset, target, trainEnd, minSteps int) error {
	if err := checkTarget(ds, target); err != nil {
		return err
	}
	if trainEnd < minSteps || trainEnd > ds.Steps {
		return fmt.Errorf("training part of %d steps: need %d..%d", trainEnd, minSteps, ds.Steps)
	}
	return nil
}

// checkForecast validates Forecast's arguments.
func checkForecast(ds *dataset.Dataset, target, last, horizon, minHistory int) error {
	if err := checkTarget(ds, target); err != nil {
		return err
	}
	if horizon < 1 {
		return fmt.Errorf("horizon must be at least 1 step, got %d", horizon)
	}
	if last < minHistory-1 || last >= ds.Steps {
		return fmt.Errorf("origin step %d: need %d steps of history and an origin before step %d", last, minHistory, ds.Steps)
	}
	return nil
}

func checkTarget(ds *dataset.Dataset, target int) error {
	if ds == nil {
		return fmt.Errorf("no dataset")
	}
	if target < 0 || target >= len(ds.Features) {
		return fmt.Errorf("target feature index %d out of range (dataset has %d features)", target, len(ds.Features))
	}
	return nil
}

// column returns feature target of service n over steps [from, to).
func column(ds *dataset.Dataset, target, n, from, to int) []float64 {
	out := make([]float64, to-from)
	for t := from; t < to; t++ {
		out[t-from] = ds.Raw[target][t][n]
	}
	return out
}

// newForecast allocates a [horizon][services] forecast.
func newForecast(horizon, services int) [][]float64 {
	out := make([][]float64, horizon)
	for h := range out {
		out[h] = make([]float64, services)
	}
	return out
}
