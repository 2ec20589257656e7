package feedback

import (
	"math"
	"testing"

	"github.com/foresightscale/foresight/forecaster/queueing"
)

func TestUpdate(t *testing.T) {
	cfg := Config{Min: 0, Max: 0.5, Widen: 0.1, Tighten: 0.02, Slack: 0.6, Hold: 2}
	tests := []struct {
		name     string
		start    float64
		p99s     []float64 // SLO 1
		want     []Action
		headroom float64
	}{
		{"violation widens at once", 0.2, []float64{1.5}, []Action{Widened}, 0.3},
		{"slack tightens slowly", 0.2, []float64{0.3, 0.3}, []Action{Tightened, Tightened}, 0.16},
		{"deadband holds", 0.2, []float64{0.8, 0.99, 1.0, 0.6}, []Action{Held, Held, Held, Held}, 0.2},
		{"no tightening right after a widening", 0.2, []float64{2, 0.1, 0.1, 0.1}, []Action{Widened, Held, Held, Tightened}, 0.28},
		{"bounded above", 0.45, []float64{2, 2, 2}, []Action{Widened, AtBound, AtBound}, 0.5},
		{"bounded below", 0.01, []float64{0.1, 0.1}, []Action{Tightened, AtBound}, 0},
		{"no signal changes nothing", 0.2, []float64{math.NaN(), math.Inf(1), -1}, []Action{NoSignal, NoSignal, NoSignal}, 0.2},
		{"start clamped", 3, nil, nil, 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := New(cfg, tc.start)
			for i, p := range tc.p99s {
				if got := c.Update(p, 1); got != tc.want[i] {
					t.Errorf("update %d (p99 %v): %s, want %s", i, p, got, tc.want[i])
				}
			}
			if got := c.Headroom(); math.Abs(got-tc.headroom) > 1e-9 {
				t.Errorf("headroom %v, want %v", got, tc.headroom)
			}
		})
	}
	if got := New(cfg, 0.2).Update(0.5, 0); got != NoSignal {
		t.Errorf("an SLO of 0: %s", got)
	}
}

// plant is a service of M/M/c pods sized for load×(1+headroom): its p99 at
// the true load, what the controller measures.
type plant struct {
	capacityPerPod, podRate float64
}

func (p plant) p99(load, headroom float64) float64 {
	pods := int(math.Ceil(load * (1 + headroom) / p.capacityPerPod))
	return queueing.Station{Servers: pods, Mu: p.podRate, Lambda: load}.Quantile(0.99, 5)
}

// On a constant load the loop settles and then never moves again (no
// oscillation, whatever the start), after at most one violating cycle.
func TestConstantLoadSettles(t *testing.T) {
	pl := plant{capacityPerPod: 40, podRate: 50}
	for _, start := range []float64{0, 0.2, 0.5, 1} {
		for _, load := range []float64{80, 400, 2000} {
			// SLO 0.2: at 80 req/s one pod fewer (headroom 0) is 0.24 s,
			// one more 0.10 s: from slack to violation in one step.
			const slo = 0.2
			c := New(Config{}, start)
			var moves []int
			violations := 0
			for cycle := range 600 {
				p := pl.p99(load, c.Headroom())
				if p > slo {
					violations++
				}
				if a := c.Update(p, slo); a == Widened || a == Tightened {
					moves = append(moves, cycle)
				}
			}
			if violations > 1 {
				t.Errorf("start %v, load %v: %d violating cycles on a constant load", start, load, violations)
			}
			last := -1
			if len(moves) > 0 {
				last = moves[len(moves)-1]
			}
			if last > 150 { // tightening from 1 to 0 alone takes 100 cycles
				t.Errorf("start %v, load %v: still moving at cycle %d (moves %v)", start, load, last, moves)
			}
			if p := pl.p99(load, c.Headroom()); p > slo {
				t.Errorf("start %v, load %v: settled at headroom %v with p99 %.3f above the SLO", start, load, c.Headroom(), p)
			}
		}
	}
}

// A step up in load answered by violations widens the headroom by at most
// Widen per cycle and never past Max; after the step down it comes back
// down at Tighten per cycle, not at once.
func TestStepIsBounded(t *testing.T) {
	pl := plant{capacityPerPod: 40, podRate: 50}
	const slo = 0.05 // tight: the step violates
	c := New(Config{}, 0.2)
	prev := c.Headroom()
	for cycle := range 400 {
		load := 400.0
		if cycle >= 100 && cycle < 200 {
			load = 1500
		}
		c.Update(pl.p99(load, c.Headroom()), slo)
		h := c.Headroom()
		if h-prev > DefaultWiden+1e-9 || prev-h > DefaultTighten+1e-9 || h > DefaultMax || h < DefaultMin {
			t.Fatalf("cycle %d: headroom %v → %v", cycle, prev, h)
		}
		prev = h
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{Min: 0.1, Max: 0.8, Widen: 0.2, Tighten: 0.05, Slack: 0.5, Hold: 4}, true},
		{Config{Min: 0.5, Max: 0.2}, false},
		{Config{Min: -1}, false},
		{Config{Max: 11}, false},
		{Config{Widen: -1}, false},
		{Config{Tighten: 0.5, Widen: 0.1}, false},
		{Config{Slack: 1}, false},
		{Config{Slack: math.NaN()}, false},
		{Config{Hold: -1}, false},
		{Config{Max: math.Inf(1)}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
}

// FuzzUpdate: whatever it measures, the headroom stays within its bounds,
// finite, and moves by at most one step per cycle.
func FuzzUpdate(f *testing.F) {
	f.Add(0.2, 0.3, 0.25, 2.0, 0.0)
	f.Add(0.0, math.NaN(), 0.25, math.Inf(1), -1.0)
	f.Add(1.0, 1e300, 1e-300, 0.0, 5.0)
	f.Fuzz(func(t *testing.T, start, p1, slo, p2, p3 float64) {
		c := New(Config{}, start)
		for _, p := range []float64{p1, p2, p3, p1} {
			before := c.Headroom()
			c.Update(p, slo)
			h := c.Headroom()
			if math.IsNaN(h) || h < DefaultMin || h > DefaultMax || h-before > DefaultWiden+1e-12 || before-h > DefaultTighten+1e-12 {
				t.Fatalf("start %v, p99 %v, slo %v: headroom %v → %v", start, p, slo, before, h)
			}
		}
	})
}

// The floor of a violation is forgotten after Remember cycles: on a load
// that never changes, one probing violation per Remember cycles, no more.
func TestFloorIsForgotten(t *testing.T) {
	pl := plant{capacityPerPod: 40, podRate: 50}
	const slo, load, remember = 0.2, 80.0, 50
	c := New(Config{Remember: remember, Hold: 5}, 0)
	violations := 0
	for range 500 {
		p := pl.p99(load, c.Headroom())
		if p > slo {
			violations++
		}
		c.Update(p, slo)
	}
	if violations < 2 || violations > 500/remember+1 {
		t.Errorf("%d violating cycles in 500 with Remember %d", violations, remember)
	}
}
