package simulator

import (
	"fmt"
	"math"

	"github.com/foresightscale/foresight/forecaster/queueing"
)

// SizeFor returns the fewest replicas per service (Services order) that keep
// every service below saturation and the entry's end-to-end p99 (the
// simulation's SLO measure) within the SLO at
// entry rate rps, all pods ready and no backlog. It adds one pod at a time
// where the p99 is worst, the queueing bottleneck, so the result is small
// but not guaranteed minimal in total cost. An error means even the
// services' MaxReplicas cannot meet the SLO at that rate.
func (c *Config) SizeFor(rps float64) ([]int32, error) {
	if c.App.visits == nil {
		if err := c.Validate(); err != nil {
			return nil, err
		}
	}
	app := &c.App
	n := make([]int32, len(app.Services))
	own := make([]float64, len(app.Services))
	timeout, slo := c.Timeout.Seconds(), c.SLO.Seconds()
	for i, s := range app.Services {
		load := rps * app.visits[i] / s.PodRate()
		n[i] = clampReplicas(s, int32(math.Floor(load))+1) // the least that is not saturated
	}
	var budget int
	for _, s := range app.Services {
		budget += int(s.MaxReplicas)
	}
	p99 := func(i int, pods int32) float64 {
		st := queueing.Station{Servers: int(pods), Mu: app.Services[i].PodRate(), Lambda: rps * app.visits[i]}
		return st.Quantile(0.99, timeout)
	}
	for range budget + 1 {
		for i := range app.Services {
			own[i] = p99(i, n[i])
		}
		if app.endToEnd(own) <= slo {
			return n, nil
		}
		// One more pod where it shortens the slowest path most.
		best, gain := -1, 0.0
		for _, i := range app.criticalPath(own) {
			if n[i] >= app.Services[i].MaxReplicas {
				continue
			}
			if g := own[i] - p99(i, n[i]+1); g > gain {
				best, gain = i, g
			}
		}
		if best < 0 || gain < 1e-9 {
			break // more pods no longer help: the service times alone exceed the SLO
		}
		n[best]++
	}
	return nil, fmt.Errorf("no replica counts within maxReplicas meet the %v SLO at %.1f req/s", c.SLO, rps)
}

// criticalPath returns the services (indices) on the entry's slowest typical
// path under the given per-service latencies.
func (a *App) criticalPath(own []float64) []int {
	_, next := a.pathLatencies(own)
	var path []int
	for i := a.graph.Index(a.Entry); i >= 0; i = next[i] {
		path = append(path, i)
	}
	return path
}

// Static is a fixed allocation sized for the trace's peak: what an operator
// without an autoscaler provisions.
type Static struct{ replicas []int32 }

func (s *Static) Name() string { return "static" }

func (s *Static) Start(run *Run) ([]int32, error) {
	var err error
	s.replicas, err = run.Config.SizeFor(run.Trace.Peak())
	if err != nil {
		return nil, fmt.Errorf("sizing for the peak: %w", err)
	}
	return s.replicas, nil
}

func (s *Static) Tick(int) ([]int32, error) { return s.replicas, nil }
