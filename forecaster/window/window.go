// Package window turns raw samples from a source into a model's input tensor:
// it aligns samples to the model's step, fills the gaps (and counts them), and
// normalises with the statistics stored in the model's manifest.
package window

import (
	"fmt"
	"math"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
)

// DefaultMaxCarry is how long a last observed value may stand in for missing
// samples. It equals Prometheus's default lookback delta, so a window built
// from raw samples matches what a Prometheus range query returns.
const DefaultMaxCarry = 5 * time.Minute

// Spec says what window a model needs.
type Spec struct {
	Services []string
	Features []source.Feature
	Length   int           // steps in the window (T)
	Step     time.Duration // time between steps
	Norm     map[source.Feature]model.Stats
	// MaxCarry bounds carry-forward imputation; samples older than this
	// before a step never fill it.
	MaxCarry time.Duration
}

// SpecFor returns the window a model's manifest asks for.
func SpecFor(m *model.Manifest) Spec {
	return Spec{
		Services: m.Services,
		Features: m.Features,
		Length:   m.Window,
		Step:     time.Duration(m.Step),
		Norm:     m.Normalization,
		MaxCarry: DefaultMaxCarry,
	}
}

// Query returns the source query that covers the window ending at end,
// reaching back MaxCarry further so gaps at the window's start can be filled.
func (s Spec) Query(namespace string, end time.Time) source.Query {
	first := end.Add(-time.Duration(s.Length-1) * s.Step)
	return source.Query{
		Namespace: namespace,
		Services:  s.Services,
		Features:  s.Features,
		Start:     first.Add(-s.MaxCarry),
		End:       end,
		Step:      s.Step,
	}
}

// Window is the prepared input for one forecast.
type Window struct {
	End  time.Time
	Spec Spec
	// Values[f][t][n] are the aligned, imputed values in the source's units.
	Values [][][]float64
	// Observed[f][t][n] is true where the step had a sample of its own
	// (false where Values holds a filled gap).
	Observed [][][]bool
	// Input is the normalised tensor, row-major [len(Features)*Length, len(Services)].
	Input []float64
	// Carried[f][n] counts the steps of feature f, service n that had no
	// sample of their own and took the last one within MaxCarry. A
	// Prometheus range query does the same by itself (its lookback), so these
	// gaps are invisible with that source; they are counted but trusted.
	Carried [][]int
	// Imputed[f][n] counts the steps filled without a recent sample
	// (back-filled, carried beyond MaxCarry, or the training mean).
	Imputed [][]int
	// NoData[f][n] is true when the series had no usable sample at all and
	// was filled with the training mean: a forecast for that service would
	// be a guess.
	NoData [][]bool
	// Clipped[f][n] counts the steps whose normalised value lay beyond
	// ±MaxAbsInput and was clipped to it.
	Clipped [][]int
	// LastSample[f][n] is the time of the newest usable sample at or before
	// End (zero when there was none): how fresh the input really is, which
	// carried and filled steps hide.
	LastSample [][]time.Time
}

// MaxAbsInput bounds a normalised input: a million training standard
// deviations is far beyond any real load change, yet small enough that the
// model's float32 arithmetic stays finite. A sample beyond it (a broken
// exporter reporting 1e41 req/s) is clipped, so it cannot overflow the model
// and turn every other service's forecast into NaN; the caller is told
// through Clipped.
const MaxAbsInput = 1e6

// Build aligns data to the steps of the window ending at end, fills gaps and
// normalises. Gap filling, in order: the latest sample at or before the step
// and no older than MaxCarry (Prometheus's own lookback behaviour); else the
// first sample after the step within the window (the window starts in a
// gap); else the training mean, flagged in NoData.
func Build(spec Spec, data source.Data, end time.Time) (*Window, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	nF, nT, nN := len(spec.Features), spec.Length, len(spec.Services)
	w := &Window{
		End:        end,
		Spec:       spec,
		Values:     make([][][]float64, nF),
		Observed:   make([][][]bool, nF),
		Input:      make([]float64, nF*nT*nN),
		Carried:    make([][]int, nF),
		Imputed:    make([][]int, nF),
		NoData:     make([][]bool, nF),
		Clipped:    make([][]int, nF),
		LastSample: make([][]time.Time, nF),
	}
	steps := make([]time.Time, nT)
	for t := range nT {
		steps[t] = end.Add(-time.Duration(nT-1-t) * spec.Step)
	}
	for f, feat := range spec.Features {
		st := spec.Norm[feat]
		w.Values[f] = make([][]float64, nT)
		w.Observed[f] = make([][]bool, nT)
		for t := range nT {
			w.Values[f][t] = make([]float64, nN)
			w.Observed[f][t] = make([]bool, nN)
		}
		w.Carried[f] = make([]int, nN)
		w.Imputed[f] = make([]int, nN)
		w.NoData[f] = make([]bool, nN)
		w.Clipped[f] = make([]int, nN)
		w.LastSample[f] = make([]time.Time, nN)
		for n, svc := range spec.Services {
			col, own, carried, imputed, ok := alignSeries(data[feat][svc], steps, spec.Step, spec.MaxCarry)
			w.LastSample[f][n] = lastUsable(data[feat][svc], end)
			if !ok {
				w.NoData[f][n] = true
				carried, imputed = 0, nT
				for t := range col {
					col[t] = st.Mean[n]
				}
			}
			w.Carried[f][n], w.Imputed[f][n] = carried, imputed
			for t, v := range col {
				w.Values[f][t][n] = v
				w.Observed[f][t][n] = own[t]
				z := (v - st.Mean[n]) / st.Std[n]
				if math.Abs(z) > MaxAbsInput {
					z = math.Copysign(MaxAbsInput, z)
					w.Clipped[f][n]++
				}
				w.Input[(f*nT+t)*nN+n] = z
			}
		}
	}
	return w, nil
}

