package source_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/forecaster/topology"
)

func newSyntheticSource(t *testing.T) (*source.Synthetic, *synthetic.Generator) {
	t.Helper()
	gen, err := synthetic.New(synthetic.DefaultConfig(), topology.OnlineBoutique())
	if err != nil {
		t.Fatalf("synthetic.New: %v", err)
	}
	return source.NewSynthetic(gen), gen
}

func TestSyntheticFetchShape(t *testing.T) {
	src, _ := newSyntheticSource(t)
	if src.Name() != "synthetic" {
		t.Errorf("Name() = %q", src.Name())
	}
	start := time.Date(2026, 5, 1, 12, 0, 7, 0, time.UTC)
	tests := []struct {
		name        string
		services    []string
		features    []source.Feature
		span        time.Duration
		step        time.Duration
		wantSamples int
		wantPresent []string
	}{
		{"6 minutes at 30s, both ends", []string{"frontend"}, []source.Feature{source.Requests}, 6 * time.Minute, 30 * time.Second, 13, []string{"frontend"}},
		{"end between steps", []string{"frontend"}, []source.Feature{source.CPU}, 6*time.Minute - time.Second, 30 * time.Second, 12, []string{"frontend"}},
		{"single instant", []string{"cartservice"}, []source.Feature{source.Latency}, 0, time.Minute, 1, []string{"cartservice"}},
		{"unknown service absent", []string{"frontend", "nosuchservice"}, source.AllFeatures, time.Hour, time.Minute, 61, []string{"frontend"}},
		{"only unknown services", []string{"nosuchservice"}, []source.Feature{source.Memory}, time.Minute, time.Second, 61, nil},
		{"repeated names", []string{"adservice", "adservice"}, []source.Feature{source.Replicas, source.Replicas}, 10 * time.Minute, time.Minute, 11, []string{"adservice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := source.Query{Services: tt.services, Features: tt.features, Start: start, End: start.Add(tt.span), Step: tt.step}
			data, err := src.Fetch(context.Background(), q)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			for _, f := range tt.features {
				if len(data[f]) != len(tt.wantPresent) {
					t.Fatalf("feature %s: %d services, want %v", f, len(data[f]), tt.wantPresent)
				}
				for _, svc := range tt.wantPresent {
					samples := data[f][svc]
					if len(samples) != tt.wantSamples {
						t.Fatalf("feature %s service %s: %d samples, want %d", f, svc, len(samples), tt.wantSamples)
					}
					for k, s := range samples {
						if want := start.Add(time.Duration(k) * tt.step); !s.Time.Equal(want) {
							t.Fatalf("sample %d at %v, want %v", k, s.Time, want)
						}
						if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) || s.Value < 0 {
							t.Fatalf("feature %s service %s sample %d = %v", f, svc, k, s.Value)
						}
					}
				}
			}
		})
	}
}

func TestSyntheticFetchValues(t *testing.T) {
	src, gen := newSyntheticSource(t)
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	q := source.Query{Services: gen.Services(), Features: source.AllFeatures, Start: start, End: start.Add(5 * time.Minute), Step: 15 * time.Second}
	data, err := src.Fetch(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range gen.Services() {
		for k, s := range data[source.Requests][svc] {
			st, _ := gen.At(s.Time).Service(svc)
			want := map[source.Feature]float64{
				source.CPU:      st.CPUCores,
				source.Requests: st.Requests,
				source.Latency:  st.LatencySeconds,
				source.Memory:   st.MemoryBytes,
				source.Replicas: float64(st.Replicas),
			}
			for f, w := range want {
				if got := data[f][svc][k].Value; got != w {
					t.Fatalf("%s %s at %v = %v, generator says %v", svc, f, s.Time, got, w)
				}
			}
		}
	}
}

func TestSyntheticFetchErrors(t *testing.T) {
	src, _ := newSyntheticSource(t)
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	valid := source.Query{Services: []string{"frontend"}, Features: []source.Feature{source.CPU}, Start: start, End: start.Add(time.Hour), Step: time.Second}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	tests := []struct {
		name   string
		src    *source.Synthetic
		ctx    context.Context
		q      func() source.Query
		wantIs error
		want   string
	}{
		{"cancelled", src, cancelled, func() source.Query { return valid }, context.Canceled, "interrupted"},
		{"deadline", src, expired, func() source.Query { return valid }, context.DeadlineExceeded, "timeout"},
		{"invalid query", src, context.Background(), func() source.Query { q := valid; q.Step = 0; return q }, nil, "step"},
		{"unknown feature", src, context.Background(), func() source.Query {
			q := valid
			q.Features = []source.Feature{"gpu"}
			return q
		}, nil, `"gpu"`},
		{"too long", src, context.Background(), func() source.Query { q := valid; q.End = start.Add(365 * 24 * time.Hour); return q }, nil, "points"},
		{"no generator", source.NewSynthetic(nil), context.Background(), func() source.Query { return valid }, nil, "no generator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.src.Fetch(tt.ctx, tt.q())
			if err == nil {
				t.Fatalf("Fetch returned %d features and no error", len(data))
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	var fe *source.FetchError
	if _, err := src.Fetch(expired, valid); !errors.As(err, &fe) || fe.Kind != source.ErrTimeout {
		t.Errorf("expired deadline: got %v, want a FetchError of kind %s", err, source.ErrTimeout)
	}
}
