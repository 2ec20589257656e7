package forecaster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/source"
)

// p99Source is a fakeSource that also answers the SLO service's p99: the
// value p99 holds when Fetch is called, at every step.
type p99Source struct {
	fakeSource
	service string
	p99     float64 // < 0: no series
	asked   bool    // a query asked for latency_p99
}

func (s *p99Source) Fetch(ctx context.Context, q source.Query) (source.Data, error) {
	d, err := s.fakeSource.Fetch(ctx, q)
	if err != nil {
		return nil, err
	}
	for _, f := range q.Features {
		if f != source.LatencyP99 {
			continue
		}
		s.asked = true
		if s.p99 < 0 {
			continue
		}
		for t := q.Start; !t.After(q.End); t = t.Add(q.Step) {
			d.Add(source.LatencyP99, s.service, source.Sample{Time: t, Value: s.p99})
		}
	}
	return d, nil
}

// TestSLOFeedbackTunesTheHeadroom drives a loop with policy.slo through
// violations and slack: the published replicas follow the tuned headroom,
// each step's p99 counts once, and the state is on /metrics.
func TestSLOFeedbackTunesTheHeadroom(t *testing.T) {
	src := &p99Source{fakeSource: fakeSource{requests: map[string]float64{"gateway": 100, "ledger": 50}}, service: "gateway", p99: 0.1}
	f, logs, reg := newCoverageForecaster(t, src, func(o *Options) {
		o.Manifest, o.Predictor = NoModel(30*time.Second, 3, 4), nil
		o.Policy.Headroom = 0.2
		lowest := 0.0                                                                                       // below policy.headroom, so slack shows
		o.Policy.SLO = &policy.SLOConfig{LatencyP99: 250_000_000, Service: "gateway", MinHeadroom: &lowest} // 250ms
	})
	replicas := func(at time.Time) int64 {
		t.Helper()
		snap, err := f.Cycle(context.Background(), at)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range snap.Predictions {
			if p.Service == "gateway" {
				return p.PredictedReplicas
			}
		}
		t.Fatalf("no prediction for gateway: %+v", snap.Predictions)
		return 0
	}
	headroom := func() float64 { return testutil.ToFloat64(f.slo.gauge) }
	at := now
	// Slack (0.1 s of 0.25): tightens a step per new sample.
	if got := replicas(at); !src.asked || headroom() != 0.19 {
		t.Fatalf("after one slack step: headroom %v (asked for p99: %v), replicas %d", headroom(), src.asked, got)
	}
	// The same step again (interval shorter than the step): not counted twice.
	replicas(at.Add(10 * time.Second))
	if headroom() != 0.19 {
		t.Errorf("a sample counted twice: headroom %v", headroom())
	}
	// A violation: widened at once, and sized with it.
	src.p99 = 0.4
	at = at.Add(30 * time.Second)
	before := replicas(at)
	if h := headroom(); h < 0.289 || h > 0.291 {
		t.Errorf("after a violation: headroom %v, want 0.29", h)
	}
	at = at.Add(30 * time.Second)
	src.p99 = 0.2 // in the deadband
	if got := replicas(at); got < before || got != 13 {
		t.Errorf("replicas %d after widening (before %d); want ceil(100 × 1.29 / 10) = 13", got, before)
	}
	if !strings.Contains(logs.String(), "SLO feedback: p99 above the SLO; headroom raised") {
		t.Errorf("no log line for the widening:\n%s", logs)
	}
	// No p99 series: nothing moves, and it is counted.
	src.p99 = -1
	at = at.Add(30 * time.Second)
	replicas(at)
	if got := testutil.ToFloat64(f.slo.actions.WithLabelValues("no_signal")); got != 1 || headroom() < 0.289 {
		t.Errorf("no_signal %v, headroom %v", got, headroom())
	}
	replicas(at.Add(30 * time.Second))
	if n := strings.Count(logs.String(), "SLO feedback: no recent p99"); n != 1 {
		t.Errorf("the missing p99 was logged %d times, want once:\n%s", n, logs)
	}
	if got := testutil.ToFloat64(f.slo.latency.WithLabelValues("gateway")); got != 0.2 {
		t.Errorf("foresight_slo_latency_p99_seconds = %v, want the last read 0.2", got)
	}
	checkNoNaNGauges(t, reg)
}

func TestSLOFeedbackOff(t *testing.T) {
	src := &p99Source{fakeSource: fakeSource{requests: map[string]float64{"gateway": 100}}, service: "gateway", p99: 1}
	f, _, reg := newCoverageForecaster(t, src, func(o *Options) { o.Manifest, o.Predictor = NoModel(30*time.Second, 3, 4), nil })
	if _, err := f.Cycle(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	if src.asked || f.slo != nil {
		t.Error("without policy.slo the loop asked for a p99")
	}
	if n, _ := testutil.GatherAndCount(reg, "foresight_slo_headroom"); n != 0 {
		t.Errorf("foresight_slo_headroom exported without policy.slo")
	}
}

// By default the feedback never sizes below policy.headroom: slack in a
// quiet period is no promise for the next burst.
func TestSLOFeedbackKeepsTheConfiguredHeadroomByDefault(t *testing.T) {
	src := &p99Source{fakeSource: fakeSource{requests: map[string]float64{"gateway": 100}}, service: "gateway", p99: 0.01}
	f, _, _ := newCoverageForecaster(t, src, func(o *Options) {
		o.Manifest, o.Predictor = NoModel(30*time.Second, 3, 4), nil
		o.Policy.Headroom = 0.2
		o.Policy.SLO = &policy.SLOConfig{LatencyP99: 250_000_000, Service: "gateway"}
	})
	for i := range 5 {
		if _, err := f.Cycle(context.Background(), now.Add(time.Duration(i)*30*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if h := testutil.ToFloat64(f.slo.gauge); h != 0.2 {
		t.Errorf("headroom %v after five slack steps; want policy.headroom 0.2", h)
	}
}
