package forecaster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/models/onnxbuild"
)

// A model with a seasonal context, run by the real ONNX runtime: window 3,
// horizon 4, a period of 20 steps, requests as its seasonal feature. Its
// request forecast for step h is the lagged block's row window+h: the
// request rate one period before the forecast time (a seasonal-naive model),
// so a test reads from the forecast which lagged values reached the model.
// Its CPU forecast is the window's last CPU value.
const (
	seasonalWindow  = 3
	seasonalHorizon = 4
	seasonalPeriod  = 20
	seasonalStep    = 30 * time.Second
)

func seasonalModel(t testing.TB) (*model.Manifest, Predictor) {
	t.Helper()
	nF, nN := 2, len(services)
	rows := nF*seasonalWindow + seasonalWindow + seasonalHorizon
	selectRows := func(row func(h int) int) []float32 {
		w := make([]float32, seasonalHorizon*rows)
		for h := range seasonalHorizon {
			w[h*rows+row(h)] = 1
		}
		return w
	}
	b := onnxbuild.New("seasonal-naive")
	x := b.Input("x", []int{rows, nN})
	b.Output(b.MatMul(b.Initializer("requests_w", []int{seasonalHorizon, rows},
		selectRows(func(h int) int { return nF*seasonalWindow + seasonalWindow + h })), x), "requests")
	b.Output(b.MatMul(b.Initializer("cpu_w", []int{seasonalHorizon, rows},
		selectRows(func(int) int { return 2*seasonalWindow - 1 })), x), "cpu")
	onnx, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	man := &model.Manifest{
		Format: model.ManifestFormat, Name: "seasonal-naive", Version: "test",
		Services: services,
		Features: []source.Feature{source.Requests, source.CPU},
		Window:   seasonalWindow, Horizon: seasonalHorizon, Step: model.Duration(seasonalStep),
		Input: model.Tensor{Name: "x", Shape: []int{rows, nN}},
		Outputs: []model.Output{
			{Tensor: model.Tensor{Name: "requests", Shape: []int{seasonalHorizon, nN}}, Feature: source.Requests, Quantile: 0.5},
			{Tensor: model.Tensor{Name: "cpu", Shape: []int{seasonalHorizon, nN}}, Feature: source.CPU, Quantile: 0.5},
		},
		Normalization: map[source.Feature]model.Stats{
			source.Requests: {Mean: []float64{300, 150}, Std: []float64{30, 15}},
			source.CPU:      {Mean: []float64{3, 1.5}, Std: []float64{0.3, 0.15}},
		},
		Seasonal: &model.Seasonal{PeriodSteps: seasonalPeriod, Features: []source.Feature{source.Requests}},
	}
	for i := range rows * nN {
		man.Golden.Input = append(man.Golden.Input, math.Sin(float64(i)))
	}
	if man.Golden.Outputs, err = model.ComputeGolden(onnx, man); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Parse(onnx, js)
	if err != nil {
		t.Fatal(err)
	}
	session, err := m.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	return m.Manifest(), session
}

// rampBase is each service's request rate at now; it rises by 1 req/s a
// step, so every step's value is distinct: requests(svc, k steps from now)
// = base + k, CPU a hundredth of it.
var rampBase = map[string]float64{"frontend": 300, "cart": 150}

func rampRequests(svc string, at time.Time) float64 {
	return rampBase[svc] + float64(at.Sub(now)/seasonalStep)
}

