package baseline

import (
	"fmt"

	"github.com/foresightscale/foresight/models/dataset"
)

// LastValue forecasts every future step as the value at the origin: what a
// reactive autoscaler implicitly assumes.
type LastValue struct{}

// Name implements Method.
func (*LastValue) Name() string { return LastValueName }

// Fit implements Method; there is nothing to learn.
func (*LastValue) Fit(ds *dataset.Dataset, target, trainEnd int) error {
	if err := checkFit(ds, target, trainEnd, 1); err != nil {
		return fmt.Errorf("%s: %w", LastValueName, err)
	}
	return nil
}

// Forecast implements Method.
func (*LastValue) Forecast(ds *dataset.Dataset, target, last, horizon int) ([][]float64, error) {
	if err := checkForecast(ds, target, last, horizon, 1); err != nil {
		return nil, fmt.Errorf("%s: %w", LastValueName, err)
	}
	out := newForecast(horizon, len(ds.Services))
	for h := range out {
		copy(out[h], ds.Raw[target][last])
	}
	return out, nil
}
