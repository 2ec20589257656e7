// Package dataset turns a metrics history into what training and backtests
// consume: the whole range aligned to the model's step with the same window
// code that serves the model (one preprocessing path), per-step masks of what
// was really observed, normalisation statistics from the training part only,
// and model inputs/targets for any window.
package dataset

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/window"
)

// Dataset is an aligned history: Raw[f][t][n] for feature f, step t (Start +
// t·Step) and service n.
type Dataset struct {
	Services []string
	Features []source.Feature
	Start    time.Time
	Step     time.Duration
	Steps    int
	// Raw holds the aligned values in source units, gaps filled as the
	// serving window fills them.
	Raw [][][]float64
	// Observed[f][t][n] is false where Raw holds a filled gap: errors are
	// never measured against a filled value.
	Observed [][][]bool
	// NoData[f][n] is true when the series had no sample at all (BuildPartial
	// only): Raw holds the fill value 0 and nothing is observed.
	NoData [][]bool
	// Norm are the statistics inputs are normalised with.
	Norm map[source.Feature]model.Stats
	// normalised[f][t][n] = (Raw - mean) / std.
	normalised [][][]float64
}

// Build aligns data between start and end (inclusive) to step. Every feature
// of every service must have at least one sample: a model cannot learn a
// series it never saw.
func Build(data source.Data, services []string, features []source.Feature, start, end time.Time, step time.Duration) (*Dataset, error) {
	d, err := BuildPartial(data, services, features, start, end, step)
	if err != nil {
		return nil, err
	}
	var errs []error
	for fi, f := range features {
		for n, svc := range services {
			if d.NoData[fi][n] {
				errs = append(errs, fmt.Errorf("no %s data for service %s between %s and %s", f, svc, start.Format(time.RFC3339), end.Format(time.RFC3339)))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	return d, nil
}

// BuildPartial is Build for histories where some services lack some
// features (an idle service has no latency; some never report a request
// rate): such a series is filled with 0, never observed, and flagged in
// NoData, so a model can be trained without it instead of refusing the
// whole application.
func BuildPartial(data source.Data, services []string, features []source.Feature, start, end time.Time, step time.Duration) (*Dataset, error) {
	if step <= 0 || !end.After(start) {
		return nil, fmt.Errorf("dataset: range %v..%v at step %v is empty", start, end, step)
	}
	steps := int(end.Sub(start)/step) + 1
	unit := make(map[source.Feature]model.Stats, len(features))
	for _, f := range features {
		unit[f] = model.Stats{Mean: make([]float64, len(services)), Std: constant(len(services), 1)}
	}
	w, err := window.Build(window.Spec{
		Services: services, Features: features, Length: steps, Step: step,
		Norm: unit, MaxCarry: window.DefaultMaxCarry,
	}, data, start.Add(time.Duration(steps-1)*step))
	if err != nil {
		return nil, fmt.Errorf("dataset: aligning history: %w", err)
	}
	return &Dataset{
		Services: services, Features: features, Start: start, Step: step, Steps: steps,
		Raw: w.Values, Observed: w.Observed, NoData: w.NoData,
	}, nil
}

// FitNormalization computes per-feature, per-service mean and standard
// deviation over steps [0, upTo) — the training part only, so nothing of the
// held-out future leaks into the inputs — and normalises with them. A
// constant series gets std 1 so normalising cannot divide by zero.
func (d *Dataset) FitNormalization(upTo int) error {
	if upTo < 2 || upTo > d.Steps {
		return fmt.Errorf("dataset: statistics need 2..%d steps, got %d", d.Steps, upTo)
	}
	norm := make(map[source.Feature]model.Stats, len(d.Features))
	for fi, f := range d.Features {
		st := model.Stats{Mean: make([]float64, len(d.Services)), Std: make([]float64, len(d.Services))}
		for n := range d.Services {
			var sum, sq float64
			for t := range upTo {
				sum += d.Raw[fi][t][n]
			}
			mean := sum / float64(upTo)
			for t := range upTo {
				sq += (d.Raw[fi][t][n] - mean) * (d.Raw[fi][t][n] - mean)
			}
			std := math.Sqrt(sq / float64(upTo))
			if std < 1e-9*math.Max(1, math.Abs(mean)) {
				std = 1
			}
			st.Mean[n], st.Std[n] = mean, std
		}
		norm[f] = st
	}
	return d.Normalize(norm)
}

// Normalize uses given statistics (a trained model's) for the inputs.
func (d *Dataset) Normalize(norm map[source.Feature]model.Stats) error {
	out := make([][][]float64, len(d.Features))
	for fi, f := range d.Features {
		st, ok := norm[f]
		if !ok || len(st.Mean) != len(d.Services) || len(st.Std) != len(d.Services) {
			return fmt.Errorf("dataset: statistics for %s do not cover the %d services", f, len(d.Services))
		}
		out[fi] = make([][]float64, d.Steps)
		for t := range d.Steps {
			row := make([]float64, len(d.Services))
			for n := range row {
				row[n] = (d.Raw[fi][t][n] - st.Mean[n]) / st.Std[n]
			}
			out[fi][t] = row
		}
	}
	d.Norm, d.normalised = norm, out
	return nil
}

// Normalised returns the normalised value of feature index f at step t for
// service n. It panics before FitNormalization or Normalize.
func (d *Dataset) Normalised(f, t, n int) float64 { return d.normalised[f][t][n] }

// Input returns the model input for the window whose last step is last:
// row-major [len(Features)·window, len(Services)], normalised, oldest first
// (the layout of model.Manifest).
func (d *Dataset) Input(last, window int) []float64 {
	nN := len(d.Services)
	x := make([]float64, len(d.Features)*window*nN)
	for f := range d.Features {
		for t := range window {
			copy(x[(f*window+t)*nN:], d.normalised[f][last-window+1+t])
		}
	}
	return x
}

// SeasonalInput is Input followed by the seasonal rows a model with a
// seasonal context reads (model.Seasonal): for each of s.Features, the
// window+horizon steps ending horizon steps after last−period. A block has
// its season when the series was observed at the block's first step or
// within window.DefaultMaxCarry before it, the rule the serving window
// applies to the same samples; otherwise it holds the window's last value.
// With s nil it is Input.
func (d *Dataset) SeasonalInput(last, window, horizon int, s *model.Seasonal) []float64 {
	x := d.Input(last, window)
	if s == nil {
		return x
	}
	nN, rows := len(d.Services), window+horizon
	first := last - s.PeriodSteps - window + 1 // the lagged block's first step
	for _, feat := range s.Features {
		f := d.FeatureIndex(feat)
		block := make([]float64, rows*nN)
		for n := range nN {
			present := d.reaches(f, first, n)
			for r := range rows {
				if present {
					block[r*nN+n] = d.normalised[f][first+r][n]
				} else {
					block[r*nN+n] = d.normalised[f][last][n]
				}
			}
		}
		x = append(x, block...)
	}
	return x
}

// reaches reports whether feature f of service n was observed at step t or
// at most window.DefaultMaxCarry before it.
func (d *Dataset) reaches(f, t, n int) bool {
	carry := int(window.DefaultMaxCarry / d.Step)
	for u := t; u >= 0 && u >= t-carry; u-- {
		if d.Observed[f][u][n] {
			return true
		}
	}
	return false
}

// FeatureIndex returns the position of f, or -1.
func (d *Dataset) FeatureIndex(f source.Feature) int {
	for i, g := range d.Features {
		if g == f {
			return i
		}
	}
	return -1
}

// Origins returns the last-step indices of every window of the given length
// that has horizon steps after it, between steps from and to (exclusive).
func (d *Dataset) Origins(window, horizon, from, to int) []int {
	var out []int
	for last := max(from, window-1); last+horizon < min(to, d.Steps); last++ {
		out = append(out, last)
	}
	return out
}

func constant(n int, v float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = v
	}
	return s
}
