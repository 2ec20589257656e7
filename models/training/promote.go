package training

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/foresightscale/foresight/forecaster/baseline"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/models/dataset"
	"github.com/foresightscale/foresight/models/gnn"
)

// Comparison is the champion/challenger backtest: the MAE by horizon step of
// the newly trained model (the challenger), the serving model (the champion)
// and last value, on the same held-out points: the test windows the
// challenger never saw, over the services both models forecast.
type Comparison struct {
	Feature    source.Feature `json:"feature"`
	Services   []string       `json:"services"`
	Points     int            `json:"points"`
	Challenger []float64      `json:"challenger"`
	LastValue  []float64      `json:"lastValue"`
	// Champion is nil when there is none, or when it cannot be run on these
	// points (ChampionSkipped says why: another step or horizon).
	Champion        []float64 `json:"champion,omitempty"`
	ChampionName    string    `json:"championName,omitempty"`
	ChampionSkipped string    `json:"championSkipped,omitempty"`
}

// Decision says whether a challenger replaces the champion, and why.
type Decision struct {
	Promote bool   `json:"promote"`
	Reason  string `json:"reason"`
	// Margin is the share by which the challenger's mean MAE must be below
	// the champion's; MaxLastValueRatio the most its MAE may be of last
	// value's at any step.
	Margin            float64 `json:"margin"`
	MaxLastValueRatio float64 `json:"maxLastValueRatio"`
	// ToChampion is the challenger's mean MAE over the champion's (absent
	// without a champion); WorstToLastValue its highest MAE ratio to last
	// value over the steps, at WorstStep (1-based).
	ToChampion       *float64 `json:"toChampion,omitempty"`
	WorstToLastValue float64  `json:"worstToLastValue"`
	WorstStep        int      `json:"worstStep"`
}

// Decide applies the promotion rule: the challenger must be no worse than
// maxLastValueRatio × last value at every step, and, when a champion was
// compared, have a mean MAE at most (1 − margin) × the champion's. Anything
// not finite, or no points at all, keeps the champion: a model is never
// promoted on figures that cannot be checked.
func Decide(c Comparison, margin, maxLastValueRatio float64) Decision {
	d := Decision{Margin: margin, MaxLastValueRatio: maxLastValueRatio}
	h := len(c.Challenger)
	switch {
	case !(margin >= 0 && margin < 1) || !(maxLastValueRatio > 0) || math.IsInf(maxLastValueRatio, 0):
		d.Reason = fmt.Sprintf("kept: margin %v must be in [0, 1) and the last-value bound %v positive", margin, maxLastValueRatio)
		return d
	case c.Points == 0 || h == 0 || len(c.LastValue) != h || (c.Champion != nil && len(c.Champion) != h):
		d.Reason = "kept: no held-out points to compare the models on"
		return d
	case !allFinite(c.Challenger) || !allFinite(c.LastValue) || !allFinite(c.Champion):
		d.Reason = "kept: an error figure is not a number"
		return d
	}
	d.WorstToLastValue, d.WorstStep = math.Inf(-1), 0
	for s := range h {
		r := ratio(c.Challenger[s], c.LastValue[s])
		if r > d.WorstToLastValue {
			d.WorstToLastValue, d.WorstStep = r, s+1
		}
	}
	// Both figures in every decision with a champion, kept or promoted.
	if c.Champion != nil {
		r := ratio(mean(c.Challenger), mean(c.Champion))
		d.ToChampion = &r
	}
	if d.WorstToLastValue > maxLastValueRatio {
		d.Reason = fmt.Sprintf("kept: the challenger's MAE is %.3f× last value's at step %d (at most %.3f× allowed at every step)",
			d.WorstToLastValue, d.WorstStep, maxLastValueRatio)
		if d.ToChampion != nil {
			d.Reason += fmt.Sprintf("; its mean MAE is %.3f× the champion %s's", *d.ToChampion, c.ChampionName)
		}
		return d
	}
	if c.Champion == nil {
		d.Promote = true
		d.Reason = fmt.Sprintf("promoted: no champion to beat%s; at most %.3f× last value's MAE (step %d)",
			skipped(c.ChampionSkipped), d.WorstToLastValue, d.WorstStep)
		return d
	}
	r := *d.ToChampion
	if r > 1-margin {
		d.Reason = fmt.Sprintf("kept: the challenger's mean MAE is %.3f× the champion %s's, not below %.3f", r, c.ChampionName, 1-margin)
		return d
	}
	d.Promote = true
	d.Reason = fmt.Sprintf("promoted: mean MAE %.3f× the champion %s's (at most %.3f required), at most %.3f× last value's (step %d)",
		r, c.ChampionName, 1-margin, d.WorstToLastValue, d.WorstStep)
	return d
}

func skipped(why string) string {
	if why == "" {
		return ""
	}
	return " (" + why + ")"
}

