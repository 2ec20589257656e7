package forecaster

import (
	"log/slog"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foresightscale/foresight/forecaster/snapshot"
)

// AccuracyWindow is how many scored forecasts the rolling mean of
// foresight_forecast_absolute_error covers, per service and step. A plain
// mean over a fixed count reads simply ("the last 20 forecasts 3 steps
// ahead were off by 4 req/s on average") and forgets a bad spell after
// exactly 20 scores; an exponentially weighted mean would never quite
// forget and its effective window is harder to state on a dashboard.
const AccuracyWindow = 20

// accuracy scores past request-rate forecasts against what was later
// observed. Each cycle forecasts the request rate at end+k*step (k=1..H,
// Prediction.RequestsByStep) and observes the rate at end
// (Prediction.ObservedRequests); when a later cycle observes a time a kept
// forecast targeted, the absolute error for that step k is recorded.
//
// Memory is bounded: at most H forecasts per service (one per origin step,
// as older ones have no step left to score) and AccuracyWindow errors per
// service and step. Not safe for concurrent use: Cycle serialises it.
type accuracy struct {
	step     time.Duration
	horizon  int
	window   int
	absError *prometheus.GaugeVec
	evals    *prometheus.CounterVec
	log      *slog.Logger

	forecasts map[string][]pastForecast // per service, by origin, oldest first
	errors    map[stepKey]*rollingMean
}

// pastForecast is one cycle's request-rate forecast for one service.
type pastForecast struct {
	origin time.Time // the window end the forecast started from
	values []float64 // values[k-1] is the forecast for origin + k*step
	scored []bool    // scored[k-1]: step k has been matched with an observation
}

type stepKey struct {
	service string
	step    int
}

func newAccuracy(step time.Duration, horizon, window int, m *metrics, log *slog.Logger) *accuracy {
	return &accuracy{
		step:      step,
		horizon:   horizon,
		window:    window,
		absError:  m.forecastAbsError,
		evals:     m.forecastEvaluations,
		log:       log,
		forecasts: make(map[string][]pastForecast),
		errors:    make(map[stepKey]*rollingMean),
	}
}

// observe scores the kept forecasts against the observations of the cycle
// whose window ends at end, then keeps this cycle's forecasts. Held services
// are not in fresh: their window was not trusted, so it is no observation.
func (a *accuracy) observe(end time.Time, fresh map[string]snapshot.Prediction) {
	for svc, p := range fresh {
		a.score(svc, end, p.ObservedRequests)
		a.keep(svc, end, p.RequestsByStep)
	}
}

// score matches the observation at t with every kept forecast of svc that
// targeted t (within half a step) and has not been scored at that step. The
// first observation within half a step wins: the forecaster's window ends are
// whole steps, so with it there is exactly one.
func (a *accuracy) score(svc string, t time.Time, observed float64) {
	if !usable(observed) {
		// Unknown: leave the steps unscored so a later cycle within half a
		// step (the loop may run more often than the step) can score them.
		return
	}
	kept := a.forecasts[svc]
	for i := range kept {
		f := &kept[i]
		k, ok := a.stepAhead(f.origin, t)
		if !ok || k > len(f.values) || f.scored[k-1] {
			continue
		}
		f.scored[k-1] = true
		forecast := f.values[k-1]
		if !usable(forecast) {
			a.log.Debug("not scoring an unusable forecast", "service", svc, "step", k, "forecast", forecast)
			continue
		}
		a.record(svc, k, math.Abs(forecast-observed))
	}
}

// stepAhead returns k when t is within half a step of origin + k*step, k ≥ 1.
func (a *accuracy) stepAhead(origin, t time.Time) (int, bool) {
	d := t.Sub(origin)
	if a.step <= 0 || d < a.step/2 {
		return 0, false
	}
	// Round to the nearest step: half a step either side of every target.
	k := int((d + a.step/2) / a.step)
	return k, true
}

func (a *accuracy) record(svc string, k int, absErr float64) {
	key := stepKey{svc, k}
	r := a.errors[key]
	if r == nil {
		r = newRollingMean(a.window)
		a.errors[key] = r
	}
	r.add(absErr)
	labels := []string{svc, strconv.Itoa(k)}
	a.absError.WithLabelValues(labels...).Set(r.mean())
	a.evals.WithLabelValues(labels...).Inc()
}

// keep stores a forecast made at origin, drops the ones that can no longer
// be scored, and caps the service's list at the horizon.
func (a *accuracy) keep(svc string, origin time.Time, values []float64) {
	kept := make([]pastForecast, 0, len(a.forecasts[svc])+1)
	for _, f := range a.forecasts[svc] {
		if !f.done(origin, a.step) {
			kept = append(kept, f)
		}
	}
	if len(values) > 0 {
		f := pastForecast{origin: origin, values: slices.Clone(values), scored: make([]bool, len(values))}
		i, same := a.findOrigin(kept, origin)
		switch {
		case same:
			// A later cycle in the same step (the loop runs more often than
			// the step) replaces the forecast: it saw at least as much data.
			// Steps already scored stay scored, so none counts twice.
			for k, s := range kept[i].scored {
				if s && k < len(f.scored) {
					f.scored[k] = true
				}
			}
			kept[i] = f
		default:
			kept = slices.Insert(kept, i, f)
		}
	}
	if n := len(kept) - a.horizon; n > 0 {
		kept = kept[n:] // the oldest: fewest steps left to score
	}
	if len(kept) == 0 {
		delete(a.forecasts, svc)
		return
	}
	a.forecasts[svc] = kept
}

// findOrigin returns where a forecast made at origin goes in kept (sorted by
// origin), and whether kept already holds one within half a step of it.
func (a *accuracy) findOrigin(kept []pastForecast, origin time.Time) (int, bool) {
	for i, f := range kept {
		d := origin.Sub(f.origin)
		if d.Abs() < a.step/2 {
			return i, true
		}
		if d < 0 {
			return i, false
		}
	}
	return len(kept), false
}

// done reports whether no observation from now on can score f: every step
// is scored, or now is past the last target by more than half a step.
func (f *pastForecast) done(now time.Time, step time.Duration) bool {
	if !slices.Contains(f.scored, false) {
		return true
	}
	last := f.origin.Add(time.Duration(len(f.values)) * step)
	return now.Sub(last) > step/2
}

func usable(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 }

// rollingMean is the mean of the last n values added.
type rollingMean struct {
	values []float64 // ring buffer
	next   int
	full   bool
}

func newRollingMean(n int) *rollingMean { return &rollingMean{values: make([]float64, n)} }

func (r *rollingMean) add(v float64) {
	r.values[r.next] = v
	r.next = (r.next + 1) % len(r.values)
	if r.next == 0 {
		r.full = true
	}
}

// mean sums afresh each time: n is small, and a running sum would drift.
func (r *rollingMean) mean() float64 {
	n := r.next
	if r.full {
		n = len(r.values)
	}
	var sum float64
	for _, v := range r.values[:n] {
		sum += v
	}
	return sum / float64(n)
}
