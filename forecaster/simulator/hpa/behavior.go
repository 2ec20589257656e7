package hpa

import (
	"math"
	"time"
)

// normalizeWithBehavior is normalizeDesiredReplicasWithBehaviors: stabilize
// the metric recommendation over the windows, then apply the rate policies
// and the replica bounds.
func (h *HPA) normalizeWithBehavior(now time.Duration, current, prenormalized int32) int32 {
	st := &h.status
	stabilized := h.stabilizeWithBehavior(now, current, prenormalized)
	switch {
	case stabilized == prenormalized:
		st.AbleToScale = Condition{true, ReasonReadyForNewScale}
	case prenormalized >= current:
		st.AbleToScale = Condition{true, ReasonScaleUpStabilized}
	default:
		st.AbleToScale = Condition{true, ReasonScaleDownStabilized}
	}
	desired, reason := h.limitRate(now, current, stabilized)
	st.ScalingLimited = Condition{desired != stabilized, reason}
	return desired
}

// stabilizeWithBehavior is stabilizeRecommendationWithBehaviors: a scale-up
// goes no higher than the lowest recommendation of the up window, a
// scale-down no lower than the highest of the down window. It records the
// unstabilized recommendation, reusing the slot of one that has left both
// windows.
func (h *HPA) stabilizeWithBehavior(now time.Duration, current, desired int32) int32 {
	upRec, downRec := desired, desired
	upCutoff, downCutoff := now-h.up.window, now-h.down.window
	old := -1
	for i, r := range h.recs {
		if r.at > upCutoff {
			upRec = min(upRec, r.replicas)
		}
		if r.at > downCutoff {
			downRec = max(downRec, r.replicas)
		}
		if r.at < upCutoff && r.at < downCutoff {
			old = i
		}
	}
	h.record(old, desired, now)
	return min(max(current, upRec), downRec)
}

// record stores a recommendation in slot old, or appends it when old < 0.
func (h *HPA) record(old int, replicas int32, now time.Duration) {
	r := recommendation{replicas, now}
	if old >= 0 {
		h.recs[old] = r
		return
	}
	h.recs = append(h.recs, r)
}

// limitRate is convertDesiredReplicasWithBehaviorRate: the change allowed by
// the direction's policies, then maxReplicas / minReplicas. It returns the
// ScalingLimited reason.
func (h *HPA) limitRate(now time.Duration, current, desired int32) (int32, string) {
	switch {
	case desired > current:
		// A limit below current (the period already saw scale-downs) must
		// not turn a scale-up into a scale-down.
		limit := max(h.scaleUpLimit(now, current), current)
		allowed, reason := h.cfg.MaxReplicas, ReasonTooManyReplicas
		if allowed > limit {
			allowed, reason = limit, ReasonScaleUpLimit
		}
		if desired > allowed {
			return allowed, reason
		}
	case desired < current:
		limit := min(h.scaleDownLimit(now, current), current)
		allowed, reason := h.cfg.MinReplicas, ReasonTooFewReplicas
		if allowed < limit {
			allowed, reason = limit, ReasonScaleDownLimit
		}
		if desired < allowed {
			return allowed, reason
		}
	}
	return desired, ReasonDesiredWithinRange
}

// periodStart is the replica count at the start of a policy period: current
// minus what was added plus what was removed within it.
func (h *HPA) periodStart(now time.Duration, current int32, period time.Duration) int32 {
	return current - changeWithin(h.upEvents, now, period) + changeWithin(h.downEvents, now, period)
}

// scaleUpLimit is calculateScaleUpLimitWithScalingRules: the highest replica
// count the scale-up policies allow now.
func (h *HPA) scaleUpLimit(now time.Duration, current int32) int32 {
	if h.up.sel == SelectDisabled {
		return current
	}
	pickMin := h.up.sel == SelectMin // the smallest change is the lowest count
	result := int32(math.MinInt32)
	if pickMin {
		result = math.MaxInt32
	}
	for _, p := range h.up.policies {
		start := h.periodStart(now, current, p.Period)
		var proposed int32
		if p.Type == Pods {
			proposed = start + p.Value
		} else {
			// Rounded up so that a small target can always grow.
			proposed = toInt32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		}
		if pickMin {
			result = min(result, proposed)
		} else {
			result = max(result, proposed)
		}
	}
	return result
}

