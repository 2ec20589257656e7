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

// detectSeason finds the period shared by the targets' series on the
// training part (steps before trainEnd): each series' dominant period
// (baseline.DetectPeriod), grouped within seasonTolerance; the largest
// group wins if it holds minSeasonShare of the series, and its median
// period is used. The horizon bounds it from below: a cycle shorter than
// the forecast is not a season the input can show.
func detectSeason(ds *dataset.Dataset, targets []int, trainEnd, horizon int) SeasonReport {
	type found struct {
		period int
		acf    float64
	}
	var all []found
	var of int
	for _, ti := range targets {
		for n := range ds.Services {
			if ds.NoData[ti][n] {
				continue
			}
			of++
			x := make([]float64, trainEnd)
			for t := range trainEnd {
				x[t] = ds.Raw[ti][t][n]
			}
			if p, acf := baseline.DetectPeriod(x); p > horizon {
				all = append(all, found{p, acf})
			}
		}
	}
	rep := SeasonReport{Of: of}
	if len(all) == 0 {
		rep.Reason = fmt.Sprintf("no target series shows a cycle longer than the horizon (%d steps) that repeats three times in the %d training steps", horizon, trainEnd)
		return rep
	}
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
	rep.Series = len(best)
	rep.PeriodSteps = refinePeriod(ds, targets, trainEnd, max(1, horizon/2), best[0].period, best[len(best)-1].period, best[len(best)/2].period)
	for _, f := range best {
		rep.ACF += f.acf / float64(len(best))
	}
	rep.ACF = math.Round(rep.ACF*1000) / 1000
	if float64(len(best)) < minSeasonShare*float64(of) {
		rep.Reason = fmt.Sprintf("the most common cycle (%d steps) shows on %d of %d target series, fewer than %.0f %%", rep.PeriodSteps, len(best), of, 100*minSeasonShare)
		rep.PeriodSteps, rep.ACF = 0, 0
		return rep
	}
	rep.Reason = fmt.Sprintf("detected on %d of %d target series of the training part (mean autocorrelation %.2f)", len(best), of, rep.ACF)
	return rep
}

// maxRefineLags bounds the lags refinePeriod scores, so refining stays
// linear in the history whatever the spread of the detected periods.
const maxRefineLags = 201

// refinePeriod returns the lag within [lo-2, hi+2] (at most maxRefineLags of
// them, centred on mid) at which the targets' k-step changes correlate best,
// pooled over every series. Autocorrelation peaks of a smooth load are a few
// steps wide, and each series peaks at a slightly different lag; the
// seasonal context reads the steps exactly one period back, so the lag at
// which the changes repeat is the one it needs (on the boutique recording:
// 602 steps, the replayed curve's length, where the median peak is 599).
func refinePeriod(ds *dataset.Dataset, targets []int, trainEnd, k, lo, hi, mid int) int {
	lo, hi = max(lo-2, mid-maxRefineLags/2, k+1), min(hi+2, mid+maxRefineLags/2)
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