// rampCSV records the ramp from since to until, one row a step, in the wide
// CSV format the csv source replays.
func rampCSV(t testing.TB, since, until time.Time) *source.CSV {
	t.Helper()
	var b strings.Builder
	b.WriteString("timestamp")
	for _, svc := range services {
		for _, feat := range []source.Feature{source.Requests, source.CPU} {
			col, err := source.CSVColumn(svc, feat)
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString("," + col)
		}
	}
	b.WriteString("\n")
	for at := since; !at.After(until); at = at.Add(seasonalStep) {
		b.WriteString(at.Format(time.RFC3339))
		for _, svc := range services {
			fmt.Fprintf(&b, ",%g,%g", rampRequests(svc, at), rampRequests(svc, at)/100)
		}
		b.WriteString("\n")
	}
	c, err := source.ParseCSV(strings.NewReader(b.String()), "ramp.csv", source.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// queryLog wraps a source, recording its queries and failing those fail
// picks.
type queryLog struct {
	source.Source
	mu      sync.Mutex
	queries []source.Query
	fail    func(source.Query) error
}

func (q *queryLog) Fetch(ctx context.Context, query source.Query) (source.Data, error) {
	q.mu.Lock()
	q.queries = append(q.queries, query)
	fail := q.fail
	q.mu.Unlock()
	if fail != nil {
		if err := fail(query); err != nil {
			return nil, err
		}
	}
	return q.Source.Fetch(ctx, query)
}

// lagged fails the queries that end before the cycle's window: the lagged one.
func lagged(err error) func(source.Query) error {
	return func(q source.Query) error {
		if q.End.Before(now.Add(-time.Minute)) {
			return err
		}
		return nil
	}
}

func seasonalForecaster(t testing.TB, m *model.Manifest, pred Predictor, src source.Source, edits ...func(*Options)) (*Forecaster, *prometheus.Registry, *bytes.Buffer) {
	t.Helper()
	pol := policy.Default()
	pol.CapacityPerPod = 10
	pol.Headroom = 0
	pol.MaxReplicas = 50
	reg := prometheus.NewRegistry()
	logs := &bytes.Buffer{}
	opts := Options{
		Source: src, Manifest: m, Predictor: pred, Policy: pol, Store: &snapshot.Store{},
		StaleAfter: 2 * time.Minute, Registerer: reg, Now: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}
	for _, edit := range edits {
		edit(&opts)
	}
	f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return f, reg, logs
}

// wantForecast checks every service's request forecast: step h (1-based) is
// want(svc, the forecast's time).
func wantForecast(t *testing.T, snap *snapshot.Snapshot, end time.Time, want func(svc string, at time.Time) float64) {
	t.Helper()
	got := byService(snap)
	for _, svc := range services {
		p, ok := got[svc]
		if !ok || p.HeldReason != "" || len(p.RequestsByStep) != seasonalHorizon {
			t.Fatalf("%s: %+v; want a fresh forecast of %d steps", svc, p, seasonalHorizon)
		}
		for h, v := range p.RequestsByStep {
			at := end.Add(time.Duration(h+1) * seasonalStep)
			if w := want(svc, at); math.Abs(v-w) > 1e-3 {
				t.Errorf("%s step %d: forecast %v req/s, want %v", svc, h+1, v, w)
			}
		}
	}
}

func seasonGauge(f *Forecaster, svc string) float64 {
	return testutil.ToFloat64(f.metrics.seasonal.WithLabelValues(svc))
}

// TestSeasonalCycleReadsLastPeriod: each cycle makes one more query, for the
// window and horizon one period back, and the model reads those values.
func TestSeasonalCycleReadsLastPeriod(t *testing.T) {
	m, pred := seasonalModel(t)
	src := &queryLog{Source: rampCSV(t, now.Add(-time.Hour), now.Add(time.Minute))}
	f, _, logs := seasonalForecaster(t, m, pred, src)
	for k := range 2 {
		at := now.Add(time.Duration(k) * seasonalStep)
		snap, err := f.Cycle(context.Background(), at)
		if err != nil {
			t.Fatal(err)
		}
		// One period before each forecast time.
		wantForecast(t, snap, at, func(svc string, ahead time.Time) float64 {
			return rampRequests(svc, ahead.Add(-seasonalPeriod*seasonalStep))
		})
	}
	if len(src.queries) != 4 {
		t.Fatalf("%d queries in 2 cycles, want 2 each", len(src.queries))
	}
	q := src.queries[1]
	first := now.Add(-(seasonalPeriod + seasonalWindow - 1) * seasonalStep)
	if !q.Start.Equal(first.Add(-5*time.Minute)) || !q.End.Equal(now.Add(-(seasonalPeriod-seasonalHorizon)*seasonalStep)) ||
		len(q.Features) != 1 || q.Features[0] != source.Requests {
		t.Errorf("lagged query %+v: want requests from %v (5m before the block) to %v", q, first.Add(-5*time.Minute), now.Add(-(seasonalPeriod-seasonalHorizon)*seasonalStep))
	}
	for _, svc := range services {
		if g := seasonGauge(f, svc); g != 1 {
			t.Errorf("foresight_seasonal_context{service=%q} = %v, want 1", svc, g)
		}
	}
	if n := strings.Count(logs.String(), "seasonal context present"); n != 1 {
		t.Errorf("%d 'seasonal context present' lines, want 1:\n%s", n, logs)
	}
}

// TestSeasonalContextAbsent: a failing lagged query, or a history shorter
// than a period, never costs the forecast: every service is forecast
// without the season (the block holds the window's last value, which this
// model forecasts flat), the gauge says 0, and the log says so once.
func TestSeasonalContextAbsent(t *testing.T) {
	down := &source.FetchError{Kind: source.ErrUnreachable, Err: errors.New("connection refused")}
	tests := []struct {
		name   string
		since  time.Duration // history length before now
		fail   func(source.Query) error
		reason string
		errors float64 // counted source errors after 3 cycles
	}{
		{"lagged query fails", time.Hour, lagged(down), "the lagged query failed: fetching", 3},
		{"lagged query times out", time.Hour, lagged(context.DeadlineExceeded), "context deadline exceeded", 3},
		// The lagged block of the cycle at now is steps now-22 .. now-16.
		{"history shorter than the lag", 10 * seasonalStep, nil, "the history does not reach one period back", 0},
		{"history starts within the lagged block", 19 * seasonalStep, nil, "the history does not reach one period back", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, pred := seasonalModel(t)
			src := &queryLog{Source: rampCSV(t, now.Add(-tc.since), now.Add(time.Minute)), fail: tc.fail}
			f, _, logs := seasonalForecaster(t, m, pred, src)
			for k := range 3 {
				at := now.Add(time.Duration(k) * seasonalStep)
				snap, err := f.Cycle(context.Background(), at)
				if err != nil {
					t.Fatalf("cycle %d: %v", k, err)
				}
				// No season: the window's last value, flat.
				wantForecast(t, snap, at, func(svc string, _ time.Time) float64 { return rampRequests(svc, at) })
			}
			for _, svc := range services {
				if g := seasonGauge(f, svc); g != 0 {
					t.Errorf("foresight_seasonal_context{service=%q} = %v, want 0", svc, g)
				}
			}
			if n := strings.Count(logs.String(), "seasonal context absent"); n != 1 {
				t.Errorf("%d 'seasonal context absent' lines in 3 cycles, want 1:\n%s", n, logs)
			}
			if !strings.Contains(logs.String(), tc.reason) {
				t.Errorf("log does not say %q:\n%s", tc.reason, logs)
			}
			var counted float64
			for _, kind := range []source.ErrorKind{source.ErrUnreachable, source.ErrTimeout} {
				counted += testutil.ToFloat64(f.metrics.sourceErrors.WithLabelValues("csv", string(kind)))
			}
			if counted != tc.errors {
				t.Errorf("foresight_source_errors_total = %v, want %v", counted, tc.errors)
			}
			if v := testutil.ToFloat64(f.metrics.cycles.WithLabelValues(resultOK)); v != 3 {
				t.Errorf("%v ok cycles of 3", v)
			}
		})
	}
}

// TestSeasonalLaggedQueryHangs: a lagged query that never answers gets half
// the time left in the cycle, so the forecast is still made and published
// within the cycle's timeout.
func TestSeasonalLaggedQueryHangs(t *testing.T) {
	m, pred := seasonalModel(t)
	src := &queryLog{Source: rampCSV(t, now.Add(-time.Hour), now.Add(time.Minute))}
	f, _, logs := seasonalForecaster(t, m, pred, hangingLagged{src}, func(o *Options) { o.Timeout = 400 * time.Millisecond })
	start := time.Now()
	snap, err := f.Cycle(context.Background(), now)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	wantForecast(t, snap, now, func(svc string, _ time.Time) float64 { return rampRequests(svc, now) })
	if took < 150*time.Millisecond || took > 390*time.Millisecond {
		t.Errorf("cycle took %v; want the lagged query cut at about half the 400ms timeout", took)
	}
	if g := seasonGauge(f, "cart"); g != 0 || !strings.Contains(logs.String(), "context deadline exceeded") {
		t.Errorf("gauge %v, log:\n%s\nwant 0 and the deadline in the log", g, logs)
	}
}

// hangingLagged blocks the lagged query until its context ends.
type hangingLagged struct{ *queryLog }

func (h hangingLagged) Fetch(ctx context.Context, q source.Query) (source.Data, error) {
	if lagged(errors.New("lagged"))(q) != nil {
		<-ctx.Done()
		return nil, &source.FetchError{Kind: source.ErrTimeout, Err: ctx.Err()}
	}
	return h.queryLog.Fetch(ctx, q)
}

// TestSeasonalContextReturns: once the lagged query answers again the gauge
// goes back to 1, the log says so once, and the forecast reads the season.
func TestSeasonalContextReturns(t *testing.T) {
	m, pred := seasonalModel(t)
	src := &queryLog{Source: rampCSV(t, now.Add(-time.Hour), now.Add(time.Minute)), fail: lagged(errors.New("boom"))}
	f, _, logs := seasonalForecaster(t, m, pred, src)
	if _, err := f.Cycle(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	src.fail = nil
	for range 2 {
		snap, err := f.Cycle(context.Background(), now)
		if err != nil {
			t.Fatal(err)
		}
		wantForecast(t, snap, now, func(svc string, at time.Time) float64 {
			return rampRequests(svc, at.Add(-seasonalPeriod*seasonalStep))
		})
	}
	if g := seasonGauge(f, "frontend"); g != 1 {
		t.Errorf("gauge %v after the lagged query answered again, want 1", g)
	}
	if a, p := strings.Count(logs.String(), "seasonal context absent"), strings.Count(logs.String(), "seasonal context present"); a != 1 || p != 1 {
		t.Errorf("%d absent and %d present lines, want 1 each:\n%s", a, p, logs)
	}
}

// TestNonSeasonalModelQueriesOnce: a model without a seasonal context makes
// one query a cycle and exports no seasonal gauge, as before.
func TestNonSeasonalModelQueriesOnce(t *testing.T) {
	src := &queryLog{Source: &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5}}}
	f, _, reg := newTestForecaster(t, src, &lastValuePredictor{})
	for range 2 {
		if _, err := f.Cycle(context.Background(), now); err != nil {
			t.Fatal(err)
		}
	}
	if len(src.queries) != 2 {
		t.Errorf("%d queries in 2 cycles, want 1 each", len(src.queries))
	}
	if n, err := testutil.GatherAndCount(reg, "foresight_seasonal_context"); err != nil || n != 0 {
		t.Errorf("%d foresight_seasonal_context series (%v), want none", n, err)
	}
}

// BenchmarkSeasonalCycle: one cycle of the seasonal model on CSV replay,
// with the lagged query answered and failing.
func BenchmarkSeasonalCycle(b *testing.B) {
	for _, tc := range []struct {
		name string
		fail func(source.Query) error
	}{{"season", nil}, {"lagged query failing", lagged(errors.New("boom"))}} {
		b.Run(tc.name, func(b *testing.B) {
			m, pred := seasonalModel(b)
			src := &queryLog{Source: rampCSV(b, now.Add(-time.Hour), now.Add(time.Minute)), fail: tc.fail}
			f, _, _ := seasonalForecaster(b, m, pred, src)
			b.ReportAllocs()
			for b.Loop() {
				src.queries = src.queries[:0]
				if _, err := f.Cycle(context.Background(), now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
