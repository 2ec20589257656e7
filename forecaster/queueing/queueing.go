// Package queueing answers latency questions about a service whose pods are
// the servers of an M/M/c queue: how slow it is at a load, and how many pods
// keep a latency quantile within a budget. The simulator models services
// with it and the policy sizes replicas with it, so both agree.
package queueing

import "math"

// Station is one service at one second: c identical servers (ready pods),
// each serving mu requests/s, offered lambda requests/s, with backlog
// requests already waiting. It answers latency quantiles.
//
// Below saturation with no backlog it is an M/M/c queue: the wait is 0 with
// probability 1 − C (Erlang C) and otherwise exponential with rate cμ − λ,
// and the sojourn adds an exponential service time. With a backlog (after an
// overload) the first-order wait is the backlog drained at full speed,
// backlog/(cμ), added to that.
type Station struct {
	Servers int
	Mu      float64 // per-server service rate, req/s
	Lambda  float64 // offered rate, req/s
	Backlog float64 // requests queued at the start of the second
}

// erlangC is the probability that an arrival waits in an M/M/c queue with
// offered load a = λ/μ (a < c), computed by the stable recurrence on the
// Erlang B formula.
func erlangC(c int, a float64) float64 {
	if c <= 0 {
		return 1
	}
	b := 1.0
	for k := 1; k <= c; k++ {
		b = a * b / (float64(k) + a*b)
	}
	rho := a / float64(c)
	return b / (1 - rho + rho*b)
}

// survival is P(sojourn > t) of the station, t in seconds, for a station
// below saturation whose probability of waiting (Erlang C) is pWait. The
// caller computes pWait once: it costs O(servers) and does not depend on t.
func (s Station) survival(t, pWait float64) float64 {
	if t < 0 {
		return 1
	}
	mu := s.Mu
	theta := float64(s.Servers)*mu - s.Lambda // rate of the wait when there is one
	noWait := math.Exp(-mu * t)
	var waited float64 // P(Exp(θ) + Exp(μ) > t)
	if math.Abs(theta-mu) < 1e-9*mu {
		waited = (1 + mu*t) * math.Exp(-mu*t)
	} else {
		waited = (theta*math.Exp(-mu*t) - mu*math.Exp(-theta*t)) / (theta - mu)
	}
	return (1-pWait)*noWait + pWait*waited
}

// Quantile returns the q-quantile of the sojourn time in seconds, capped at
// limit (a request is not worth waiting for past its timeout). A station
// without servers, or at or above saturation, returns limit.
func (s Station) Quantile(q, limit float64) float64 {
	if s.Servers <= 0 || s.Mu <= 0 {
		return limit
	}
	capacity := float64(s.Servers) * s.Mu
	drain := s.Backlog / capacity
	if s.Lambda >= capacity {
		return limit
	}
	if drain >= limit {
		return limit
	}
	// Bisection on the survival function: monotone, 60 halvings reach
	// double precision for any bracket below the limit.
	pWait := erlangC(s.Servers, s.Lambda/s.Mu)
	lo, hi := 0.0, limit-drain
	if s.survival(hi, pWait) > 1-q {
		return limit
	}
	for range 60 {
		mid := (lo + hi) / 2
		if s.survival(mid, pWait) > 1-q {
			lo = mid
		} else {
			hi = mid
		}
	}
	return drain + hi
}

// ServersFor returns the fewest servers, at most maxServers, whose sojourn
// q-quantile at offered rate lambda stays within budget (seconds), and
// whether any count does: a budget below the service time's own quantile
// cannot be met by adding pods.
func ServersFor(lambda, mu, q, budget float64, maxServers int) (int, bool) {
	if !(mu > 0) || !(budget > 0) || maxServers < 1 || !(lambda >= 0) {
		return 0, false
	}
	if -math.Log(1-q)/mu > budget {
		return 0, false // even an idle server is slower than the budget
	}
	// Below saturation first: more servers than the load needs at full use.
	// Compared as floats, so a huge load cannot overflow the conversion.
	if lambda/mu >= float64(maxServers) {
		return 0, false
	}
	lo := max(int(math.Floor(lambda/mu))+1, 1)
	meets := func(c int) bool {
		return (Station{Servers: c, Mu: mu, Lambda: lambda}).Quantile(q, budget*2) <= budget
	}
	if meets(lo) {
		return lo, true
	}
	// More servers never make the quantile worse, so gallop up from the
	// saturation point and bisect: each check costs O(c), and scanning one
	// by one made a large deployment's decision take seconds.
	hi, step := lo, 1
	for {
		hi = min(lo+step, maxServers)
		if meets(hi) {
			break
		}
		if hi == maxServers {
			return 0, false
		}
		lo, step = hi, step*2
	}
	for hi-lo > 1 { // meets(hi) and not meets(lo)
		mid := lo + (hi-lo)/2
		if meets(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, true
}
