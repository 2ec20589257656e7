// Package conformal makes a model's upper forecast adapt to its recent
// errors: per service and horizon step, the upper bound is the median
// forecast plus the chosen quantile of the median's errors over the model's
// last forecasts (split-conformal prediction on a moving window, so it
// follows a change of regime within the window's length).
//
// A model's own upper quantile comes from training: on a period wilder than
// the one it was calibrated on it covers too little, on a calmer one it costs
// too much, and scaling it with the window's volatility makes it wide exactly
// when one noisy step inflates that. The errors the model actually made on
// this service, lately, are the honest measure. Until a service has
// MinResiduals of them (after a restart, or for a new service) the model's
// own upper forecast stands, and Upper says so.
package conformal

import (
	"fmt"
	"math"
	"slices"
)

// Defaults: 240 forecasts are two hours at a 30 s step, long enough for a
// stable 90th percentile (24 errors above it) and short enough to follow a
// new regime within the hour; 60 is the least that places a 90th percentile
// between six errors.
const (
	DefaultWindow       = 240
	DefaultMinResiduals = 60
)

// Tracker holds the recent median forecasts and their errors. Steps are
// integer indexes of the model's step (for instance Unix time / step): the
// forecast made at origin o for horizon step h (0-based) is of step o+h+1.
// A Tracker is not safe for concurrent use.
type Tracker struct {
	services, horizon int
	quantile          float64
	window, minimum   int
	// forecasts[o] are the median forecasts made at origin o, row-major
	// [horizon, services]; only the last horizon origins are kept.
	forecasts map[int64][]float64
	// residuals[h][n] is a ring of the latest actual − median errors.
	residuals [][]ring
	observed  int64 // the newest step observed so far
	started   bool
}

// ring holds the latest errors in arrival order (to know which one a new
// error replaces) and the same errors sorted (so a quantile is one index:
// serve asks for one per service, horizon step and feature every cycle).
type ring struct {
	v      []float64
	sorted []float64
	next   int
	full   bool
}

func (r *ring) add(v float64, size int) {
	if r.v == nil {
		r.v, r.sorted = make([]float64, size), make([]float64, 0, size)
	}
	if r.full {
		old := r.v[r.next]
		i, _ := slices.BinarySearch(r.sorted, old)
		r.sorted = slices.Delete(r.sorted, i, i+1)
	}
	i, _ := slices.BinarySearch(r.sorted, v)
	r.sorted = slices.Insert(r.sorted, i, v)
	r.v[r.next] = v
	r.next = (r.next + 1) % size
	r.full = r.full || r.next == 0
}

// len returns how many errors the ring holds.
func (r *ring) len() int { return len(r.sorted) }

// quantile is the empirical q-quantile of the errors (the smallest with at
// least a q share at or below it), the conformal choice.
func (r *ring) quantile(q float64) float64 {
	k := int(math.Ceil(q*float64(len(r.sorted)))) - 1
	return r.sorted[min(max(k, 0), len(r.sorted)-1)]
}

// New returns a tracker for a model with the given services and horizon,
// giving upper bounds at quantile q from the errors of the last window
// forecasts once minimum of them exist.
func New(services, horizon int, q float64, window, minimum int) (*Tracker, error) {
	switch {
	case services < 1 || horizon < 1:
		return nil, fmt.Errorf("conformal: %d services and horizon %d: need at least one of each", services, horizon)
	case !(q > 0.5 && q < 1):
		return nil, fmt.Errorf("conformal: quantile %v: must be in (0.5, 1)", q)
	case minimum < 1 || window < minimum:
		return nil, fmt.Errorf("conformal: window %d and minimum %d: need 1 ≤ minimum ≤ window", window, minimum)
	}
	t := &Tracker{services: services, horizon: horizon, quantile: q, window: window, minimum: minimum,
		forecasts: make(map[int64][]float64, horizon+1), residuals: make([][]ring, horizon)}
	for h := range t.residuals {
		t.residuals[h] = make([]ring, services)
	}
	return t, nil
}

// Record keeps the median forecasts made at origin (row-major [horizon,
// services], the unit of the actuals). A second record for the same origin
// replaces the first; a non-finite value is never scored.
func (t *Tracker) Record(origin int64, p50 []float64) error {
	if len(p50) != t.horizon*t.services {
		return fmt.Errorf("conformal: %d forecasts at origin %d, want %d", len(p50), origin, t.horizon*t.services)
	}
	t.forecasts[origin] = slices.Clone(p50)
	for o := range t.forecasts {
		if o < origin-int64(t.horizon) {
			delete(t.forecasts, o) // every step it forecast has been observed
		}
	}
	return nil
}

// Observe scores the actuals of one step (one per service, the unit of the
// forecasts) against every kept forecast of that step. NaN marks a service
// without a real sample at that step (a filled gap is not an error of the
// model). A step at or before one already observed is ignored, so feeding
// overlapping windows is safe.
func (t *Tracker) Observe(step int64, actual []float64) error {
	if len(actual) != t.services {
		return fmt.Errorf("conformal: %d actuals at step %d, want %d", len(actual), step, t.services)
	}
	if t.started && step <= t.observed {
		return nil
	}
	t.started, t.observed = true, step
	for h := range t.horizon {
		f, ok := t.forecasts[step-int64(h)-1]
		if !ok {
			continue
		}
		for n, a := range actual {
			p := f[h*t.services+n]
			if e := a - p; !math.IsNaN(e) && !math.IsInf(e, 0) {
				t.residuals[h][n].add(e, t.window)
			}
		}
	}
	return nil
}

// Upper returns the upper bound of service n at horizon step h given the
// median forecast p50: p50 plus the quantile of the recent errors, never
// below p50. ok is false while fewer than the minimum errors exist, or when
// the bound is not finite; the caller then keeps the model's own upper
// forecast.
func (t *Tracker) Upper(h, n int, p50 float64) (upper float64, ok bool) {
	if h < 0 || h >= t.horizon || n < 0 || n >= t.services {
		return 0, false
	}
	r := &t.residuals[h][n]
	if r.len() < t.minimum {
		return 0, false
	}
	upper = p50 + math.Max(0, r.quantile(t.quantile))
	if math.IsNaN(upper) || math.IsInf(upper, 0) {
		return 0, false // p50 itself, or the sum, is not a number to publish
	}
	return upper, true
}

// Errors returns how many recent errors service n has at horizon step h.
func (t *Tracker) Errors(h, n int) int {
	if h < 0 || h >= t.horizon || n < 0 || n >= t.services {
		return 0
	}
	return t.residuals[h][n].len()
}
