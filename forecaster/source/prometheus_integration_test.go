package source_test

import (
	"context"
	"errors"
	"math"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/promtest"
)

// lookback is Prometheus' default lookback delta: an instant query at t sees
// the newest sample in [t-5m, t].
const lookback = 5 * time.Minute

// TestPrometheusSourceAgainstRealServer backfills part of the boutique CSV
// into a real Prometheus, under the names of the shipped recording rules, and
// checks that the Prometheus source with its default queries reads back the
// CSV source's values. Where the CSV has a gap (NaN), the backfill has no
// sample and Prometheus returns the previous value if it is at most 5 minutes
// old (its lookback), and nothing otherwise; that is the expected difference
// between the two sources.
func TestPrometheusSourceAgainstRealServer(t *testing.T) {
	path := sharedData(t, "boutique/boutique.csv")
	csvSource, err := source.NewCSV(path, source.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const step = 30 * time.Second
	services := csvSource.Services()
	fileStart, _ := csvSource.Span()
	// Four hours, starting where several services have gaps in req/res.
	from := fileStart.Add(5 * time.Hour)
	to := from.Add(4 * time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	history, err := csvSource.Fetch(ctx, source.Query{Services: services, Features: source.AllFeatures, Start: from, End: to, Step: step})
	if err != nil {
		t.Fatal(err)
	}

	srv := promtest.Start(t, promtest.Options{
		Backfill:  promtest.WriteOpenMetricsFile(t, "default", history),
		RulesFile: shippedRulesFile(t),
	})
	cfg := source.DefaultPrometheusConfig()
	cfg.URL = srv.URL()
	prom, _ := newSource(t, cfg)

	// Windows of 12 steps: one at the start (no history before it to look
	// back to), one in the middle, and windows ending on gaps of some series,
	// so that both lookback cases are exercised.
	windows := []time.Time{from, from.Add(2 * time.Hour)}
	gapStarts, longGapEnds := gapWindowEnds(history, from.Add(11*step), to, step)
	for _, ends := range [][]time.Time{gapStarts, longGapEnds} {
		for _, end := range ends[:min(3, len(ends))] {
			windows = append(windows, end.Add(-11*step))
		}
	}
	var compared, carried, absent, boundary int
	for _, start := range windows {
		q := source.Query{Namespace: "default", Services: services, Features: source.AllFeatures,
			Start: start, End: start.Add(11 * step), Step: step}
		got, err := prom.Fetch(ctx, q)
		if err != nil {
			t.Fatalf("prometheus Fetch %v: %v", start, err)
		}
		for _, f := range source.AllFeatures {
			for _, s := range services {
				c, ca, ab, bo := compareWithCSV(t, f, s, q, got[f][s], history[f][s])
				compared, carried, absent, boundary = compared+c, carried+ca, absent+ab, boundary+bo
			}
		}
	}
	t.Logf("%d windows: %d samples equal to the CSV, %d gaps filled by the lookback, %d gaps absent, %d gaps exactly 5m after a value",
		len(windows), compared, carried, absent, boundary)
	// The backfilled hours are chosen to hold both kinds of gaps.
	if carried == 0 || absent == 0 {
		t.Errorf("the windows did not cover both a short and a long CSV gap (carried %d, absent %d)", carried, absent)
	}
	if compared < len(windows)*12*len(services)*len(source.AllFeatures)*9/10 {
		t.Errorf("only %d samples compared", compared)
	}

	t.Run("shipped rules load", func(t *testing.T) {
		client, err := api.NewClient(api.Config{Address: srv.URL()})
		if err != nil {
			t.Fatal(err)
		}
		rules, err := v1.NewAPI(client).Rules(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				if rr, ok := r.(v1.RecordingRule); ok {
					n++
					if rr.Health == v1.RuleHealthBad {
						t.Errorf("rule %s: %s", rr.Name, rr.LastError)
					}
				}
			}
		}
		if n != 8 {
			t.Errorf("Prometheus loaded %d recording rules, want 8", n)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		cfg := source.DefaultPrometheusConfig()
		cfg.URL = "http://" + addr
		gone, _ := newSource(t, cfg)
		_, err = gone.Fetch(ctx, source.Query{Namespace: "default", Services: services,
			Features: source.AllFeatures, Start: from, End: from.Add(11 * step), Step: step})
		var fe *source.FetchError
		if !errors.As(err, &fe) || fe.Kind != source.ErrUnreachable {
			t.Fatalf("Fetch error = %v, want an unreachable FetchError", err)
		}
	})
}

// compareWithCSV checks one series of one window and counts the samples that
// equal the CSV, the CSV gaps Prometheus filled from the lookback, and the
// CSV gaps it left absent.
func compareWithCSV(t *testing.T, f source.Feature, service string, q source.Query, got, history []source.Sample) (compared, carried, absent, boundary int) {
	t.Helper()
	byTime := make(map[time.Time]float64, len(got))
	for _, s := range got {
		if _, ok := byTime[s.Time]; ok {
			t.Errorf("%s %s: two samples at %v", f, service, s.Time)
		}
		byTime[s.Time] = s.Value
	}
	expected := 0
	for at := q.Start; !at.After(q.End); at = at.Add(q.Step) {
		value, ok := byTime[at]
		csvValue, stale, staleAt := csvAt(history, at)
		switch {
		case !math.IsNaN(csvValue):
			expected++
			if !ok || value != csvValue {
				t.Errorf("%s %s at %v: prometheus %v (present %v), csv %v", f, service, at, value, ok, csvValue)
			}
			compared++
		case staleAt.IsZero() || at.Sub(staleAt) > lookback:
			if ok {
				t.Errorf("%s %s at %v: prometheus %v for a CSV gap with no value in the last 5m", f, service, at, value)
			}
			absent++
		case at.Sub(staleAt) == lookback:
			// The lookback boundary itself: whether it is included changed
			// between Prometheus versions, so accept both answers.
			if ok {
				expected++
				if value != stale {
					t.Errorf("%s %s at %v: prometheus %v, want %v carried from %v or nothing", f, service, at, value, stale, staleAt)
				}
			}
			boundary++
		default:
			expected++
			if !ok || value != stale {
				t.Errorf("%s %s at %v: prometheus %v (present %v), want %v carried from %v by the lookback",
					f, service, at, value, ok, stale, staleAt)
			}
			carried++
		}
	}
	if len(got) != expected {
		t.Errorf("%s %s: prometheus returned %d samples, want %d", f, service, len(got), expected)
	}
	return compared, carried, absent, boundary
}

// csvAt returns the CSV value at t (NaN when missing) and, for a gap, the
// newest earlier value and its time (zero time when none was backfilled).
func csvAt(history []source.Sample, t time.Time) (value, stale float64, staleAt time.Time) {
	value = math.NaN()
	for _, s := range history {
		if s.Time.After(t) {
			break
		}
		if s.Time.Equal(t) {
			value = s.Value
			break
		}
		if !math.IsNaN(s.Value) {
			stale, staleAt = s.Value, s.Time
		}
	}
	return value, stale, staleAt
}

// gapWindowEnds returns times in [from, to] worth ending a window on: the
// first missing step of a gap (its value comes from the lookback) and the last
// step of gaps longer than the lookback (no value at all).
func gapWindowEnds(data source.Data, from, to time.Time, step time.Duration) (gapStarts, longGapEnds []time.Time) {
	seenStart, seenEnd := map[time.Time]bool{}, map[time.Time]bool{}
	for _, f := range source.AllFeatures {
		for _, samples := range data[f] {
			run := 0
			for i, s := range samples {
				if !math.IsNaN(s.Value) {
					run = 0
					continue
				}
				run++
				inside := !s.Time.Before(from) && !s.Time.After(to)
				if inside && run == 1 && i > 0 && !seenStart[s.Time] {
					seenStart[s.Time] = true
					gapStarts = append(gapStarts, s.Time)
				}
				lastOfRun := i+1 == len(samples) || !math.IsNaN(samples[i+1].Value)
				if inside && lastOfRun && time.Duration(run)*step > lookback && !seenEnd[s.Time] {
					seenEnd[s.Time] = true
					longGapEnds = append(longGapEnds, s.Time)
				}
			}
		}
	}
	slices.SortFunc(gapStarts, time.Time.Compare)
	slices.SortFunc(longGapEnds, time.Time.Compare)
	return gapStarts, longGapEnds
}
