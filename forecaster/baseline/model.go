package baseline

import (
	"fmt"
	"slices"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/models/dataset"
)

// Model runs the model under test through its Session, named "gnn" in
// reports whatever the file holds. The model is already trained: Fit only
// checks that the dataset is laid out as the model expects and normalises
// its inputs with the model's own statistics (they are part of the model).
// The dataset must be built with the manifest's services and features, in
// its order. A Model is not safe for concurrent use (its Session is not).
type Model struct {
	manifest *model.Manifest
	session  *model.Session

	// The last run, so the point and quantile forecasts of one origin cost
	// one Predict.
	cachedLast int
	cachedOut  map[string][]float64
}

// NewModel prepares a session of m.
func NewModel(m *model.Model) (*Model, error) {
	s, err := m.NewSession()
	if err != nil {
		return nil, fmt.Errorf("%s: model %s: %w", ModelName, m.Manifest().Name, err)
	}
	return &Model{manifest: m.Manifest(), session: s, cachedLast: -1}, nil
}

// Name implements Method.
func (*Model) Name() string { return ModelName }

// Describe implements Describer.
func (m *Model) Describe() string {
	return fmt.Sprintf("model %s version %s, window %d, horizon %d", m.manifest.Name, m.manifest.Version, m.manifest.Window, m.manifest.Horizon)
}

// Manifest returns the model's manifest (shared: do not modify).
func (m *Model) Manifest() *model.Manifest { return m.manifest }

// Fit implements Method.
func (m *Model) Fit(ds *dataset.Dataset, target, trainEnd int) error {
	if err := checkFit(ds, target, trainEnd, 1); err != nil {
		return fmt.Errorf("%s: %w", ModelName, err)
	}
	man := m.manifest
	if !slices.Equal(ds.Services, man.Services) {
		return fmt.Errorf("%s: dataset services %v, model %s wants %v in that order", ModelName, ds.Services, man.Name, man.Services)
	}
	if !slices.Equal(ds.Features, man.Features) {
		return fmt.Errorf("%s: dataset features %v, model %s wants %v in that order", ModelName, ds.Features, man.Name, man.Features)
	}
	if _, ok := man.Output(ds.Features[target], 0.5); !ok {
		return fmt.Errorf("%s: model %s has no %s output at quantile 0.5", ModelName, man.Name, ds.Features[target])
	}
	if err := ds.Normalize(man.Normalization); err != nil {
		return fmt.Errorf("%s: normalising with model %s's statistics: %w", ModelName, man.Name, err)
	}
	m.cachedLast, m.cachedOut = -1, nil
	return nil
}

// Forecast implements Method: the model's median (quantile 0.5) output.
func (m *Model) Forecast(ds *dataset.Dataset, target, last, horizon int) ([][]float64, error) {
	return m.ForecastQuantile(ds, target, last, horizon, 0.5)
}

// HasQuantile implements QuantileMethod.
func (m *Model) HasQuantile(ds *dataset.Dataset, target int, q float64) bool {
	if checkTarget(ds, target) != nil {
		return false
	}
	_, ok := m.manifest.Output(ds.Features[target], q)
	return ok
}

// ForecastQuantile implements QuantileMethod.
func (m *Model) ForecastQuantile(ds *dataset.Dataset, target, last, horizon int, q float64) ([][]float64, error) {
	man := m.manifest
	if err := checkForecast(ds, target, last, horizon, man.Window); err != nil {
		return nil, fmt.Errorf("%s: %w", ModelName, err)
	}
	if horizon > man.Horizon {
		return nil, fmt.Errorf("%s: horizon %d is beyond model %s's %d steps", ModelName, horizon, man.Name, man.Horizon)
	}
	feature := ds.Features[target]
	o, ok := man.Output(feature, q)
	if !ok {
		return nil, fmt.Errorf("%s: model %s has no %s output at quantile %v", ModelName, man.Name, feature, q)
	}
	if ds.Norm == nil {
		return nil, fmt.Errorf("%s: Forecast before Fit", ModelName)
	}
	if m.cachedLast != last || m.cachedOut == nil {
		out, err := m.session.Predict(ds.SeasonalInput(last, man.Window, man.Horizon, man.Seasonal))
		if err != nil {
			return nil, fmt.Errorf("%s: origin step %d: %w", ModelName, last, err)
		}
		m.cachedLast, m.cachedOut = last, out
	}
	// Outputs are normalised with the statistics of the feature they forecast.
	st := man.Normalization[feature]
	values := m.cachedOut[o.Name]
	nN := len(man.Services)
	out := newForecast(horizon, nN)
	for h := range horizon {
		for n := range nN {
			out[h][n] = values[h*nN+n]*st.Std[n] + st.Mean[n]
		}
	}
	return out, nil
}
