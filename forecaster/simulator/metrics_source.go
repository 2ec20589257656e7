package simulator

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
)

// Epoch is the wall-clock time of simulated second 0, for the parts of
// Foresight that speak time.Time (sources, windows, snapshots).
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// At returns the wall-clock time of simulated second t.
func At(t int) time.Time { return Epoch.Add(time.Duration(t) * time.Second) }

// Source serves a run's history as a Foresight metrics source, the way
// Prometheus would serve the recording rules: each sample at time T is the
// mean over the query step ending at T (requests and CPU as rates, latency
// as the mean of each second's median, replicas as the mean pod count).
// RequestsPeak at T is the largest mean over Config.PeakResolution seconds
// within the step: what a Prometheus scraping at that interval sees.
// LatencyP99 at T is the largest per-second p99 over the step, as the
// service's sidecar would measure it (Run.P99PerService): for the entry
// service the end-to-end p99 users see (Run.P99), for the others their own
// plus their callees'. That is a conservative stand-in for the p99 over the
// step's requests, which a simulation that keeps per-second quantiles
// cannot compute: the p99 of a mix of seconds is never above the largest
// of their p99s.
//
// Memory is not simulated; it is a pod baseline plus a per-request term (as
// in the synthetic demo world) so that models reading it get a plausible
// series. Only seconds already simulated are answered.
type Source struct {
	Run *Run
}

// Memory a simulated pod holds, and how much more per request/s it receives.
const (
	podMemoryBytes    = 64 << 20
	memoryBytesPerRPS = 128 << 10
)

func (s *Source) Name() string { return "simulation" }

func (s *Source) Fetch(ctx context.Context, q source.Query) (source.Data, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	run := s.Run
	step := int(q.Step / time.Second)
	if step < 1 || q.Step%time.Second != 0 {
		return nil, fmt.Errorf("simulation source: step %v is not a whole number of seconds", q.Step)
	}
	index := make(map[string]int, len(run.Config.App.Services))
	for i, svc := range run.Config.App.Services {
		index[svc.Name] = i
	}
	data := source.Data{}
	done := run.Second()
	for at := q.Start; !at.After(q.End); at = at.Add(q.Step) {
		// Second t's values cover [t, t+1): a sample at T covers the
		// seconds T−step .. T−1.
		end := int(at.Sub(Epoch) / time.Second)
		from := max(end-step, 0)
		if end > done || end <= 0 {
			continue
		}
		for _, name := range q.Services {
			i, ok := index[name]
			if !ok {
				continue // an unknown service has no series, as in Prometheus
			}
			for _, f := range q.Features {
				v, ok := s.value(f, i, from, end)
				if ok {
					data.Add(f, name, source.Sample{Time: at, Value: v})
				}
			}
		}
	}
	return data, nil
}

func (s *Source) value(f source.Feature, i, from, end int) (float64, bool) {
	run := s.Run
	mean := func(xs []float64) float64 {
		var sum float64
		for _, x := range xs[from:end] {
			sum += x
		}
		return sum / float64(end-from)
	}
	switch f {
	case source.Requests:
		return mean(run.Arrivals[i]), true
	case source.CPU:
		return mean(run.CPU[i]), true
	case source.Latency:
		return mean(run.Latency[i]), true
	case source.LatencyP99:
		if i >= len(run.P99PerService) || len(run.P99PerService[i]) < end {
			return math.NaN(), false // a Run not built by Simulate
		}
		return slices.Max(run.P99PerService[i][from:end]), true
	case source.RequestsPeak:
		return s.peak(run.Arrivals[i], from, end), true
	case source.Replicas:
		var sum float64
		for _, n := range run.Replicas[i][from:end] {
			sum += float64(n)
		}
		return sum / float64(end-from), true
	case source.Memory:
		var sum float64
		for t := from; t < end; t++ {
			sum += float64(run.Replicas[i][t])*podMemoryBytes + run.Arrivals[i][t]*memoryBytesPerRPS
		}
		return sum / float64(end-from), true
	}
	return math.NaN(), false
}

// peak is the largest mean over Config.PeakResolution seconds among the
// windows ending in seconds from..end-1 (a window may reach back before
// from, as a Prometheus rate's range does).
func (s *Source) peak(xs []float64, from, end int) float64 {
	r := max(int(s.Run.Config.PeakResolution/time.Second), 1)
	best := 0.0
	for t := from; t < end; t++ {
		lo := max(t-r+1, 0)
		var sum float64
		for _, x := range xs[lo : t+1] {
			sum += x
		}
		best = max(best, sum/float64(t+1-lo))
	}
	return best
}
