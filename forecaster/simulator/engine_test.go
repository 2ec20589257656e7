package simulator

import (
	"context"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/queueing"
	"github.com/foresightscale/foresight/forecaster/simulator/workload"
)

// fixed keeps every service at the given replicas, changing them at the
// scheduled seconds.
type fixed struct {
	n        []int32
	schedule map[int][]int32
}

func (f *fixed) Name() string                { return "fixed" }
func (f *fixed) Start(*Run) ([]int32, error) { return f.n, nil }
func (f *fixed) Tick(t int) ([]int32, error) {
	if n, ok := f.schedule[t]; ok {
		f.n = n
	}
	return f.n, nil
}

func constant(rps float64, seconds int) *workload.Trace {
	tr := &workload.Trace{Name: "constant", Step: time.Second, RPS: make([]float64, seconds)}
	for i := range tr.RPS {
		tr.RPS[i] = rps
	}
	return tr
}

func uniform(n int32) []int32 {
	out := make([]int32, len(OnlineBoutique().Services))
	for i := range out {
		out[i] = n
	}
	return out
}

// TestStaticMeetsSLOAtPeak: the static allocation, sized by SizeFor for the
// peak, never violates on a constant trace at that peak, and costs exactly
// its pods × cores × hours.
func TestStaticMeetsSLOAtPeak(t *testing.T) {
	cfg := DefaultConfig()
	res, _, err := Simulate(context.Background(), cfg, constant(300, 600), &Static{})
	if err != nil {
		t.Fatal(err)
	}
	if res.SLOViolationSeconds != 0 || res.UnderProvisionedSeconds != 0 || res.DroppedRequests != 0 {
		t.Errorf("static at its own peak: %+v, want no violation", res)
	}
	sized, err := cfg.SizeFor(300)
	if err != nil {
		t.Fatal(err)
	}
	var pods int32
	for _, n := range sized {
		pods += n
	}
	if want := float64(pods) * 0.5 * 600 / 3600; !near(res.CoreHours, want) {
		t.Errorf("core-hours %v, want %v (%d pods × 0.5 cores × 600 s)", res.CoreHours, want, pods)
	}
	if res.ScalingActions != 0 {
		t.Errorf("static scaled %d times", res.ScalingActions)
	}
}

// TestOverloadViolatesAndRecovers: one pod per service cannot carry 300
// req/s (the frontend alone needs 2.4 pods), so every second violates; once
// pods are added at second 60 they serve after the 30 s start-up (no
// jitter) and, with the backlog drained, violations stop.
func TestOverloadViolatesAndRecovers(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StartupJitter, cfg.WarmUp = 0, 0 // seconds below are the trace's
	sized, err := cfg.SizeFor(300)
	if err != nil {
		t.Fatal(err)
	}
	pol := &fixed{n: uniform(1), schedule: map[int][]int32{60: sized}}
	res, run, err := Simulate(context.Background(), cfg, constant(300, 300), pol)
	if err != nil {
		t.Fatal(err)
	}
	for t0 := range 90 {
		if !run.Violations[t0] {
			t.Fatalf("second %d: no violation while under-provisioned (p99 %v)", t0, run.P99[t0])
		}
	}
	if run.Ready[0][89] != 1 || run.Ready[0][90] == 1 {
		t.Errorf("ready pods of %s at 89/90: %d/%d, want the new pods from second 90",
			cfg.App.Services[0].Name, run.Ready[0][89], run.Ready[0][90])
	}
	if run.Violations[len(run.Violations)-1] {
		t.Errorf("still violating at the end: p99 %v", run.P99[len(run.P99)-1])
	}
	if res.DroppedRequests == 0 {
		t.Error("no request timed out under overload")
	}
	if res.ScalingActions == 0 {
		t.Error("the scale-up was not counted")
	}
}

// TestCostCountsStartingPods: a pod costs its request from creation, before
// it serves.
func TestCostCountsStartingPods(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StartupJitter, cfg.WarmUp = 0, 0 // seconds below are the trace's
	pol := &fixed{n: uniform(1), schedule: map[int][]int32{1: uniform(2)}}
	res, _, err := Simulate(context.Background(), cfg, constant(1, 11), pol)
	if err != nil {
		t.Fatal(err)
	}
	// 10 services: 1 pod in second 0, 2 pods in seconds 1..10.
	if want := (10*1 + 10*2*10) * 0.5 / 3600; !near(res.CoreHours, want) {
		t.Errorf("core-hours %v, want %v", res.CoreHours, want)
	}
}

func TestSimulateRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	bad := DefaultConfig()
	bad.SLO = 0
	if _, _, err := Simulate(ctx, bad, constant(1, 10), &Static{}); err == nil {
		t.Error("SLO 0 accepted")
	}
	if _, _, err := Simulate(ctx, DefaultConfig(), &workload.Trace{Step: time.Second}, &Static{}); err == nil {
		t.Error("empty trace accepted")
	}
	cyclic := DefaultConfig()
	cyclic.App.Calls = append(cyclic.App.Calls, cyclic.App.Calls[0])
	cyclic.App.Calls[len(cyclic.App.Calls)-1].Caller, cyclic.App.Calls[len(cyclic.App.Calls)-1].Callee = "cartservice", "checkoutservice"
	if _, _, err := Simulate(ctx, cyclic, constant(1, 10), &Static{}); err == nil {
		t.Error("a call cycle accepted")
	}
}

func near(a, b float64) bool { return a-b < 1e-9*max(1, b) && b-a < 1e-9*max(1, b) }

// TestSizeFor: the sizing meets the SLO at the rate it was asked for, grows
// with the rate, and says so when no pod count can meet an SLO below the
// service times themselves.
func TestSizeFor(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var previous int32
	for _, rps := range []float64{10, 100, 300, 1000} {
		n, err := cfg.SizeFor(rps)
		if err != nil {
			t.Fatalf("%v req/s: %v", rps, err)
		}
		own := make([]float64, len(n))
		var total int32
		for i, s := range cfg.App.Services {
			own[i] = queueing.Station{Servers: int(n[i]), Mu: s.PodRate(), Lambda: rps * cfg.App.visits[i]}.Quantile(0.99, cfg.Timeout.Seconds())
			total += n[i]
		}
		if e2e := cfg.App.endToEnd(own); e2e > cfg.SLO.Seconds() {
			t.Errorf("%v req/s: sized %v gives p99 %v over the SLO", rps, n, e2e)
		}
		if total < previous {
			t.Errorf("%v req/s: %d pods, fewer than for a lower rate (%d)", rps, total, previous)
		}
		previous = total
	}
	cfg.SLO = 10 * time.Millisecond
	if _, err := cfg.SizeFor(100); err == nil {
		t.Error("a 10 ms SLO, below the frontend's own service time, was met")
	}
}
