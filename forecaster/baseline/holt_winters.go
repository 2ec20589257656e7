package baseline

import (
	"fmt"
	"math"
	"strings"

	"github.com/foresightscale/foresight/models/dataset"
)

// HoltWinters is additive-trend, additive-season exponential smoothing. The
// smoothing parameters are fitted per service on the training part by
// minimising the one-step-ahead squared error (grid, then compass search); the
// filter then runs forward through the whole history, its state updated
// with every new observation (rolling origin), and forecasts h steps from
// the state at the origin. A service without a season gets Holt's linear
// trend method.
type HoltWinters struct {
	// Period in steps; 0 detects it per service on the training part.
	Period int

	fits  []hwFit
	state []hwState // per service, advanced lazily by Forecast
}

// The smoothing-parameter search: a coarse grid, then a compass search
// around the best grid point, every parameter kept in [hwMinParam, hwMaxParam].
var hwGrid = []float64{0.01, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9, 0.99}

const (
	hwMinParam       = 0.001
	hwMaxParam       = 0.999
	hwRefineSteps    = 40 // compass-search iterations (each up to 2·dims evaluations)
	hwRefineMinDelta = 1e-4
)

// hwFit is what Fit learnt for one service.
type hwFit struct {
	alpha, beta, gamma float64
	period             int
	init               hwState // state before step 0
	initEnd            int     // steps the initial state was estimated from
}

// hwState is the filter after step pos: level, trend and, with a season,
// the latest seasonal term of each phase (index t mod period).
type hwState struct {
	pos          int
	level, trend float64
	season       []float64
}

func (s hwState) clone() hwState {
	s.season = append([]float64(nil), s.season...)
	return s
}

// Name implements Method.
func (*HoltWinters) Name() string { return HoltWintersName }

// Fit implements Method.
func (m *HoltWinters) Fit(ds *dataset.Dataset, target, trainEnd int) error {
	if err := checkFit(ds, target, trainEnd, 4); err != nil {
		return fmt.Errorf("%s: %w", HoltWintersName, err)
	}
	ps, err := periods(ds, target, trainEnd, m.Period)
	if err != nil {
		return fmt.Errorf("%s: %w", HoltWintersName, err)
	}
	m.fits = make([]hwFit, len(ds.Services))
	m.state = make([]hwState, len(ds.Services))
	for n, svc := range ds.Services {
		x := column(ds, target, n, 0, trainEnd)
		observed := make([]bool, trainEnd)
		for t := range observed {
			observed[t] = ds.Observed[target][t][n]
		}
		f, err := fitHoltWinters(x, observed, ps[n])
		if err != nil {
			return fmt.Errorf("%s: service %s: %w", HoltWintersName, svc, err)
		}
		m.fits[n], m.state[n] = f, f.init.clone()
	}
	return nil
}

// Describe implements Describer.
func (m *HoltWinters) Describe() string {
	parts := make([]string, len(m.fits))
	for n, f := range m.fits {
		if f.period == 0 {
			parts[n] = fmt.Sprintf("[holt α=%.3g β=%.3g]", f.alpha, f.beta)
		} else {
			parts[n] = fmt.Sprintf("[period %d α=%.3g β=%.3g γ=%.3g]", f.period, f.alpha, f.beta, f.gamma)
		}
	}
	return strings.Join(parts, " ")
}

// Forecast implements Method.
func (m *HoltWinters) Forecast(ds *dataset.Dataset, target, last, horizon int) ([][]float64, error) {
	if m.fits == nil {
		return nil, fmt.Errorf("%s: Forecast before Fit", HoltWintersName)
	}
	if len(m.fits) != len(ds.Services) {
		return nil, fmt.Errorf("%s: fitted on %d services, dataset has %d", HoltWintersName, len(m.fits), len(ds.Services))
	}
	if err := checkForecast(ds, target, last, horizon, 1); err != nil {
		return nil, fmt.Errorf("%s: %w", HoltWintersName, err)
	}
	out := newForecast(horizon, len(ds.Services))
	for n := range ds.Services {
		f := &m.fits[n]
		if last < f.initEnd-1 {
			// The initial state was estimated from steps after this origin.
			return nil, fmt.Errorf("%s: service %s: origin step %d is inside the %d steps the initial state came from", HoltWintersName, ds.Services[n], last, f.initEnd)
		}
		s := &m.state[n]
		if s.pos > last {
			*s = f.init.clone() // origins went back in time: rerun from the start
		}
		for t := s.pos + 1; t <= last; t++ {
			f.update(s, t, ds.Raw[target][t][n])
		}
		for h := 1; h <= horizon; h++ {
			out[h-1][n] = f.predict(s, h)
		}
	}
	return out, nil
}

// predict is the forecast h steps after the state's position.
func (f *hwFit) predict(s *hwState, h int) float64 {
	y := s.level + float64(h)*s.trend
	if f.period > 0 {
		y += s.season[(s.pos+h)%f.period]
	}
	return y
}

