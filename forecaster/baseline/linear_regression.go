package baseline

import (
	"fmt"

	"github.com/foresightscale/foresight/models/dataset"
)

// LinearRegression fits a least-squares line to the last Window steps and
// extrapolates it: what predictive-horizontal-pod-autoscaler users run.
type LinearRegression struct {
	// Window is the number of steps the line is fitted on (at least 2).
	Window int
}

// Name implements Method.
func (*LinearRegression) Name() string { return LinearRegressionName }

// Fit implements Method; the line is refitted at every origin.
func (m *LinearRegression) Fit(ds *dataset.Dataset, target, trainEnd int) error {
	if m.Window < 2 {
		return fmt.Errorf("%s: window must be at least 2 steps, got %d", LinearRegressionName, m.Window)
	}
	if err := checkFit(ds, target, trainEnd, m.Window); err != nil {
		return fmt.Errorf("%s: %w", LinearRegressionName, err)
	}
	return nil
}

// Describe implements Describer.
func (m *LinearRegression) Describe() string { return fmt.Sprintf("window %d", m.Window) }

// Forecast implements Method.
func (m *LinearRegression) Forecast(ds *dataset.Dataset, target, last, horizon int) ([][]float64, error) {
	if m.Window < 2 {
		return nil, fmt.Errorf("%s: window must be at least 2 steps, got %d", LinearRegressionName, m.Window)
	}
	if err := checkForecast(ds, target, last, horizon, m.Window); err != nil {
		return nil, fmt.Errorf("%s: %w", LinearRegressionName, err)
	}
	out := newForecast(horizon, len(ds.Services))
	for n := range ds.Services {
		a, b := fitLine(column(ds, target, n, last-m.Window+1, last+1))
		for h := 1; h <= horizon; h++ {
			out[h-1][n] = a + b*float64(m.Window-1+h)
		}
	}
	return out, nil
}
