// Package feedback tunes the headroom the policy sizes with from the
// latency users get: the outer loop of a bi-level controller (after
// Autothrottle, NSDI '24), whose inner loop is the forecast sizing itself.
// When the measured p99 has slack against the SLO it lowers the headroom
// slowly; on a violation it raises it at once and holds it for a while.
// The headroom stays within bounds and moves by at most one step per
// cycle, and a deadband between the two thresholds keeps it still on a
// steady load.
package feedback

import (
	"fmt"
	"math"
)

// Config tunes the controller. Zero fields take the defaults noted.
type Config struct {
	// Min and Max bound the headroom (defaults 0 and 1).
	Min, Max float64
	// Widen is added on a cycle whose p99 is above the SLO (default 0.1);
	// Tighten subtracted on a cycle with slack (default 0.01): fast up, slow
	// down, so a violation is answered within a cycle and savings come
	// gradually.
	Widen, Tighten float64
	// Slack is the p99/SLO ratio below which the SLO has room to tighten
	// (default 0.6). Between Slack and 1 the headroom holds.
	Slack float64
	// Hold is how many cycles after a widening the headroom may not
	// tighten (default 10: five minutes at a 30 s step), so one good
	// cycle right after a burst does not undo the answer to it.
	Hold int
	// Remember is how many cycles a headroom that violated the SLO stays a
	// floor tightening does not go down to (default 720: six hours at 30 s).
	// Without it a steady load whose latency jumps from slack to violation
	// within one tightening step (one pod fewer) would cycle forever:
	// tighten, violate, widen. After that long without a violation the
	// floor is forgotten, so a load that has since fallen can be served
	// cheaper; on a load that never changes that costs one violation per
	// Remember cycles.
	Remember int
}

// Defaults of Config.
const (
	DefaultMin      = 0.0
	DefaultMax      = 1.0
	DefaultWiden    = 0.1
	DefaultTighten  = 0.01
	DefaultSlack    = 0.6
	DefaultHold     = 10
	DefaultRemember = 720
)

func (c Config) withDefaults() Config {
	if c.Max == 0 {
		c.Max = DefaultMax
	}
	if c.Widen == 0 {
		c.Widen = DefaultWiden
	}
	if c.Tighten == 0 {
		c.Tighten = DefaultTighten
	}
	if c.Slack == 0 {
		c.Slack = DefaultSlack
	}
	if c.Hold == 0 {
		c.Hold = DefaultHold
	}
	if c.Remember == 0 {
		c.Remember = DefaultRemember
	}
	return c
}

// Validate checks the settings (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case !finite(c.Min) || !finite(c.Max) || c.Min < 0 || c.Max > 10 || c.Min > c.Max:
		return fmt.Errorf("headroom bounds [%v, %v]: want 0 ≤ min ≤ max ≤ 10", c.Min, c.Max)
	case !finite(c.Widen) || c.Widen <= 0 || c.Widen > 10:
		return fmt.Errorf("widen %v: want a step in (0, 10]", c.Widen)
	case !finite(c.Tighten) || c.Tighten <= 0 || c.Tighten > c.Widen:
		return fmt.Errorf("tighten %v: want a step in (0, widen %v]", c.Tighten, c.Widen)
	case !finite(c.Slack) || c.Slack <= 0 || c.Slack >= 1:
		return fmt.Errorf("slack %v: want a p99/SLO ratio in (0, 1)", c.Slack)
	case c.Hold < 0 || c.Hold > 10000:
		return fmt.Errorf("hold %d: want 0 to 10000 cycles", c.Hold)
	case c.Remember < 0 || c.Remember > 1000000:
		return fmt.Errorf("remember %d: want 0 to 1000000 cycles", c.Remember)
	}
	return nil
}

// Action is what one update did.
type Action string

// Actions of Update.
const (
	Widened   Action = "widened"
	Tightened Action = "tightened"
	Held      Action = "held"      // in the deadband, or after a widening
	NoSignal  Action = "no_signal" // no usable p99 this cycle: nothing changes
	AtBound   Action = "at_bound"  // would move, but the headroom is at its bound (or just above a recent violation's)
)

// Controller is one application's loop. It is not safe for concurrent use
// (the forecast loop serialises its cycles).
type Controller struct {
	cfg      Config
	headroom float64
	hold     int
	// floor is the highest headroom that violated the SLO within the last
	// Remember cycles (since: cycles since); -1 when none.
	floor float64
	since int
}

// New starts a controller at headroom start (clamped to the bounds); cfg
// must pass Validate.
func New(cfg Config, start float64) *Controller {
	cfg = cfg.withDefaults()
	return &Controller{cfg: cfg, headroom: clamp(start, cfg.Min, cfg.Max), floor: -1}
}

// Headroom is the headroom to size with now.
func (c *Controller) Headroom() float64 { return c.headroom }

// Update takes one cycle's measured p99 and the SLO (both seconds) and
// returns what it did. A p99 that is missing, not finite or negative, or
// an SLO that is not positive, changes nothing: no signal is not a reason
// to move.
func (c *Controller) Update(p99, slo float64) Action {
	if math.IsNaN(p99) || math.IsInf(p99, 0) || p99 < 0 || !(slo > 0) || math.IsInf(slo, 0) {
		return NoSignal
	}
	ratio := p99 / slo
	if c.since++; c.since > c.cfg.Remember {
		c.floor = -1
	}
	switch {
	case ratio > 1:
		c.hold = c.cfg.Hold
		c.floor, c.since = math.Max(c.floor, c.headroom), 0
		if c.headroom >= c.cfg.Max {
			return AtBound
		}
		c.headroom = math.Min(c.cfg.Max, c.headroom+c.cfg.Widen)
		return Widened
	case c.hold > 0:
		c.hold--
		return Held
	case ratio < c.cfg.Slack:
		// Not down to a headroom that violated recently: stop a step above.
		lowest := math.Max(c.cfg.Min, c.floor+c.cfg.Tighten)
		if c.headroom <= lowest {
			return AtBound
		}
		c.headroom = math.Max(lowest, c.headroom-c.cfg.Tighten)
		return Tightened
	default:
		return Held
	}
}

func clamp(v, lo, hi float64) float64 {
	if math.IsNaN(v) {
		return lo
	}
	return math.Max(lo, math.Min(hi, v))
}
