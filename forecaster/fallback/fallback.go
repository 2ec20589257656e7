// Package fallback forecasts a service that no model covers yet (added to
// the application after the model was trained): its last observed value,
// and an upper bound from the largest rises its recent history shows. It
// needs no training, so a new service is sized from the first cycle that
// sees it; dashboards tell it apart by its model name.
package fallback

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Name is the model name fallback predictions are published with.
const Name = "fallback"

// Forecast is the model-free forecast of one series over a lead time.
type Forecast struct {
	// Last is the newest observed value: the point forecast.
	Last float64
	// Upper is Last plus the chosen quantile of the rises over the lead
	// time seen in the history (never below Last).
	Upper float64
	// Rises is how many lead-time changes the quantile was taken from.
	Rises int
}

// ErrNoData reports a history without a single observed value.
var ErrNoData = errors.New("no observed value in the history")

// Predict forecasts a series from its history (oldest first; NaN, ±Inf and
// negative values are missing) over leadSteps steps, with the q-quantile
// of the history's leadSteps-step changes as the upper margin. With too
// little history for changes that long, the single-step changes are
// scaled up linearly (a conservative guess for a random walk).
func Predict(history []float64, leadSteps int, q float64) (Forecast, error) {
	if leadSteps < 1 {
		return Forecast{}, fmt.Errorf("lead of %d steps: must be at least 1", leadSteps)
	}
	if !(q > 0 && q < 1) {
		return Forecast{}, fmt.Errorf("quantile %v: must be in (0,1)", q)
	}
	last := math.NaN()
	for i := len(history) - 1; i >= 0; i-- {
		if observed(history[i]) {
			last = history[i]
			break
		}
	}
	if math.IsNaN(last) {
		return Forecast{}, ErrNoData
	}
	rises := changes(history, leadSteps, 1)
	if len(rises) < minChanges {
		rises = changes(history, 1, float64(leadSteps))
	}
	f := Forecast{Last: last, Upper: last, Rises: len(rises)}
	if len(rises) > 0 {
		slices.Sort(rises)
		// Nearest rank: the smallest change with at least q of them at or below it.
		margin := rises[int(math.Ceil(q*float64(len(rises))))-1]
		f.Upper = last + math.Max(0, margin)
	}
	if math.IsInf(f.Upper, 0) {
		return Forecast{}, fmt.Errorf("upper bound of %v plus its rises is not finite", last)
	}
	return f, nil
}

// minChanges is how many lead-time changes make a quantile worth taking.
const minChanges = 3

// changes returns scale × (x[t+lag] − x[t]) for every pair of observed values.
func changes(x []float64, lag int, scale float64) []float64 {
	if lag >= len(x) { // also keeps t+lag from overflowing
		return nil
	}
	var out []float64
	for t := 0; t+lag < len(x); t++ {
		if observed(x[t]) && observed(x[t+lag]) {
			out = append(out, scale*(x[t+lag]-x[t]))
		}
	}
	return out
}

func observed(v float64) bool { return v >= 0 && !math.IsInf(v, 0) }
