package forecaster

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
)

// Regression tests for the faults issue 12's fault matrix found in the loop.

// seriesSource serves, per feature and service, a constant value up to an
// optional last sample time; a missing entry has no series at all.
type seriesSource struct {
	values map[source.Feature]map[string]float64
	until  map[string]time.Time // newest sample time per service (zero: up to the query's end)
}

func (s *seriesSource) Name() string { return "series" }

func (s *seriesSource) Fetch(_ context.Context, q source.Query) (source.Data, error) {
	d := source.Data{}
	for t := q.Start; !t.After(q.End); t = t.Add(q.Step) {
		for feat, bySvc := range s.values {
			for svc, v := range bySvc {
				if until := s.until[svc]; !until.IsZero() && t.After(until) {
					continue
				}
				d.Add(feat, svc, source.Sample{Time: t, Value: v})
			}
		}
	}
	return d, nil
}

// float32Predictor is lastValuePredictor behind the model session's own
// input check: a value that does not fit a float32 fails the whole call, as
// the real ONNX session does.
type float32Predictor struct{ lastValuePredictor }

func (p *float32Predictor) Predict(x []float64) (map[string][]float64, error) {
	for i, v := range x {
		if math.IsInf(float64(float32(v)), 0) || math.IsNaN(v) {
			return nil, fmt.Errorf("predict: input[%d] is %v, not a finite float32", i, v)
		}
	}
	return p.lastValuePredictor.Predict(x)
}