// alignSeries picks one value per step: the sample in (step-Step, step] that
// is nearest to the step. It returns the values, how many steps were carried
// from a recent sample and how many were otherwise filled, and false when no
// step could be filled at all.
func alignSeries(samples []source.Sample, steps []time.Time, step, maxCarry time.Duration) ([]float64, []bool, int, int, bool) {
	out := make([]float64, len(steps))
	own := make([]bool, len(steps))
	carried := 0
	// Samples arrive time-ordered from every source; walk them once.
	i := 0
	var last source.Sample
	haveLast := false
	for t, at := range steps {
		for i < len(samples) && !samples[i].Time.After(at) {
			if isUsable(samples[i].Value) {
				last, haveLast = samples[i], true
			}
			i++
		}
		switch {
		case haveLast && at.Sub(last.Time) < step:
			out[t], own[t] = last.Value, true
		case haveLast && at.Sub(last.Time) <= maxCarry:
			out[t] = last.Value
			carried++
		default:
			out[t] = math.NaN()
		}
	}
	imputed := -carried
	for t := range out {
		if !own[t] {
			imputed++
		}
	}
	// Back-fill a leading gap from the first value the window has.
	first := -1
	for t, v := range out {
		if !math.IsNaN(v) {
			first = t
			break
		}
	}
	if first < 0 {
		return out, own, carried, imputed, false
	}
	for t := 0; t < first; t++ {
		out[t] = out[first]
	}
	// A gap longer than maxCarry in the middle: carry the last filled value on,
	// so the model sees a flat line rather than a hole.
	for t := first + 1; t < len(out); t++ {
		if math.IsNaN(out[t]) {
			out[t] = out[t-1]
		}
	}
	return out, own, carried, imputed, true
}

func isUsable(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// lastUsable is the time of the newest usable sample at or before end.
// Samples after end (a clock running ahead) do not make the input fresher.
func lastUsable(samples []source.Sample, end time.Time) time.Time {
	for i := len(samples) - 1; i >= 0; i-- {
		if !samples[i].Time.After(end) && isUsable(samples[i].Value) {
			return samples[i].Time
		}
	}
	return time.Time{}
}

func (s Spec) validate() error {
	switch {
	case len(s.Services) == 0:
		return fmt.Errorf("window spec: no services")
	case len(s.Features) == 0:
		return fmt.Errorf("window spec: no features")
	case s.Length < 1:
		return fmt.Errorf("window spec: length %d must be at least 1", s.Length)
	case s.Step <= 0:
		return fmt.Errorf("window spec: step %v must be positive", s.Step)
	}
	for _, f := range s.Features {
		st, ok := s.Norm[f]
		if !ok || len(st.Mean) != len(s.Services) || len(st.Std) != len(s.Services) {
			return fmt.Errorf("window spec: normalisation statistics for feature %s do not cover the %d services", f, len(s.Services))
		}
	}
	return nil
}

// FeatureMissingFraction returns, for feature f of service n, the share of
// imputed steps (1 when the series had no data at all). Carried steps do not
// count: Prometheus would have returned them as samples.
func (w *Window) FeatureMissingFraction(f, n int) float64 {
	if w.NoData[f][n] {
		return 1
	}
	return float64(w.Imputed[f][n]) / float64(w.Spec.Length)
}

// Latest returns the newest (aligned, possibly imputed) value of feature f for service n.
func (w *Window) Latest(f, n int) float64 { return w.Values[f][w.Spec.Length-1][n] }

// FeatureIndex returns the position of feat in the window, or -1.
func (w *Window) FeatureIndex(feat source.Feature) int {
	for i, f := range w.Spec.Features {
		if f == feat {
			return i
		}
	}
	return -1
}