// update advances the state by the observation x at step t.
func (f *hwFit) update(s *hwState, t int, x float64) {
	prevLevel := s.level
	if f.period == 0 {
		s.level = f.alpha*x + (1-f.alpha)*(prevLevel+s.trend)
		s.trend = f.beta*(s.level-prevLevel) + (1-f.beta)*s.trend
	} else {
		i := t % f.period
		prevSeason := s.season[i]
		s.level = f.alpha*(x-prevSeason) + (1-f.alpha)*(prevLevel+s.trend)
		s.trend = f.beta*(s.level-prevLevel) + (1-f.beta)*s.trend
		s.season[i] = f.gamma*(x-s.level) + (1-f.gamma)*prevSeason
	}
	s.pos = t
}

// fitHoltWinters estimates the initial state from the first periods of x
// and the smoothing parameters from the one-step-ahead errors on the
// observed steps of x.
func fitHoltWinters(x []float64, observed []bool, period int) (hwFit, error) {
	f := hwFit{period: period}
	if err := f.initialise(x); err != nil {
		return hwFit{}, err
	}
	sse := func(alpha, beta, gamma float64) float64 {
		g := f
		g.alpha, g.beta, g.gamma = alpha, beta, gamma
		s := g.init.clone()
		var sum float64
		for t, v := range x {
			if t >= f.initEnd && observed[t] {
				e := v - g.predict(&s, 1)
				sum += e * e
			}
			g.update(&s, t, v)
		}
		return sum
	}
	dims := 3
	if period == 0 {
		dims = 2 // Holt: no γ
	}
	best, bestSSE := searchSmoothing(dims, func(p [3]float64) float64 { return sse(p[0], p[1], p[2]) })
	if math.IsNaN(bestSSE) || math.IsInf(bestSSE, 0) {
		return hwFit{}, fmt.Errorf("fitting smoothing parameters: one-step error is %v", bestSSE)
	}
	f.alpha, f.beta, f.gamma = best[0], best[1], best[2]
	return f, nil
}

// hwInitSeasons is how many whole periods (at most) the initial level,
// trend and season are averaged over.
const hwInitSeasons = 4

// initialise sets the state before step 0: with a season, from the means of
// the first few periods (trend = drift of the period means, season = the
// detrended average profile, centred); without, from the first few steps.
// A pure line or pure periodic series is reproduced exactly.
func (f *hwFit) initialise(x []float64) error {
	p := f.period
	if p == 0 {
		if len(x) < 4 {
			return fmt.Errorf("the trend-only (Holt) method needs at least 4 training steps, got %d", len(x))
		}
		k := min(len(x)/2, 10)
		m0, m1 := mean(x[:k]), mean(x[k:2*k])
		trend := (m1 - m0) / float64(k)
		f.init = hwState{pos: -1, trend: trend, level: m0 - trend*(float64(k-1)/2+1)}
		f.initEnd = 2 * k
		return nil
	}
	k := min(len(x)/p, hwInitSeasons)
	if k < 2 {
		return fmt.Errorf("season of %d steps: need two periods of training data, got %d steps", p, len(x))
	}
	means := make([]float64, k)
	for j := range means {
		means[j] = mean(x[j*p : (j+1)*p])
	}
	trend := (means[k-1] - means[0]) / float64((k-1)*p)
	centre := float64(p-1) / 2
	season := make([]float64, p)
	for i := range season {
		for j := range k {
			season[i] += x[j*p+i] - (means[j] + trend*(float64(i)-centre))
		}
		season[i] /= float64(k)
	}
	offset := mean(season)
	for i := range season {
		season[i] -= offset
	}
	f.init = hwState{pos: -1, trend: trend, level: means[0] - trend*(centre+1), season: season}
	f.initEnd = k * p
	return nil
}

// searchSmoothing minimises sse over the first dims parameters (the others
// stay 0): a grid, then a compass search that halves its step whenever no
// neighbour improves. Deterministic, bounded (at most len(hwGrid)^dims +
// 2·dims·hwRefineSteps evaluations) and derivative-free.
func searchSmoothing(dims int, sse func([3]float64) float64) ([3]float64, float64) {
	var best [3]float64
	bestSSE := math.Inf(1)
	var p [3]float64
	var grid func(d int)
	grid = func(d int) {
		if d == dims {
			if v := sse(p); v < bestSSE {
				best, bestSSE = p, v
			}
			return
		}
		for _, g := range hwGrid {
			p[d] = g
			grid(d + 1)
		}
	}
	grid(0)
	delta := 0.05
	for range hwRefineSteps {
		if delta < hwRefineMinDelta {
			break
		}
		improved := false
		for d := range dims {
			for _, sign := range []float64{-1, 1} {
				q := best
				q[d] = math.Min(hwMaxParam, math.Max(hwMinParam, q[d]+sign*delta))
				if v := sse(q); v < bestSSE {
					best, bestSSE, improved = q, v, true
				}
			}
		}
		if !improved {
			delta /= 2
		}
	}
	return best, bestSSE
}

func mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}