func faultForecaster(t *testing.T, m *model.Manifest, src source.Source, pred Predictor, staleAfter time.Duration, clock *time.Time) (*Forecaster, *prometheus.Registry) {
	t.Helper()
	pol := policy.Default()
	pol.CapacityPerPod = 10
	pol.Headroom = 0
	pol.MaxReplicas = 50
	reg := prometheus.NewRegistry()
	f, err := New(Options{
		Source: src, Manifest: m, Predictor: pred, Policy: pol, Store: &snapshot.Store{},
		StaleAfter: staleAfter, Registerer: reg, Now: func() time.Time { return *clock },
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, reg
}

// An absurd sample in one service (1e25 fits a float32, 1e41 does not) must
// put that service at maxReplicas, never min, and leave the others fresh.
func TestOutOfRangeInputIsConfinedToItsService(t *testing.T) {
	for _, huge := range []float64{1e25, 1e41, math.MaxFloat64} {
		t.Run(fmt.Sprint(huge), func(t *testing.T) {
			clock := now
			src := &seriesSource{values: map[source.Feature]map[string]float64{
				source.Requests: {"frontend": huge, "cart": 5},
				source.CPU:      {"frontend": 0.5, "cart": 0.05},
			}}
			f, reg := faultForecaster(t, testManifest(), src, &float32Predictor{}, 2*time.Minute, &clock)
			snap, err := f.Cycle(context.Background(), clock)
			if err != nil {
				t.Fatalf("cycle failed: %v", err)
			}
			got := byService(snap)
			fe, cart := got["frontend"], got["cart"]
			if fe.PredictedReplicas != 50 || fe.HeldReason != "" {
				t.Errorf("frontend: %d replicas (held %q); want maxReplicas 50, fresh", fe.PredictedReplicas, fe.HeldReason)
			}
			if !math.IsNaN(fe.PredictedRequests) || !math.IsNaN(fe.PredictedCPUCores) || fe.RequestsByStep != nil {
				t.Errorf("frontend's load forecast from clipped input is published: requests %v, cpu %v, by step %v",
					fe.PredictedRequests, fe.PredictedCPUCores, fe.RequestsByStep)
			}
			if cart.PredictedReplicas != 1 || cart.HeldReason != "" || cart.PredictedRequests != 5 {
				t.Errorf("cart: %d replicas, %v req/s (held %q); want 1, 5, fresh", cart.PredictedReplicas, cart.PredictedRequests, cart.HeldReason)
			}
			if v := testutil.ToFloat64(f.metrics.inputOutOfRange.WithLabelValues("frontend", "requests")); v == 0 {
				t.Error("foresight_input_out_of_range_total{frontend,requests} not counted")
			}
			if n, _ := testutil.GatherAndCount(reg, "foresight_input_out_of_range_total"); n != 1 {
				t.Errorf("%d out-of-range series, want only frontend's requests", n)
			}
		})
	}
}

// An idle service has a request rate of 0 and, from the shipped recording
// rules, no latency series at all: that is a measurement, and it must scale
// the service down rather than hold it as missing_data forever.
func TestIdleServiceWithoutLatencyIsForecast(t *testing.T) {
	m := testManifest()
	m.Features = append(m.Features, source.Latency)
	m.Input.Shape = []int{9, 2}
	m.Normalization[source.Latency] = model.Stats{Mean: []float64{0.05, 0.05}, Std: []float64{0.01, 0.01}}
	clock := now
	src := &seriesSource{values: map[source.Feature]map[string]float64{
		source.Requests: {"frontend": 45, "cart": 0},
		source.CPU:      {"frontend": 0.5, "cart": 0.01},
		source.Latency:  {"frontend": 0.05},
	}}
	f, _ := faultForecaster(t, m, src, &lastValuePredictor{}, 2*time.Minute, &clock)
	snap, err := f.Cycle(context.Background(), clock)
	if err != nil {
		t.Fatal(err)
	}
	cart, ok := byService(snap)["cart"]
	if !ok || cart.HeldReason != "" || cart.PredictedReplicas != 1 {
		t.Fatalf("idle cart: published %v, %+v; want fresh at minReplicas 1", ok, cart)
	}
	// Without its request rate a service is still held: that one sizes it.
	delete(src.values[source.Requests], "cart")
	snap, _ = f.Cycle(context.Background(), clock.Add(30*time.Second))
	if got := byService(snap)["cart"].HeldReason; got != HeldMissingData {
		t.Errorf("cart without requests: held %q, want %q", got, HeldMissingData)
	}
}

// Input whose newest sample is minutes old must be held, not published as
// fresh; the age of what is served counts from the newest real sample.
func TestStaleInputIsHeldAndAgeCountsFromTheData(t *testing.T) {
	clock := now
	src := &seriesSource{values: map[source.Feature]map[string]float64{
		source.Requests: {"frontend": 45, "cart": 5},
		source.CPU:      {"frontend": 0.5, "cart": 0.05},
	}, until: map[string]time.Time{"cart": now.Add(-time.Minute)}}
	f, _ := faultForecaster(t, testManifest(), src, &lastValuePredictor{}, 10*time.Minute, &clock)
	snap, err := f.Cycle(context.Background(), clock)
	if err != nil {
		t.Fatal(err)
	}
	got := byService(snap)
	if got["cart"].HeldReason != "" || !got["cart"].InputAt.Equal(now.Add(-time.Minute)) {
		t.Fatalf("cart a minute behind: held %q, input at %v; want fresh, input at %v", got["cart"].HeldReason, got["cart"].InputAt, now.Add(-time.Minute))
	}
	if !got["frontend"].InputAt.Equal(now) {
		t.Errorf("frontend input at %v, want %v", got["frontend"].InputAt, now)
	}
	// Four minutes later the data has not moved: within the 5 minute
	// look-back the window carries it, and before the fix it was published
	// as fresh. (Data older than the window's whole query range is simply
	// absent: missing_data.)
	src.until["frontend"] = now
	clock = now.Add(4 * time.Minute)
	snap, err = f.Cycle(context.Background(), clock)
	if err == nil {
		t.Fatal("a cycle on input 4 minutes old reported success")
	}
	for _, svc := range services {
		if p := byService(snap)[svc]; p.HeldReason != HeldStaleInput {
			t.Errorf("%s: held %q, want %q", svc, p.HeldReason, HeldStaleInput)
		}
	}
}

// After staleAfter nothing is served, but the service stays listed with its
// reason, and the loop stops calling itself ready.
func TestExpiredServicesStayVisibleAndReadinessFollows(t *testing.T) {
	clock := now
	src := &fakeSource{requests: map[string]float64{"frontend": 45, "cart": 5}}
	f, _ := faultForecaster(t, testManifest(), src, &lastValuePredictor{}, 2*time.Minute, &clock)
	if err := f.Ready(); err == nil || !strings.Contains(err.Error(), "no fresh forecast yet") {
		t.Errorf("ready before any cycle: %v", err)
	}
	if _, err := f.Cycle(context.Background(), clock); err != nil {
		t.Fatal(err)
	}
	if err := f.Ready(); err != nil {
		t.Fatalf("not ready after a good cycle: %v", err)
	}
	src.err = &source.FetchError{Kind: source.ErrUnreachable, Err: fmt.Errorf("connection refused")}
	clock = now.Add(time.Minute)
	snap, _ := f.Cycle(context.Background(), clock)
	if len(snap.Predictions) != 2 || len(snap.Unpublished) != 0 {
		t.Fatalf("within staleAfter: %d predictions, %d unpublished; want 2 held, 0", len(snap.Predictions), len(snap.Unpublished))
	}
	if err := f.Ready(); err != nil {
		t.Errorf("not ready while held values are served: %v", err)
	}
	clock = now.Add(3 * time.Minute)
	snap, _ = f.Cycle(context.Background(), clock)
	if len(snap.Predictions) != 0 || len(snap.Unpublished) != 2 {
		t.Fatalf("after staleAfter: %d predictions, %d unpublished; want 0, 2", len(snap.Predictions), len(snap.Unpublished))
	}
	for _, u := range snap.Unpublished {
		if u.Reason != HeldSourceError || !u.Since.Equal(now.Add(2*time.Minute)) || u.Namespace != "default" {
			t.Errorf("unpublished %+v; want reason %s since %v", u, HeldSourceError, now.Add(2*time.Minute))
		}
	}
	err := f.Ready()
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("ready after staleAfter without a fresh forecast: %v; want an error naming the last failure", err)
	}
	src.err = nil
	clock = now.Add(4 * time.Minute)
	if _, err := f.Cycle(context.Background(), clock); err != nil {
		t.Fatal(err)
	}
	if err := f.Ready(); err != nil {
		t.Errorf("not ready after recovering: %v", err)
	}
}

// Loop settings under which nothing useful is ever published are refused
// at start, naming the setting.
func TestNewRefusesTimingThatPublishesNothing(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"stale before the next cycle", func(o *Options) { o.Interval, o.StaleAfter = 2*time.Second, time.Second }, "staleAfter 1s"},
		{"stale equal to the interval", func(o *Options) { o.StaleAfter = 30 * time.Second }, "staleAfter 30s"},
		{"a flood of cycles", func(o *Options) { o.Interval, o.StaleAfter = time.Millisecond, time.Minute }, "interval 1ms"},
		{"timeout over the interval", func(o *Options) { o.Interval, o.Timeout = 5*time.Second, 6*time.Second }, "timeout 6s"},
		{"lead time past the horizon", func(o *Options) { o.Policy.LeadTime = 876000 * 3600 * 1e9 }, "policy.leadTime"},
		{"input age under a step", func(o *Options) { o.MaxInputAge = time.Second }, "maxInputAge 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := policy.Default()
			pol.CapacityPerPod = 10
			o := Options{Source: &fakeSource{}, Manifest: testManifest(), Predictor: &lastValuePredictor{}, Policy: pol, Store: &snapshot.Store{}}
			tt.edit(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v; want an error naming %q", err, tt.want)
			}
		})
	}
}
