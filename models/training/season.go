package training

import (
	"fmt"
	"math"
	"slices"

	"time"

	"github.com/foresightscale/foresight/forecaster/baseline"
	"github.com/foresightscale/foresight/models/dataset"
	"github.com/foresightscale/foresight/models/gnn"
)

// Season choices for Config.Season.
const (
	// SeasonAuto detects the period on the training part of the history.
	SeasonAuto = 0
	// SeasonNone trains without a seasonal context.
	SeasonNone = -1
)

// seasonTolerance groups detected periods that differ by at most this share:
// the same cycle measured on two services rarely peaks at the same lag.
const seasonTolerance = 0.05

// minSeasonShare is the share of target series that must show the period
// for the model to get a seasonal context. A cycle on a quarter of the
// series is worth the extra input; the network learns where it holds.
const minSeasonShare = 0.25

// SeasonReport says which period the model reads its seasonal context at,
// or why it has none.
type SeasonReport struct {
	PeriodSteps int     `json:"periodSteps"`
	Period      string  `json:"period,omitempty"`
	ACF         float64 `json:"acf,omitempty"`
	// Series counts the target series that showed the period, of Of.
	Series int    `json:"series"`
	Of     int    `json:"of"`
	Reason string `json:"reason"`
}

// wellKnownPeriods are the cycles production load usually has. They are
// scored beside the detected period: a history of a few days holds a daily
// cycle twice, enough to use it, but not the three times detection needs.
var wellKnownPeriods = []time.Duration{24 * time.Hour, 7 * 24 * time.Hour}

// detectSeason finds the period shared by the targets' series on the
// training part (steps before trainEnd). Candidates are the period most
// series show (each series' dominant period, baseline.DetectPeriod, grouped
// within seasonTolerance; it counts when it shows on minSeasonShare of the
// series) and the well-known periods the training part holds twice; the one
// with the highest autocorrelation pooled over every target series wins if
// that reaches minPooledACF, and is refined to the exact lag (refinePeriod).
// The horizon bounds it from below: a cycle shorter than the forecast is
// not a season the input can show.
func detectSeason(ds *dataset.Dataset, targets []int, trainEnd, horizon int) SeasonReport {
	type found struct {
		period int
		acf    float64
	}
	var all []found
	var series [][]float64
	for _, ti := range targets {
		for n := range ds.Services {
			if ds.NoData[ti][n] {
				continue
			}
			x := make([]float64, trainEnd)
			for t := range trainEnd {
				x[t] = ds.Raw[ti][t][n]
			}
			series = append(series, x)
			if p, acf := baseline.DetectPeriod(x); p > horizon {
				all = append(all, found{p, acf})
			}
		}
	}
	rep := SeasonReport{Of: len(series)}
	var candidates []int
	var detected string
	if len(all) > 0 {
		slices.SortFunc(all, func(a, b found) int { return a.period - b.period })
		var best []found
		for i := range all {
			j := i
			for j < len(all) && float64(all[j].period) <= float64(all[i].period)*(1+seasonTolerance) {
				j++
			}
			if j-i > len(best) {
				best = all[i:j]
			}
		}
		p := best[len(best)/2].period
		if float64(len(best)) >= minSeasonShare*float64(len(series)) {
			candidates = append(candidates, p)
			rep.Series = len(best)
			detected = fmt.Sprintf("detected on %d of %d target series", len(best), len(series))
		} else {
			detected = fmt.Sprintf("the most common cycle (%d steps) shows on %d of %d target series, fewer than %.0f %%", p, len(best), len(series), 100*minSeasonShare)
		}
	}
	for _, d := range wellKnownPeriods {
		if p := int(d / ds.Step); d%ds.Step == 0 && p > horizon && 2*p <= trainEnd && !slices.Contains(candidates, p) {
			candidates = append(candidates, p)
		}
	}
	bestPeriod, bestACF := 0, math.Inf(-1)
	for _, p := range candidates {
		if acf := pooledACF(series, p); acf > bestACF {
			bestPeriod, bestACF = p, acf
		}
	}
	switch {
	case len(candidates) == 0 && detected == "":
		rep.Reason = fmt.Sprintf("no target series shows a cycle longer than the horizon (%d steps) that repeats three times in the %d training steps, and the training part is shorter than two days", horizon, trainEnd)
		return rep
	case len(candidates) == 0:
		rep.Reason = detected
		return rep
	case bestACF < minPooledACF:
		rep.Reason = fmt.Sprintf("the best cycle (%d steps) has autocorrelation %.2f pooled over the %d target series, below %.2f", bestPeriod, bestACF, len(series), minPooledACF)
		return rep
	}
	rep.PeriodSteps = bestPeriod
	fromData := rep.Series > 0 && slices.Index(candidates, bestPeriod) == 0
	if fromData {
		// A well-known period is exact by definition; a detected one is
		// only as exact as a broad autocorrelation peak.
		rep.PeriodSteps = refinePeriod(ds, targets, trainEnd, max(1, horizon/2), bestPeriod)
	}
	rep.ACF = math.Round(pooledACF(series, rep.PeriodSteps)*1000) / 1000
	if fromData {
		rep.Reason = fmt.Sprintf("%s of the training part (pooled autocorrelation %.2f)", detected, rep.ACF)
	} else {
		rep.Series = 0
		rep.Reason = fmt.Sprintf("a well-known period, with pooled autocorrelation %.2f on the training part", rep.ACF)
	}
	return rep
}

