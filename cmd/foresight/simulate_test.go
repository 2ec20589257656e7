package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/internal/testenv"
)

// runSimulate runs the command with args and returns its standard output.
func runSimulate(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, _, err := execute(newSimulateCommand(), 2*time.Minute, args...)
	return out, err
}

// TestSimulateContract: `foresight simulate --trace FILE --format json`
// prints one object with a "policies" entry per policy, each with the keys
// scripts read; --out writes the same report.
func TestSimulateContract(t *testing.T) {
	trace := testenv.SharedData(t, "traces/bursty.txt")
	dir := t.TempDir()
	out, err := runSimulate(t, "--trace", trace, "--duration", "15m", "--format", "json", "--out", dir)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Policies []map[string]any `json:"policies"`
		Seconds  int              `json:"seconds"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	want := []string{"cpu-hpa", "cpu-hpa-fast", "foresight", "holt-winters", "oracle", "static"}
	if len(doc.Policies) != len(want) {
		t.Fatalf("%d policies, want %v", len(doc.Policies), want)
	}
	for i, p := range doc.Policies {
		if p["name"] != want[i] {
			t.Errorf("policies[%d] = %v, want %s", i, p["name"], want[i])
		}
		for _, key := range []string{"slo_violation_seconds", "core_hours", "p99_ms", "scaling_actions"} {
			if v, ok := p[key].(float64); !ok || v < 0 {
				t.Errorf("%v: %s = %v", p["name"], key, p[key])
			}
		}
	}
	if doc.Seconds != 900 {
		t.Errorf("seconds = %d, want the 15 minutes asked for", doc.Seconds)
	}
	written, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(written) != out {
		t.Error("report.json differs from what was printed")
	}
}

// TestSimulateTableWithGenerator: a generator spec works as a trace, the
// table names every policy asked for, and --plots writes the plots.
func TestSimulateTableWithGenerator(t *testing.T) {
	plots := t.TempDir()
	out, err := runSimulate(t, "--trace", "step:low=50,high=150,at=5m", "--duration", "10m", "--policy", "cpu-hpa,static", "--plots", plots)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"load.png", "replicas.png", "latency.png"} {
		if st, err := os.Stat(filepath.Join(plots, name)); err != nil || st.Size() == 0 {
			t.Errorf("plot %s: %v", name, err)
		}
	}
	for _, want := range []string{"cpu-hpa", "static", "SLO violation s", "core-hours"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "holt-winters") {
		t.Errorf("table has a policy not asked for:\n%s", out)
	}
}

func TestSimulateRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cyclic := write("cyclic.yaml", `name: cyclic
entry: a
typicalFanOut: 0.5
services:
- {name: a, workPerRequest: 0.01, coresPerPod: 1, minReplicas: 1, maxReplicas: 10}
- {name: b, workPerRequest: 0.01, coresPerPod: 1, minReplicas: 1, maxReplicas: 10}
- {name: c, workPerRequest: 0.01, coresPerPod: 1, minReplicas: 1, maxReplicas: 10}
calls:
- {caller: a, callee: b}
- {caller: b, callee: c}
- {caller: c, callee: b}
`)
	unknown := write("unknown.yaml", `name: unknown
entry: a
typicalFanOut: 0.5
services:
- {name: a, workPerRequest: 0.01, coresPerPod: 1, minReplicas: 1, maxReplicas: 10}
calls:
- {caller: a, callee: z}
`)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no trace", nil, "--trace"},
		{"empty trace", []string{"--trace", write("empty.txt", "")}, "empty.txt"},
		{"non-numeric", []string{"--trace", write("words.txt", "10\n20\nlots\n")}, "words.txt:3"},
		{"negative", []string{"--trace", write("neg.txt", "10\n-5\n")}, "neg.txt:2"},
		{"unknown generator", []string{"--trace", "tsunami"}, "generator"},
		{"cycle", []string{"--trace", "step", "--app", cyclic}, "cycle"},
		{"unknown service", []string{"--trace", "step", "--app", unknown}, `unknown callee "z"`},
		{"SLO of 0", []string{"--trace", "step", "--slo", "0s"}, "slo"},
		{"unknown policy", []string{"--trace", "step", "--policy", "vpa"}, "unknown policy"},
		{"bad format", []string{"--trace", "step", "--format", "xml"}, "--format"},
		{"history of several policies", []string{"--trace", "step", "--export-history", filepath.Join(dir, "h.csv")}, "--export-history"},
		{"history of a sweep", []string{"--trace", "step", "--policy", "cpu-hpa", "--sweep", "--export-history", filepath.Join(dir, "h.csv")}, "--export-history"},
		{"peak resolution 0", []string{"--trace", "step", "--peak-resolution", "0s"}, "peakResolution"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runSimulate(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %q", err, tc.want)
			}
			if out != "" {
				t.Errorf("printed a report despite the error:\n%s", out)
			}
		})
	}
}

// simulateForesight runs the Foresight policy alone on a trace with extra
// flags and returns its violation seconds and core-hours.
func simulateForesight(t *testing.T, trace string, flags ...string) (viol, coreHours float64) {
	t.Helper()
	args := append([]string{"--trace", trace, "--policy", "foresight", "--format", "json"}, flags...)
	out, err := runSimulate(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Policies []struct {
			Violations float64 `json:"slo_violation_seconds"`
			CoreHours  float64 `json:"core_hours"`
		} `json:"policies"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Policies) != 1 {
		t.Fatalf("report %v:\n%s", err, out)
	}
	return doc.Policies[0].Violations, doc.Policies[0].CoreHours
}

