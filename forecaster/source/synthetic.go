package source

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/foresightscale/foresight/forecaster/synthetic"
)

// Synthetic serves the deterministic synthetic workload as a Source: the
// embedded default of the demo, with no backend to reach.
type Synthetic struct {
	gen *synthetic.Generator
}

// NewSynthetic wraps a generator.
func NewSynthetic(gen *synthetic.Generator) *Synthetic { return &Synthetic{gen: gen} }

// Name implements Source.
func (s *Synthetic) Name() string { return "synthetic" }

// Fetch returns, for every requested service the generator knows and every
// requested feature, one sample at q.Start + k·q.Step for each k with
// q.Start + k·q.Step ≤ q.End (the grid of a Prometheus range query). Units:
// CPU in cores, memory in bytes, requests in req/s, latency in seconds.
// Services the generator does not know are absent from the result, and so
// are the FeedbackFeatures (latency_p99), which it does not model.
func (s *Synthetic) Fetch(ctx context.Context, q Query) (Data, error) {
	if s.gen == nil {
		return nil, errors.New("synthetic source: no generator")
	}
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("synthetic source: %w", err)
	}
	for _, f := range q.Features {
		if _, ok := syntheticValue(f, synthetic.ServiceState{}); !ok && !slices.Contains(FeedbackFeatures, f) {
			return nil, fmt.Errorf("synthetic source: feature %q is not generated", f)
		}
	}
	states, err := s.gen.Series(ctx, q.Start, q.End, q.Step)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, &FetchError{Kind: ErrTimeout, Err: err}
		}
		return nil, fmt.Errorf("synthetic source: %w", err)
	}
	known := make(map[string]int)
	for i, name := range s.gen.Services() {
		known[name] = i
	}
	data := make(Data, len(q.Features))
	for _, f := range q.Features {
		if _, ok := syntheticValue(f, synthetic.ServiceState{}); !ok {
			continue // a feedback feature the generator does not model: absent
		}
		for _, svc := range q.servicesOf(s.gen.Services()) {
			node, ok := known[svc]
			if !ok || data[f][svc] != nil { // unknown, or asked twice
				continue
			}
			samples := make([]Sample, len(states))
			for k, st := range states {
				v, _ := syntheticValue(f, st.Services[node])
				samples[k] = Sample{Time: st.Time, Value: v}
			}
			if data[f] == nil {
				data[f] = make(map[string][]Sample)
			}
			data[f][svc] = samples
		}
	}
	return data, nil
}

// syntheticValue maps a feature to the generated quantity; false for a
// feature the generator does not produce.
func syntheticValue(f Feature, s synthetic.ServiceState) (float64, bool) {
	switch f {
	case CPU:
		return s.CPUCores, true
	case Requests:
		return s.Requests, true
	case Latency:
		return s.LatencySeconds, true
	case Memory:
		return s.MemoryBytes, true
	case Replicas:
		return float64(s.Replicas), true
	}
	return 0, false
}
