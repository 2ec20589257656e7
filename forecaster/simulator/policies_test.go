package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/simulator/workload"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/models"
)

// stepTrace is 100 req/s for 20 minutes, then 300 req/s for 20 minutes.
func stepTrace() *workload.Trace {
	tr := &workload.Trace{Name: "step", Step: time.Second, RPS: make([]float64, 2400)}
	for i := range tr.RPS {
		tr.RPS[i] = 100
		if i >= 1200 {
			tr.RPS[i] = 300
		}
	}
	return tr
}

func demoModel(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.LoadFS(models.Demo())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// frontendReplicas returns the frontend's pods at a trace second (after the
// warm-up).
func frontendReplicas(run *Run, second int) int32 {
	return run.Replicas[run.Config.App.graph.Index("frontend")][run.Scored+second]
}

// TestPoliciesFollowAStep: on a 100 → 300 req/s step every adaptive policy
// ends up with more frontend pods than it started with, and, once the
// step's start-up transient is over, meets the SLO. The oracle scales
// before the step (it knows it is coming); the reactive HPA only after.
func TestPoliciesFollowAStep(t *testing.T) {
	cfg := DefaultConfig()
	m := demoModel(t)
	opts := DefaultCompareOptions()
	opts.Model = m
	rep, err := Compare(context.Background(), stepTrace(), opts)
	if err != nil {
		t.Fatal(err)
	}
	need, err := cfg.SizeFor(300)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range rep.Policies {
		run := rep.Runs[res.Name]
		before, after := frontendReplicas(run, 1100), frontendReplicas(run, 2399)
		if res.Name != PolicyStatic && !(after > before) {
			t.Errorf("%s: frontend %d pods before the step, %d at the end: did not scale up", res.Name, before, after)
		}
		for s := 1800; s < 2400; s++ {
			if run.Violations[run.Scored+s] {
				t.Errorf("%s: still violating the SLO at second %d, 10 minutes after the step (p99 %.3f s)", res.Name, s, run.P99[run.Scored+s])
				break
			}
		}
		if res.Seconds != 2400 || res.CoreHours <= 0 {
			t.Errorf("%s: %d seconds, %v core-hours", res.Name, res.Seconds, res.CoreHours)
		}
	}
	oracle, hpa := rep.Runs[PolicyOracle], rep.Runs[PolicyCPUHPA]
	if got := frontendReplicas(oracle, 1199); got < need[cfg.App.graph.Index("frontend")] {
		t.Errorf("oracle: %d frontend pods just before the step, want the %d the step needs", got, need[cfg.App.graph.Index("frontend")])
	}
	if frontendReplicas(hpa, 1199) != frontendReplicas(hpa, 1100) {
		t.Error("cpu-hpa scaled before the step: it cannot know")
	}
}

// TestCPUHPAScalesDownAfterStabilisation: after a 300 → 100 req/s drop the
// stock HPA keeps its pods for the 300 s stabilisation window, the fast one
// for 20 s.
func TestCPUHPAScalesDownAfterStabilisation(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WarmUp = 20 * time.Minute // long enough for the HPAs to settle at 300 req/s
	down := &workload.Trace{Name: "down", Step: time.Second, RPS: make([]float64, 900)}
	for i := range down.RPS {
		down.RPS[i] = 300
		if i >= 60 {
			down.RPS[i] = 100
		}
	}
	for _, tc := range []struct {
		scaler    Scaler
		holdUntil int // seconds after the drop with no scale-down
	}{
		{DefaultCPUHPA(), 270},
		{FastCPUHPA(70), 5},
	} {
		_, run, err := Simulate(context.Background(), cfg, down, tc.scaler)
		if err != nil {
			t.Fatal(err)
		}
		settled := frontendReplicas(run, 59)
		if got := frontendReplicas(run, 60+tc.holdUntil); got != settled {
			t.Errorf("%s: %d frontend pods %d s after the drop, want still %d", tc.scaler.Name(), got, tc.holdUntil, settled)
		}
		if got := frontendReplicas(run, 899); !(got < settled) {
			t.Errorf("%s: %d frontend pods 14 minutes after the drop, want fewer than %d", tc.scaler.Name(), got, settled)
		}
	}
}

// TestReportContract: the JSON has the keys scripts read, one entry per
// policy in order, and the sweep's frontier and dominance.
func TestReportContract(t *testing.T) {
	tr := stepTrace()
	tr.RPS = tr.RPS[:600]
	opts := DefaultCompareOptions()
	opts.Model = demoModel(t)
	opts.Sweep = true
	rep, err := Compare(context.Background(), tr, opts)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Policies []map[string]any `json:"policies"`
		Frontier []map[string]any `json:"frontier"`
		Dom      []map[string]any `json:"dominance"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Policies) != len(AllPolicies) {
		t.Fatalf("%d policies, want %d", len(doc.Policies), len(AllPolicies))
	}
	for i, p := range doc.Policies {
		if p["name"] != AllPolicies[i] {
			t.Errorf("policies[%d] is %v, want %s", i, p["name"], AllPolicies[i])
		}
		for _, key := range []string{"slo_violation_seconds", "core_hours", "p99_ms", "scaling_actions"} {
			if _, ok := p[key].(float64); !ok {
				t.Errorf("%v: %s missing or not a number", p["name"], key)
			}
		}
	}
	if want := len(SweepHPATargets) + len(SweepHeadrooms)*len(SweepQuantiles); len(doc.Frontier) != want {
		t.Errorf("%d frontier points, want %d", len(doc.Frontier), want)
	}
	if len(doc.Dom) != len(SweepHPATargets) {
		t.Errorf("%d dominance entries, want one per HPA setting (%d)", len(doc.Dom), len(SweepHPATargets))
	}
}

// TestDominanceByHand: the cheapest Foresight point with no more violations
// is picked, and none is reported when every one violates more; the
// oracle's ratio is given only against an HPA with at least its violations.
func TestDominanceByHand(t *testing.T) {
	r := &Report{Policies: []Result{{Name: PolicyOracle, SLOViolationSeconds: 3, CoreHours: 6}}, Frontier: []FrontierPoint{
		{Policy: PolicyCPUHPA, Setting: "a", SLOViolationSeconds: 10, CoreHours: 10},
		{Policy: PolicyCPUHPA, Setting: "b", SLOViolationSeconds: 0, CoreHours: 20},
		{Policy: PolicyForesight, Setting: "x", SLOViolationSeconds: 5, CoreHours: 7},
		{Policy: PolicyForesight, Setting: "y", SLOViolationSeconds: 12, CoreHours: 5},
		{Policy: PolicyForesight, Setting: "z", SLOViolationSeconds: 9, CoreHours: 8},
	}}
	d := r.dominance()
	if len(d) != 2 || !d[0].Found || d[0].ForesightSetting != "x" || d[0].CoreHoursRatio != 0.7 {
		t.Errorf("HPA a: %+v, want Foresight x at 0.7", d[0])
	}
	if d[1].Found {
		t.Errorf("HPA b: %+v, want none (every Foresight point violates)", d[1])
	}
	if d[0].OracleCoreHoursRatio != 0.6 || d[1].OracleCoreHoursRatio != 0 {
		t.Errorf("oracle ratios %g and %g, want 0.6 (HPA a) and none (HPA b has fewer violations)",
			d[0].OracleCoreHoursRatio, d[1].OracleCoreHoursRatio)
	}
	// HPA a costs 10, the oracle 6, Foresight x 7: 3 of the 4 saved.
	if c := d[0].OracleSavingCaptured; c == nil || math.Abs(*c-0.75) > 1e-9 || d[1].OracleSavingCaptured != nil {
		t.Errorf("oracle saving captured %v and %v, want 0.75 and none", d[0].OracleSavingCaptured, d[1].OracleSavingCaptured)
	}
}

func TestCompareRefusesBadInput(t *testing.T) {
	opts := DefaultCompareOptions()
	opts.Policies = []string{"k8s-vpa"}
	if _, err := Compare(context.Background(), stepTrace(), opts); err == nil {
		t.Error("unknown policy accepted")
	}
	opts = DefaultCompareOptions()
	opts.Policies = []string{PolicyForesight}
	if _, err := Compare(context.Background(), stepTrace(), opts); err == nil {
		t.Error("foresight without a model accepted")
	}
	opts = DefaultCompareOptions()
	opts.HPATarget = 0
	if _, err := Compare(context.Background(), stepTrace(), opts); err == nil {
		t.Error("HPA target 0 accepted")
	}
}

// TestLatencyBudgetsAndSizing: on a chain a → b (service times 10 and
// 30 ms) and a rare call a → c, the 200 ms SLO splits 50/150 ms along the
// typical path; c, off it, gets no budget and keeps capacity sizing, as
// does a service whose share is below its idle p99.
func TestLatencyBudgetsAndSizing(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SLO = 200 * time.Millisecond
	cfg.App = App{Name: "chain", Entry: "a", TypicalFanOut: 0.5,
		Services: []Service{
			{Name: "a", WorkPerRequest: 0.005, CoresPerPod: 0.5, MinReplicas: 1, MaxReplicas: 10}, // 100 req/s: 10 ms
			{Name: "b", WorkPerRequest: 0.015, CoresPerPod: 0.5, MinReplicas: 1, MaxReplicas: 10}, // 33 req/s: 30 ms
			{Name: "c", WorkPerRequest: 0.005, CoresPerPod: 0.5, MinReplicas: 1, MaxReplicas: 10},
		},
		Calls: []topology.Edge{{Caller: "a", Callee: "b", FanOut: 1}, {Caller: "a", Callee: "c", FanOut: 0.1}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	got := LatencyBudgets(&cfg.App, cfg.SLO)
	want := []time.Duration{50 * time.Millisecond, 150 * time.Millisecond, 0}
	for i := range want {
		if d := got[i] - want[i]; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("budget of %s = %v, want %v", cfg.App.Services[i].Name, got[i], want[i])
		}
	}
	p, err := appPolicy(policy.Default(), cfg, 0.7, SizingQueueing)
	if err != nil {
		t.Fatal(err)
	}
	// a: idle p99 ln(100)·10 ms = 46 ms < 50 ms: queueing. b: 138 ms < 150 ms:
	// queueing. c: no budget: capacity at 70 % of 100 req/s.
	if sc := p.Services["a"]; sc.PodRate != 100 || sc.CapacityPerPod != 0 {
		t.Errorf("a: %+v, want queueing at 100 req/s per pod", sc)
	}
	if sc := p.Services["b"]; sc.LatencyP99 == 0 {
		t.Errorf("b: %+v, want queueing", sc)
	}
	if sc := p.Services["c"]; sc.PodRate != 0 || math.Abs(sc.CapacityPerPod-70) > 1e-9 {
		t.Errorf("c: %+v, want capacity 70 req/s", sc)
	}
	cfg.SLO = 150 * time.Millisecond // a's share 37.5 ms is below its idle p99
	if p, err = appPolicy(policy.Default(), cfg, 0.7, SizingQueueing); err != nil {
		t.Fatal(err)
	}
	if sc := p.Services["a"]; sc.PodRate != 0 || sc.CapacityPerPod == 0 {
		t.Errorf("a with a 37.5 ms share: %+v, want capacity sizing", sc)
	}
}

// TestCompareIsDeterministic: the same trace, options and seed give the
// same report byte for byte; another simulation seed moves the pods'
// start-up times and so, on a step, the result.
func TestCompareIsDeterministic(t *testing.T) {
	tr := stepTrace()
	run := func(seed int64) string {
		opts := DefaultCompareOptions()
		opts.Model = demoModel(t)
		opts.Policies = []string{PolicyCPUHPA, PolicyForesight}
		opts.Config.Seed = seed
		rep, err := Compare(context.Background(), tr, opts)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := rep.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	first := run(1)
	if again := run(1); again != first {
		t.Error("two runs with the same seed differ")
	}
	if other := run(2); other == first {
		t.Error("another seed gave the same report: the start-up jitter is not seeded")
	}
}

// TestForesightRefusesAnotherApplication: the built-in model forecasts the
// Online Boutique; on another application the error says what to do.
func TestForesightRefusesAnotherApplication(t *testing.T) {
	opts := DefaultCompareOptions()
	opts.Model = demoModel(t)
	opts.Policies = []string{PolicyForesight}
	opts.Config.App = App{Name: "solo", Entry: "web", TypicalFanOut: 0.5,
		Services: []Service{{Name: "web", WorkPerRequest: 0.004, CoresPerPod: 0.5, MinReplicas: 1, MaxReplicas: 10}}}
	_, err := Compare(context.Background(), stepTrace(), opts)
	if err == nil || !strings.Contains(err.Error(), "foresight train") {
		t.Errorf("error %v, want one saying to train a model for the application", err)
	}
}
