package baseline

import (
	"fmt"
	"math"
	"slices"

	"github.com/foresightscale/foresight/forecaster/conformal"
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

	// Outputs of the latest origins, so the point and quantile forecasts of
	// one origin, and the replay of the adaptive upper bound, cost one
	// Predict per origin.
	outputs map[int]map[string][]float64

	// adaptive makes upper quantiles the median plus the recent errors'
	// quantile (conformal.Tracker), as serve publishes them; the tracker
	// replays every origin up to the one asked, in order.
	adaptive  bool
	tracker   *conformal.Tracker
	tracked   int // the last origin the tracker has seen
	trackedOf int // the target it tracks
}

// NewModel prepares a session of m.
func NewModel(m *model.Model) (*Model, error) {
	s, err := m.NewSession()
	if err != nil {
		return nil, fmt.Errorf("%s: model %s: %w", ModelName, m.Manifest().Name, err)
	}
	return &Model{manifest: m.Manifest(), session: s, adaptive: true}, nil
}

// SetAdaptiveUpper chooses between the adaptive upper bound serve publishes
// by default (true) and the model's own upper quantile output (false).
func (m *Model) SetAdaptiveUpper(on bool) { m.adaptive, m.tracker = on, nil }

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
	m.outputs, m.tracker = nil, nil
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
	if q > 0.5 && m.adaptive {
		if _, ok := man.Output(feature, 0.5); ok {
			return m.adaptiveUpper(ds, target, last, horizon, q)
		}
	}
	return m.denormalised(ds, last, o, horizon)
}

// denormalised returns output o at origin last in the feature's units.
func (m *Model) denormalised(ds *dataset.Dataset, last int, o model.Output, horizon int) ([][]float64, error) {
	outs, err := m.predict(ds, last)
	if err != nil {
		return nil, err
	}
	// Outputs are normalised with the statistics of the feature they forecast.
	st := m.manifest.Normalization[o.Feature]
	values := outs[o.Name]
	nN := len(m.manifest.Services)
	out := newForecast(horizon, nN)
	for h := range horizon {
		for n := range nN {
			out[h][n] = values[h*nN+n]*st.Std[n] + st.Mean[n]
		}
	}
	return out, nil
}

// predict runs the model at origin last, once.
func (m *Model) predict(ds *dataset.Dataset, last int) (map[string][]float64, error) {
	if out, ok := m.outputs[last]; ok {
		return out, nil
	}
	man := m.manifest
	out, err := m.session.Predict(ds.SeasonalInput(last, man.Window, man.Horizon, man.Seasonal))
	if err != nil {
		return nil, fmt.Errorf("%s: origin step %d: %w", ModelName, last, err)
	}
	if m.outputs == nil {
		m.outputs = make(map[int]map[string][]float64)
	}
	for o := range m.outputs {
		if o < last-man.Horizon-1 {
			delete(m.outputs, o) // the tracker has scored it
		}
	}
	m.outputs[last] = out
	return out, nil
}

// adaptiveUpper is the upper quantile serve publishes: the median plus the
// q-quantile of the median's errors over the model's recent forecasts
// (forecaster/conformal), the model's own output while too few exist. The
// tracker sees every origin before last, in order, from far enough back to
// fill its window, as a serve running since then would have.
func (m *Model) adaptiveUpper(ds *dataset.Dataset, target, last, horizon int, q float64) ([][]float64, error) {
	man := m.manifest
	feature := ds.Features[target]
	point, _ := man.Output(feature, 0.5)
	upper, _ := man.Output(feature, q)
	nN, nH := len(man.Services), man.Horizon
	from := m.tracked + 1
	if m.tracker == nil || m.trackedOf != target || last <= m.tracked {
		t, err := conformal.New(nN, nH, q, conformal.DefaultWindow, conformal.DefaultMinResiduals)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ModelName, err)
		}
		m.tracker, m.trackedOf = t, target
		from = max(man.Window-1, last-conformal.DefaultWindow-nH-1)
	}
	actual := make([]float64, nN)
	for o := from; o <= last; o++ {
		for n := range nN {
			actual[n] = math.NaN()
			if ds.Observed[target][o][n] {
				actual[n] = ds.Raw[target][o][n]
			}
		}
		if err := m.tracker.Observe(int64(o), actual); err != nil {
			return nil, fmt.Errorf("%s: %w", ModelName, err)
		}
		p50, err := m.denormalised(ds, o, point, nH)
		if err != nil {
			return nil, err
		}
		if err := m.tracker.Record(int64(o), slices.Concat(p50...)); err != nil {
			return nil, fmt.Errorf("%s: %w", ModelName, err)
		}
		m.tracked = o
	}
	p50, err := m.denormalised(ds, last, point, horizon)
	if err != nil {
		return nil, err
	}
	out, err := m.denormalised(ds, last, upper, horizon)
	if err != nil {
		return nil, err
	}
	for h := range horizon {
		for n := range nN {
			if u, ok := m.tracker.Upper(h, n, p50[h][n]); ok {
				out[h][n] = u
			}
		}
	}
	return out, nil
}