// TestSimulateSLOFeedback: --slo-feedback runs Foresight with policy.slo on
// the simulated entry p99, as serve runs it. On World Cup 98 (a measured
// row of docs/simulate.md) it has far fewer violation seconds than
// without, and costs more: the trade-off documented there.
func TestSimulateSLOFeedback(t *testing.T) {
	trace := testenv.SharedData(t, "traces/worldcup98_per_minute.csv")
	offViol, offCost := simulateForesight(t, trace, "--compress", "60", "--scale", "10", "--slo-feedback=false")
	onViol, onCost := simulateForesight(t, trace, "--compress", "60", "--scale", "10", "--slo-feedback=true")
	t.Logf("without feedback %v s / %.2f core-h; with %v s / %.2f", offViol, offCost, onViol, onCost)
	if !(onViol < offViol/2) || !(onCost > offCost) {
		t.Errorf("feedback: %v violation s at %.2f core-h; without: %v at %.2f; want far fewer violations at some cost", onViol, onCost, offViol, offCost)
	}
}

// TestSimulateBurst: policy.burst (on by default) reads the simulated
// requests_peak at --peak-resolution, as serve reads the recording rule. On
// the noisy trace, whose load swings around its 30 s mean, it cuts the
// violation seconds by more than half.
func TestSimulateBurst(t *testing.T) {
	trace := testenv.SharedData(t, "traces/noisy.txt")
	offViol, offCost := simulateForesight(t, trace, "--burst=false")
	onViol, onCost := simulateForesight(t, trace)
	t.Logf("without burst %v s / %.2f core-h; with %v s / %.2f", offViol, offCost, onViol, onCost)
	if !(onViol < offViol/2) || !(onCost > offCost) {
		t.Errorf("burst: %v violation s at %.2f core-h; without: %v at %.2f; want far fewer violations at some cost", onViol, onCost, offViol, offCost)
	}
}

// TestSimulateTrainsOnItsOwnHistory is the workflow docs/simulate.md gives
// for an application of your own: simulate its history under the CPU HPA
// with --export-history, train a model on that CSV, and simulate a later
// stretch of the same kind of load with Foresight on that model. The app is
// not Online Boutique: four services with names a cluster might have.
func TestSimulateTrainsOnItsOwnHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	dir := t.TempDir()
	app := filepath.Join(dir, "shop.yaml")
	if err := os.WriteFile(app, []byte(`name: ticketing
entry: ts-ui.v2
typicalFanOut: 0.5
services:
- {name: ts-ui.v2, workPerRequest: 0.004, coresPerPod: 0.5, minReplicas: 1, maxReplicas: 40}
- {name: order_svc, workPerRequest: 0.008, coresPerPod: 0.5, minReplicas: 1, maxReplicas: 40}
- {name: seat-0, workPerRequest: 0.002, coresPerPod: 0.5, minReplicas: 1, maxReplicas: 40}
- {name: pay, workPerRequest: 0.01, coresPerPod: 1, minReplicas: 1, maxReplicas: 40}
calls:
- {caller: ts-ui.v2, callee: order_svc, fanOut: 1}
- {caller: order_svc, callee: seat-0, fanOut: 2}
- {caller: ts-ui.v2, callee: pay, fanOut: 0.2}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	load := "sinusoidal:base=100,amplitude=60,period=20m,noise=0.05"
	history := filepath.Join(dir, "history.csv")
	if _, err := runSimulate(t, "--app", app, "--trace", load, "--seed", "101", "--duration", "4h",
		"--policy", "cpu-hpa", "--export-history", history); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(history)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	// 4 h of trace plus the 10 min warm-up, one row at the end of each 30 s.
	if want := (4*3600 + 600) / 30; len(lines)-1 != want {
		t.Errorf("%d rows, want %d", len(lines)-1, want)
	}
	for _, col := range []string{"ts-ui.v2_req", "order_svc_cpu", "seat-0_pod", "pay_res", "pay_mem"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q lacks %s", lines[0], col)
		}
	}
	modelDir := filepath.Join(dir, "model")
	if out, err := runTrain(t, "--data", history, "--out", modelDir, "--epochs", "4", "--season", "none"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := runSimulate(t, "--app", app, "--trace", load, "--seed", "1", "--duration", "30m",
		"--policy", "cpu-hpa,foresight", "--model", modelDir, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Policies []struct {
			Name       string  `json:"name"`
			Violations float64 `json:"slo_violation_seconds"`
			CoreHours  float64 `json:"core_hours"`
		} `json:"policies"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Policies) != 2 {
		t.Fatalf("report %v:\n%s", err, out)
	}
	t.Logf("%+v", doc.Policies)
	if hpa, fs := doc.Policies[0], doc.Policies[1]; fs.Name != "foresight" || !(fs.CoreHours > 0) || fs.Violations > hpa.Violations {
		t.Errorf("foresight on its own model: %+v; want it to run, with no more violations than the HPA's %+v", fs, hpa)
	}
}