// scaleDownLimit is calculateScaleDownLimitWithBehaviors: the lowest replica
// count the scale-down policies allow now.
func (h *HPA) scaleDownLimit(now time.Duration, current int32) int32 {
	if h.down.sel == SelectDisabled {
		return current
	}
	pickMin := h.down.sel == SelectMin // the smallest change is the highest count
	result := int32(math.MaxInt32)
	if pickMin {
		result = math.MinInt32
	}
	for _, p := range h.down.policies {
		start := h.periodStart(now, current, p.Period)
		var proposed int32
		if p.Type == Pods {
			proposed = start - p.Value
		} else {
			// Truncated, as upstream's int32 conversion.
			proposed = toInt32(math.Trunc(float64(start) * (1 - float64(p.Value)/100)))
		}
		if pickMin {
			result = max(result, proposed)
		} else {
			result = min(result, proposed)
		}
	}
	return result
}

// changeWithin is getReplicasChangePerPeriod: the replicas changed by events
// strictly after now-period, reusable slots included, as upstream.
func changeWithin(events []scaleEvent, now, period time.Duration) int32 {
	cutoff := now - period
	var sum int32
	for _, e := range events {
		if e.at > cutoff {
			sum += e.change
		}
	}
	return sum
}

// storeScaleEvent is upstream's storeScaleEvent: record a rescale in its
// direction's history, reusing the slot of an event older than that
// direction's longest policy period.
func (h *HPA) storeScaleEvent(now time.Duration, prev, next int32) {
	if next > prev {
		h.upEvents = storeEvent(h.upEvents, now, h.up.longest, next-prev)
	} else {
		h.downEvents = storeEvent(h.downEvents, now, h.down.longest, prev-next)
	}
}

// Upstream flags such events "outdated" first; with time never going
// backwards and a fixed period, that is the same as being before the cutoff.
func storeEvent(events []scaleEvent, now, longest time.Duration, change int32) []scaleEvent {
	cutoff := now - longest
	old := -1
	for i := range events {
		if events[i].at < cutoff {
			old = i
		}
	}
	e := scaleEvent{change: change, at: now}
	if old >= 0 {
		events[old] = e
		return events
	}
	return append(events, e)
}

// normalizeLegacy is normalizeDesiredReplicas, used when spec.behavior is
// omitted: the highest recommendation within DownscaleStabilization, then a
// scale-up cap of max(2*current, 4) and the replica bounds.
func (h *HPA) normalizeLegacy(now time.Duration, current, prenormalized int32) int32 {
	st := &h.status
	stabilized := prenormalized
	cutoff := now - h.cfg.DownscaleStabilization
	old := -1
	for i, r := range h.recs {
		if r.at < cutoff {
			old = i
		} else if r.replicas > stabilized {
			stabilized = r.replicas
		}
	}
	h.record(old, prenormalized, now)
	if stabilized != prenormalized {
		st.AbleToScale = Condition{true, ReasonScaleDownStabilized}
	} else {
		st.AbleToScale = Condition{true, ReasonReadyForNewScale}
	}

	// The cap guards against a bogus usage spike multiplying the replicas.
	upLimit := toInt32(math.Max(2*float64(current), 4))
	allowed, reason := h.cfg.MaxReplicas, ReasonTooManyReplicas
	if allowed > upLimit {
		allowed, reason = upLimit, ReasonScaleUpLimit
	}
	desired := stabilized
	switch {
	case stabilized < h.cfg.MinReplicas:
		desired, reason = h.cfg.MinReplicas, ReasonTooFewReplicas
	case stabilized > allowed:
		desired = allowed
	default:
		reason = ReasonDesiredWithinRange
	}
	st.ScalingLimited = Condition{desired != stabilized, reason}
	return desired
}
