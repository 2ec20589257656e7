package window

import (
	"fmt"
	"slices"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
)

// Season is the lagged window a model's seasonal context reads
// (model.Seasonal): its seasonal features over the window and the forecast
// horizon as they were one period earlier. It is built by Build like any
// window, so the lagged rows are aligned, imputed, normalised and clipped
// exactly as the window's own.
type Season struct {
	// Spec is the lagged window: the seasonal features, in the manifest's
	// order, over Window+Horizon steps.
	Spec Spec
	// Lag is how far the lagged window's last step lies before the current
	// window's: PeriodSteps-Horizon steps.
	Lag time.Duration
}

// SeasonFor returns the lagged window a model's manifest asks for, and false
// for a model without a seasonal context.
func SeasonFor(m *model.Manifest) (Season, bool) {
	if m.Seasonal == nil {
		return Season{}, false
	}
	step := time.Duration(m.Step)
	return Season{
		Spec: Spec{
			Services: m.Services,
			Features: m.Seasonal.Features,
			Length:   m.Window + m.Horizon,
			Step:     step,
			Norm:     m.Normalization,
			MaxCarry: DefaultMaxCarry,
		},
		Lag: time.Duration(m.Seasonal.PeriodSteps-m.Horizon) * step,
	}, true
}

// End returns the lagged window's last step for the window ending at end.
func (s Season) End(end time.Time) time.Time { return end.Add(-s.Lag) }

// Query returns the source query for the lagged window of the window ending
// at end; like Spec.Query it reaches back MaxCarry before the first step.
func (s Season) Query(namespace string, end time.Time) source.Query {
	return s.Spec.Query(namespace, s.End(end))
}

// SeasonalInput is a model's whole input: a window's input followed by the
// seasonal rows.
type SeasonalInput struct {
	// Input is row-major [len(Features)*Length + len(seasonal features)*
	// Season.Spec.Length, len(Services)]: the window's Input, then one block
	// per seasonal feature (the layout of model.Manifest.InputRows).
	Input []float64
	// Present[f][n] is true where the history of seasonal feature f
	// (Season.Spec.Features order) of service n reaches back to the lagged
	// window's first step: a usable sample at or before it, no older than
	// MaxCarry (what the window would carry, and a Prometheus range query
	// returns by its lookback). Gaps later in the block are then filled as
	// the window fills its own. Where it is false the whole block holds the
	// window's last normalised value instead, which the network reads as "no
	// seasonal information". This is the training rule
	// (dataset.SeasonalInput): an origin whose lagged block starts before the
	// history has no season, even when the history begins within the block.
	Present [][]bool
	// Lagged is the lagged window as built (nil data gives one without any
	// sample): its gaps and clipping are counted there.
	Lagged *Window
}

// Append builds the lagged window from data, the answer to s.Query for
// win.End (nil when the fetch failed: every block is then "no season"), and
// returns win's input followed by the seasonal rows (see
// SeasonalInput.Present for when a block has its season). win must have been
// built for a spec that reads every seasonal feature. win.Input is not
// modified.
func (s Season) Append(win *Window, data source.Data) (*SeasonalInput, error) {
	lagged, err := Build(s.Spec, data, s.End(win.End))
	if err != nil {
		return nil, fmt.Errorf("seasonal context: %w", err)
	}
	nT, nN, rows := win.Spec.Length, len(win.Spec.Services), s.Spec.Length
	if !slices.Equal(s.Spec.Services, win.Spec.Services) {
		return nil, fmt.Errorf("seasonal context: services %v differ from the window's", s.Spec.Services)
	}
	in := &SeasonalInput{
		Input:   make([]float64, len(win.Input), len(win.Input)+len(s.Spec.Features)*rows*nN),
		Present: make([][]bool, len(s.Spec.Features)),
		Lagged:  lagged,
	}
	copy(in.Input, win.Input)
	first := lagged.End.Add(-time.Duration(rows-1) * s.Spec.Step)
	for f, feat := range s.Spec.Features {
		wf := win.FeatureIndex(feat)
		if wf < 0 {
			return nil, fmt.Errorf("seasonal context: feature %s is not read by the window", feat)
		}
		in.Present[f] = make([]bool, nN)
		block := make([]float64, rows*nN)
		for n := range nN {
			in.Present[f][n] = reaches(data[feat][s.Spec.Services[n]], first, s.Spec.MaxCarry)
			last := win.Input[(wf*nT+nT-1)*nN+n]
			for r := range rows {
				v := last
				if in.Present[f][n] {
					v = lagged.Input[(f*rows+r)*nN+n]
				}
				block[r*nN+n] = v
			}
		}
		in.Input = append(in.Input, block...)
	}
	return in, nil
}

// reaches says whether samples hold a usable value at or before at, no older
// than maxCarry: the step at can be filled from the series' own past.
func reaches(samples []source.Sample, at time.Time, maxCarry time.Duration) bool {
	last := lastUsable(samples, at)
	return !last.IsZero() && at.Sub(last) <= maxCarry
}
