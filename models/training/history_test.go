package training

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/models/gnn"
)

// youngSource is a source whose application started at from: it has no
// samples before, as Prometheus has none of a fresh install.
type youngSource struct {
	source.Source
	from time.Time
}

func (y youngSource) Fetch(ctx context.Context, q source.Query) (source.Data, error) {
	data, err := y.Source.Fetch(ctx, q)
	if err != nil {
		return nil, err
	}
	for _, byService := range data {
		for svc, samples := range byService {
			kept := samples[:0]
			for _, s := range samples {
				if !s.Time.Before(y.from) {
					kept = append(kept, s)
				}
			}
			byService[svc] = kept
		}
	}
	return data, nil
}

// youngConfig trains (one epoch, no season) on a week-long range of a
// three-service application whose samples begin dataFrom after its start.
func youngConfig(t *testing.T, dataFrom time.Duration) Config {
	t.Helper()
	graph := topology.Graph{
		Services: []string{"ledger", "payments", "web-front"},
		Edges:    []topology.Edge{{Caller: "web-front", Callee: "payments", FanOut: 1}, {Caller: "payments", Callee: "ledger", FanOut: 2}},
	}
	sc := synthetic.DefaultConfig()
	sc.Services = nil // every service gets the default profile
	gen, err := synthetic.New(sc, graph)
	if err != nil {
		t.Fatal(err)
	}
	opts := gnn.DefaultOptions(graph)
	opts.Name, opts.Step, opts.Epochs, opts.Patience = "ledger-gnn", time.Minute, 1, 1
	start := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	return Config{
		Source: youngSource{source.NewSynthetic(gen), start.Add(dataFrom)}, SourceName: "young", Namespace: "ledger",
		Start: start, End: start.Add(7 * 24 * time.Hour), Options: opts,
		TestFraction: DefaultTestFraction, ValidationFraction: DefaultValidationFraction, Season: SeasonNone,
	}
}

// TestRunTrimsTheEmptyStartOfAYoungHistory: six hours of data at the end of
// a week-long range (observed at 3.6 % of its steps) train from where the
// data begins, subject to the minimum history.
func TestRunTrimsTheEmptyStartOfAYoungHistory(t *testing.T) {
	const dataFrom = 7*24*time.Hour - 6*time.Hour
	tests := []struct {
		name       string
		dataFrom   time.Duration
		minHistory time.Duration
		want       string // an error; "" trains
		notEnough  bool
	}{
		{"trims to the first sample", dataFrom, 0, "", false},
		{"more than the minimum", dataFrom, 5 * time.Hour, "", false},
		{"less than the minimum", dataFrom, 24 * time.Hour, "has 6h0m0s of history (from 2025-06-08T18:00:00Z to 2025-06-09T00:00:00Z), training needs at least 24h0m0s", true},
		// Nothing at all to trim to: shaping the history says so, as before.
		{"no samples", 8 * 24 * time.Hour, time.Hour, "no service has a usable request-rate or CPU series", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := youngConfig(t, tc.dataFrom)
			cfg.MinHistory = tc.minHistory
			_, report, err := Run(context.Background(), cfg, nil)
			if errors.Is(err, ErrNotEnoughHistory) != tc.notEnough {
				t.Errorf("error %v: wraps ErrNotEnoughHistory %v, want %v", err, !tc.notEnough, tc.notEnough)
			}
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := cfg.Start.Add(tc.dataFrom); !report.Start.Equal(want) || !report.End.Equal(cfg.End) || report.Steps != 361 {
				t.Errorf("report spans %v..%v (%d steps), want %v..%v (361 steps)", report.Start, report.End, report.Steps, want, cfg.End)
			}
			if len(report.Data.Services) != 3 {
				t.Errorf("modelled %v, want all three services", report.Data.Services)
			}
		})
	}
}

func TestTrimmedStart(t *testing.T) {
	start := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		first time.Time
		want  time.Time
	}{
		{"data from the start", start, start},
		{"a sample before the start", start.Add(-time.Hour), start},
		{"on the grid", start.Add(90 * time.Minute), start.Add(90 * time.Minute)},
		{"between steps: the step before", start.Add(90*time.Minute + 20*time.Second), start.Add(90 * time.Minute)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := trimmedStart(start, tc.first, time.Minute); !got.Equal(tc.want) {
				t.Errorf("trimmedStart(%v) = %v, want %v", tc.first, got, tc.want)
			}
		})
	}
}

func TestFirstSizingSample(t *testing.T) {
	t0 := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	end := t0.Add(time.Hour)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	data := source.Data{}
	// Latency and memory do not size anything; NaN and negative are no
	// samples; a service not modelled does not count.
	data.Add(source.Latency, "ledger", source.Sample{Time: at(1), Value: 0.2})
	data.Add(source.CPU, "ledger", source.Sample{Time: at(2), Value: -1})
	data.Add(source.CPU, "ledger", source.Sample{Time: at(3), Value: 0})
	data.Add(source.Requests, "payments", source.Sample{Time: at(4), Value: 5})
	data.Add(source.Requests, "batch", source.Sample{Time: at(0), Value: 5})
	tests := []struct {
		name     string
		services []string
		end      time.Time
		want     time.Time
		found    bool
	}{
		{"earliest real sample", []string{"ledger", "payments"}, end, at(3), true},
		{"one service", []string{"payments"}, end, at(4), true},
		{"only samples at or after end", []string{"payments"}, at(4), time.Time{}, false},
		{"no service with samples", []string{"web-front"}, end, time.Time{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, found := firstSizingSample(data, tc.services, tc.end)
			if found != tc.found || !got.Equal(tc.want) {
				t.Errorf("firstSizingSample = %v, %v; want %v, %v", got, found, tc.want, tc.found)
			}
		})
	}
}
