package baseline

import (
	"fmt"

	"github.com/foresightscale/foresight/models/dataset"
)

// SeasonalNaive forecasts each step as the value one period before it (whole
// periods back when the horizon exceeds one period). A service without a
// detected season falls back to its last value, which is the seasonal naive
// forecast of an infinitely long period.
type SeasonalNaive struct {
	// Period in steps; 0 detects it per service on the training part.
	Period int

	periods []int
	fitted  string
}

// Name implements Method.
func (*SeasonalNaive) Name() string { return SeasonalNaiveName }

// Fit implements Method: it settles each service's period.
func (m *SeasonalNaive) Fit(ds *dataset.Dataset, target, trainEnd int) error {
	if err := checkFit(ds, target, trainEnd, 2); err != nil {
		return fmt.Errorf("%s: %w", SeasonalNaiveName, err)
	}
	ps, err := periods(ds, target, trainEnd, m.Period)
	if err != nil {
		return fmt.Errorf("%s: %w", SeasonalNaiveName, err)
	}
	m.periods, m.fitted = ps, describePeriods(ds, ps)
	return nil
}

// Describe implements Describer.
func (m *SeasonalNaive) Describe() string { return m.fitted }

// Forecast implements Method.
func (m *SeasonalNaive) Forecast(ds *dataset.Dataset, target, last, horizon int) ([][]float64, error) {
	if m.periods == nil {
		return nil, fmt.Errorf("%s: Forecast before Fit", SeasonalNaiveName)
	}
	if err := checkForecast(ds, target, last, horizon, 1); err != nil {
		return nil, fmt.Errorf("%s: %w", SeasonalNaiveName, err)
	}
	out := newForecast(horizon, len(ds.Services))
	for n, p := range m.periods {
		for h := 1; h <= horizon; h++ {
			src := last
			if p > 0 {
				// The same phase, as many whole periods back as needed to be
				// at or before the origin.
				src = last + h - p*((h+p-1)/p)
				if src < 0 {
					return nil, fmt.Errorf("%s: service %s: origin step %d has less than one period (%d steps) of history", SeasonalNaiveName, ds.Services[n], last, p)
				}
			}
			out[h-1][n] = ds.Raw[target][src][n]
		}
	}
	return out, nil
}