// minPooledACF is the autocorrelation at the period, averaged over every
// target series, a seasonal context needs: below it, last period says
// little about this one.
const minPooledACF = 0.2

// pooledACF is the mean over the series of their autocorrelation at lag
// (after removing each series' mean); a constant series counts as 0.
func pooledACF(series [][]float64, lag int) float64 {
	if len(series) == 0 {
		return 0
	}
	var sum float64
	for _, x := range series {
		if lag >= len(x)-1 {
			continue
		}
		var mean, v, c float64
		for _, y := range x {
			mean += y / float64(len(x))
		}
		for t, y := range x {
			v += (y - mean) * (y - mean)
			if t+lag < len(x) {
				c += (y - mean) * (x[t+lag] - mean)
			}
		}
		if v > 0 {
			sum += c / v * float64(len(x)) / float64(len(x)-lag)
		}
	}
	return sum / float64(len(series))
}

// refineTolerance is how far refinePeriod looks from the detected period.
const refineTolerance = 0.01

// maxRefineLags bounds the lags refinePeriod scores, so refining stays
// linear in the history whatever the spread of the detected periods.
const maxRefineLags = 201

// refinePeriod returns the lag within refineTolerance of mid (at least 2
// steps, at most maxRefineLags of them) at which the targets' k-step changes correlate best,
// pooled over every series. Autocorrelation peaks of a smooth load are a few
// steps wide, and each series peaks at a slightly different lag; the
// seasonal context reads the steps exactly one period back, so the lag at
// which the changes repeat is the one it needs (on the boutique recording:
// 602 steps, the replayed curve's length, where the median peak is 599).
func refinePeriod(ds *dataset.Dataset, targets []int, trainEnd, k, mid int) int {
	spread := min(max(int(math.Ceil(refineTolerance*float64(mid))), 2), maxRefineLags/2)
	lo, hi := max(mid-spread, k+1), mid+spread
	if hi >= trainEnd-k-1 {
		hi = trainEnd - k - 2
	}
	if hi < lo {
		return mid
	}
	score := make([]float64, hi-lo+1)
	for _, ti := range targets {
		for n := range ds.Services {
			if ds.NoData[ti][n] {
				continue
			}
			d := make([]float64, trainEnd-k)
			var mean, v float64
			for t := range d {
				d[t] = ds.Raw[ti][t+k][n] - ds.Raw[ti][t][n]
				mean += d[t] / float64(len(d))
			}
			for t := range d {
				d[t] -= mean
				v += d[t] * d[t]
			}
			if v == 0 {
				continue
			}
			for lag := lo; lag <= hi; lag++ {
				var c float64
				for t := 0; t+lag < len(d); t++ {
					c += d[t] * d[t+lag]
				}
				score[lag-lo] += c / v * float64(len(d)) / float64(len(d)-lag)
			}
		}
	}
	best := mid
	if mid < lo || mid > hi {
		best = lo
	}
	for lag := lo; lag <= hi; lag++ {
		if score[lag-lo] > score[best-lo] {
			best = lag
		}
	}
	return best
}

// chooseSeason sets o.Period from the configured season (steps, SeasonAuto
// or SeasonNone) and reports it. The training part (steps before trainEnd)
// must hold the lagged block of its last windows: a configured period longer
// than that is refused, a detected one cannot be.
func chooseSeason(ds *dataset.Dataset, o *gnn.Options, configured, trainEnd int) (*SeasonReport, error) {
	o.Period, o.PeriodACF = 0, 0
	switch {
	case configured == SeasonNone:
		return &SeasonReport{Reason: "disabled (--season none)"}, nil
	case configured > 0:
		if configured <= o.Horizon {
			return nil, fmt.Errorf("season of %d steps: must be longer than the horizon (%d steps)", configured, o.Horizon)
		}
		if trainEnd < 2*configured {
			return nil, fmt.Errorf("season of %d steps (%v): the training part (%d steps, %v) must hold two periods", configured, time.Duration(configured)*ds.Step, trainEnd, time.Duration(trainEnd)*ds.Step)
		}
		o.Period = configured
		return &SeasonReport{PeriodSteps: configured, Period: (time.Duration(configured) * ds.Step).String(), Reason: "configured (--season)"}, nil
	}
	var targets []int
	for _, t := range o.Targets {
		targets = append(targets, ds.FeatureIndex(t))
	}
	rep := detectSeason(ds, targets, trainEnd, o.Horizon)
	if rep.PeriodSteps > 0 {
		o.Period, o.PeriodACF = rep.PeriodSteps, rep.ACF
		rep.Period = (time.Duration(rep.PeriodSteps) * ds.Step).String()
	}
	return &rep, nil
}
