package training

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/models"
	"github.com/foresightscale/foresight/models/gnn"
)

func TestDecide(t *testing.T) {
	last := []float64{10, 20, 30}
	tests := []struct {
		name       string
		c          Comparison
		margin     float64
		maxLast    float64
		promote    bool
		want       string
		worstStep  int
		toChampion float64 // 0: none
	}{
		{"no champion, beats last value", Comparison{Points: 30, Challenger: []float64{9, 19, 25}, LastValue: last}, 0.02, 1, true, "promoted: no champion to beat", 2, 0},
		{"no champion, loses at one step", Comparison{Points: 30, Challenger: []float64{9, 21, 25}, LastValue: last}, 0.02, 1, false, "1.050× last value's at step 2", 2, 0},
		{"looser last-value bound", Comparison{Points: 30, Challenger: []float64{9, 21, 25}, LastValue: last}, 0.02, 1.1, true, "promoted", 2, 0},
		{"beats the champion by the margin", Comparison{Points: 30, Challenger: []float64{9, 18, 27}, Champion: []float64{10, 20, 30}, ChampionName: "old", LastValue: last}, 0.05, 1, true, "0.900× the champion old's", 1, 0.9},
		{"within the margin of the champion", Comparison{Points: 30, Challenger: []float64{9, 19.8, 29.7}, Champion: []float64{9.5, 20, 30}, LastValue: last}, 0.05, 1, false, "not below 0.950", 2, 0.9832},
		{"worse than last value, with the champion's figure too", Comparison{Points: 30, Challenger: []float64{12, 22, 33}, Champion: []float64{10, 20, 30}, ChampionName: "old", LastValue: last}, 0.02, 1, false, "1.200× last value's at step 1 (at most 1.000× allowed at every step); its mean MAE is 1.117× the champion old's", 1, 1.1167},
		{"champion skipped", Comparison{Points: 30, Challenger: []float64{9, 19, 25}, LastValue: last, ChampionSkipped: "the champion's step 1m0s is not the challenger's 30s"}, 0.02, 1, true, "(the champion's step 1m0s", 2, 0},
		{"no points", Comparison{Challenger: []float64{0, 0, 0}, LastValue: []float64{0, 0, 0}}, 0.02, 1, false, "no held-out points", 0, 0},
		{"NaN figure", Comparison{Points: 3, Challenger: []float64{math.NaN(), 1, 1}, LastValue: last}, 0.02, 1, false, "not a number", 0, 0},
		{"champion lengths differ", Comparison{Points: 3, Challenger: []float64{1, 1, 1}, Champion: []float64{1}, LastValue: last}, 0.02, 1, false, "no held-out points", 0, 0},
		{"bad margin", Comparison{Points: 3, Challenger: []float64{1, 1, 1}, LastValue: last}, 1, 1, false, "margin 1 must be in [0, 1)", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.c, tc.margin, tc.maxLast)
			if d.Promote != tc.promote || !strings.Contains(d.Reason, tc.want) {
				t.Fatalf("promote %v, reason %q; want %v and %q", d.Promote, d.Reason, tc.promote, tc.want)
			}
			if tc.worstStep > 0 && d.WorstStep != tc.worstStep {
				t.Errorf("worst step %d, want %d", d.WorstStep, tc.worstStep)
			}
			if tc.toChampion > 0 && (d.ToChampion == nil || math.Abs(*d.ToChampion-tc.toChampion) > 1e-3) {
				t.Errorf("to champion %v, want %v", d.ToChampion, tc.toChampion)
			}
		})
	}
}

// FuzzDecide: whatever the figures, a promotion happens only on finite,
// non-negative figures that meet both rules.
func FuzzDecide(f *testing.F) {
	f.Add(9.0, 10.0, 11.0, 0.02, 1.0, true)
	f.Add(math.NaN(), 10.0, 11.0, 0.02, 1.0, false)
	f.Add(1e308, 1e-308, 0.0, 0.5, math.Inf(1), true)
	f.Fuzz(func(t *testing.T, challenger, lastValue, champion, margin, maxLast float64, withChampion bool) {
		c := Comparison{Points: 1, Challenger: []float64{challenger}, LastValue: []float64{lastValue}}
		if withChampion {
			c.Champion = []float64{champion}
		}
		d := Decide(c, margin, maxLast)
		if !d.Promote {
			return
		}
		for _, v := range []float64{challenger, lastValue, margin, maxLast} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("promoted on %v (decision %+v)", v, d)
			}
		}
		if ratio(challenger, lastValue) > maxLast {
			t.Fatalf("promoted at %v× last value, bound %v", ratio(challenger, lastValue), maxLast)
		}
		if withChampion && !(ratio(challenger, champion) <= 1-margin) {
			t.Fatalf("promoted at %v× the champion, margin %v", ratio(challenger, champion), margin)
		}
	})
}

// TestCompareWithAChampionOfAnotherTopology: a challenger trained on five
// of the Online Boutique services is compared with the demo model (all ten)
// on those five only; a champion of another step is skipped, with the
// reason, and the challenger is judged against last value alone.
func TestCompareWithAChampionOfAnotherTopology(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	champion, err := model.LoadFS(models.Demo())
	if err != nil {
		t.Fatal(err)
	}
	full := topology.OnlineBoutique()
	opts := gnn.DefaultOptions(topology.Graph{Services: full.Services[:5]})
	opts.Epochs, opts.Patience = 1, 1
	cfg := Config{
		Source: sourceOf(t, full), SourceName: "synthetic", Start: SyntheticHistoryStart, End: SyntheticHistoryStart.Add(24 * time.Hour),
		Options: opts, TestFraction: DefaultTestFraction, ValidationFraction: DefaultValidationFraction,
		Season: SeasonNone, Champion: champion,
	}
	_, report, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := report.Comparison
	if c == nil || c.Champion == nil || c.ChampionSkipped != "" || !slices.Equal(c.Services, full.Services[:5]) || c.Points == 0 {
		t.Fatalf("comparison %+v: want the champion's figures on the five shared services", c)
	}
	for h := range c.Champion {
		if !(c.Champion[h] > 0) || !(c.Challenger[h] > 0) || !(c.LastValue[h] > 0) {
			t.Fatalf("step %d: MAE challenger %v, champion %v, last value %v", h+1, c.Challenger[h], c.Champion[h], c.LastValue[h])
		}
	}

	opts.Step = time.Minute
	cfg.Options = opts
	_, report, err = Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := report.Comparison; c.Champion != nil || !strings.Contains(c.ChampionSkipped, "step 30s is not the challenger's 1m0s") {
		t.Errorf("champion of another step: comparison %+v", c)
	}
}

// sourceOf is the synthetic workload of every service of g.
func sourceOf(t *testing.T, g topology.Graph) source.Source {
	t.Helper()
	gen, err := synthetic.New(synthetic.DefaultConfig(), g)
	if err != nil {
		t.Fatal(err)
	}
	return source.NewSynthetic(gen)
}