// ratio is a/b, with 0/0 = 1 (both exact) and a/0 = +Inf.
func ratio(a, b float64) float64 {
	switch {
	case b > 0:
		return a / b
	case a == 0:
		return 1
	default:
		return math.Inf(1)
	}
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x / float64(len(v))
	}
	return s
}

func allFinite(v []float64) bool {
	return !slices.ContainsFunc(v, func(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) || x < 0 })
}

// compare runs the champion/challenger backtest on the test windows
// (origins of ds) for the challenger's first target, whose median forecasts
// evaluate made (points, by origin, in the target's unit). The champion runs on
// its own alignment of the same history (its services and features, its
// normalisation), as serve would run it; points count only where both models
// forecast the service and the actual was observed.
func compare(points map[int][]float64, ds *dataset.Dataset, data source.Data, origins []int, o gnn.Options, champion *model.Model) Comparison {
	feat := o.Targets[0]
	ti := ds.FeatureIndex(feat)
	nN, nH := len(ds.Services), o.Horizon
	c := Comparison{Feature: feat, Challenger: make([]float64, nH), LastValue: make([]float64, nH)}
	common := make([]int, nN) // champion column of each challenger service, -1 where none
	for n := range common {
		common[n] = n
	}
	var champ *baseline.Model
	var dsC *dataset.Dataset
	cti := -1
	if champion != nil {
		c.ChampionName = champion.Manifest().Name
		champ, dsC, cti, c.ChampionSkipped = prepareChampion(champion, ds, data, feat, nH)
		if champ == nil {
			common = nil
		} else {
			for n, svc := range ds.Services {
				common[n] = slices.Index(dsC.Services, svc)
			}
			c.Champion = make([]float64, nH)
		}
	}
	counts := make([]int, nH)
	for _, last := range origins {
		out := points[last]
		var fc [][]float64
		if champ != nil {
			var err error
			if fc, err = champ.Forecast(dsC, cti, last, nH); err != nil {
				// Start over without it: every figure on the same points.
				c = compare(points, ds, data, origins, o, nil)
				c.ChampionName, c.ChampionSkipped = champion.Manifest().Name, fmt.Sprintf("the champion failed on the held-out windows: %v", err)
				return c
			}
		}
		for h := range nH {
			for n := range nN {
				if !ds.Observed[ti][last+1+h][n] || (champ != nil && common[n] < 0) {
					continue
				}
				y := ds.Raw[ti][last+1+h][n]
				c.Challenger[h] += math.Abs(out[h*nN+n] - y)
				c.LastValue[h] += math.Abs(ds.Raw[ti][last][n] - y)
				if champ != nil {
					c.Champion[h] += math.Abs(fc[h][common[n]] - y)
				}
				counts[h]++
			}
		}
	}
	for h := range nH {
		if counts[h] > 0 {
			c.Challenger[h] /= float64(counts[h])
			c.LastValue[h] /= float64(counts[h])
			if c.Champion != nil {
				c.Champion[h] /= float64(counts[h])
			}
		}
		c.Points += counts[h]
	}
	for n, svc := range ds.Services {
		if champ == nil || common[n] >= 0 {
			c.Services = append(c.Services, svc)
		}
	}
	return c
}

// prepareChampion aligns the history for the champion, or says why it
// cannot be compared on the challenger's windows.
func prepareChampion(champion *model.Model, ds *dataset.Dataset, data source.Data, feat source.Feature, horizon int) (*baseline.Model, *dataset.Dataset, int, string) {
	man := champion.Manifest()
	switch {
	case time.Duration(man.Step) != ds.Step:
		return nil, nil, -1, fmt.Sprintf("the champion's step %v is not the challenger's %v", time.Duration(man.Step), ds.Step)
	case man.Horizon < horizon:
		return nil, nil, -1, fmt.Sprintf("the champion's horizon (%d steps) is shorter than the challenger's (%d)", man.Horizon, horizon)
	case !slices.Contains(man.Features, feat):
		return nil, nil, -1, fmt.Sprintf("the champion does not forecast %s", feat)
	}
	shared := 0
	for _, svc := range ds.Services {
		if slices.Contains(man.Services, svc) {
			shared++
		}
	}
	if shared == 0 {
		return nil, nil, -1, "the champion forecasts none of the challenger's services"
	}
	dsC, err := dataset.BuildPartial(data, man.Services, man.Features, ds.Start, ds.Start.Add(ds.Step*time.Duration(ds.Steps-1)), ds.Step)
	if err != nil {
		return nil, nil, -1, fmt.Sprintf("aligning the history for the champion: %v", err)
	}
	b, err := baseline.NewModel(champion)
	if err != nil {
		return nil, nil, -1, err.Error()
	}
	b.SetAdaptiveUpper(false) // only its median is compared
	cti := dsC.FeatureIndex(feat)
	if err := b.Fit(dsC, cti, dsC.Steps); err != nil {
		return nil, nil, -1, fmt.Sprintf("the champion cannot read this history: %v", err)
	}
	return b, dsC, cti, ""
}
