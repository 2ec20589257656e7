package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/internal/meshtest"
	"github.com/foresightscale/foresight/internal/promtest"
	"github.com/foresightscale/foresight/internal/testenv"
	"github.com/foresightscale/foresight/internal/widecsv"
	"github.com/foresightscale/foresight/models/store"
	"github.com/foresightscale/foresight/models/training"
)

func runTrain(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, errOut, err := execute(newTrainCommand(), 3*time.Minute, args...)
	return out + errOut, err
}

// TestTrainFromRealPrometheus trains (one epoch) on history read from a real
// Prometheus server with the shipped query templates, and checks the model
// directory is complete and loads.
func TestTrainFromRealPrometheus(t *testing.T) {
	csvPath := testenv.SharedData(t, "boutique/boutique.csv")
	csv, err := source.NewCSV(csvPath, source.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	from, _ := csv.Span()
	to := from.Add(6 * time.Hour)
	history, err := csv.Fetch(context.Background(), source.Query{Services: csv.Services(), Features: source.AllFeatures, Start: from, End: to, Step: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := promtest.Start(t, promtest.Options{Backfill: promtest.WriteOpenMetricsFile(t, "default", history)})
	out := filepath.Join(t.TempDir(), "model")
	log, err := runTrain(t, "--prometheus-url", srv.URL(), "--start", from.Format(time.RFC3339), "--end", to.Format(time.RFC3339),
		"--epochs", "1", "--out", out)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, log)
	}
	if _, err := model.Load(out); err != nil {
		t.Fatalf("trained model does not load: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var report training.Report
	if err := json.Unmarshal(b, &report); err != nil {
		t.Fatal(err)
	}
	if report.Source != srv.URL() || report.Epochs != 1 || report.Test == nil || len(report.Test.MAEByHorizon) != 10 {
		t.Errorf("report = %+v", report)
	}
}

func TestTrainRefusesBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no out", []string{"--synthetic"}, "--out"},
		{"no source", []string{"--out", t.TempDir()}, "exactly one of"},
		{"two sources", []string{"--out", t.TempDir(), "--synthetic", "--data", "x.csv"}, "exactly one of"},
		{"prometheus without range", []string{"--out", t.TempDir(), "--prometheus-url", "http://127.0.0.1:1"}, "--start and --end"},
		{"bad time", []string{"--out", t.TempDir(), "--synthetic", "--start", "yesterday"}, "--start"},
		{"missing csv", []string{"--out", t.TempDir(), "--data", filepath.Join(t.TempDir(), "absent.csv")}, "absent.csv"},
		{"history and a range", []string{"--out", t.TempDir(), "--prometheus-url", "http://127.0.0.1:1", "--history", "24h", "--start", "2026-01-01T00:00:00Z"}, "not both"},
		{"history of a CSV", []string{"--out", t.TempDir(), "--synthetic", "--history", "24h"}, "--history reads Prometheus up to now"},
		{"negative history", []string{"--out", t.TempDir(), "--prometheus-url", "http://127.0.0.1:1", "--history", "-1h"}, "positive span"},
		{"negative min-history", []string{"--out", t.TempDir(), "--synthetic", "--min-history", "-1h"}, "--min-history -1h0m0s must not be negative"},
		{"promote margin out of range", []string{"--synthetic", "--promote", t.TempDir(), "--promote-margin", "1"}, "--promote-margin 1 must be in [0, 1)"},
		{"promote to a malformed ConfigMap", []string{"--synthetic", "--promote", "configmap:a/b/c"}, "configmap:NAMESPACE/NAME"},
		{"promote to a ConfigMap without a cluster", []string{"--synthetic", "--promote", "configmap:shop/model", "--kubeconfig", filepath.Join(t.TempDir(), "absent")}, "no Kubernetes client configuration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runTrain(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestTrainAnyApplication trains on a CSV of an application that is not
// Online Boutique: four services with dotted and hyphenated names, a 60 s
// step, Unix-second timestamps, one service that never reports a request
// rate, one without latency, and one with nothing to size from. The model
// takes its services and step from the file and its edges from
// --call-graph; what it left out is reported, not refused.
func TestTrainAnyApplication(t *testing.T) {
	graph := topology.Graph{
		Services: []string{"product.page", "details-v1", "reviews-v2", "ratings"},
		Edges:    []topology.Edge{{Caller: "product.page", Callee: "details-v1", FanOut: 1}, {Caller: "product.page", Callee: "reviews-v2", FanOut: 1}, {Caller: "reviews-v2", Callee: "ratings", FanOut: 0.67}},
	}
	sc := synthetic.DefaultConfig()
	sc.Services = nil // every service gets the default profile
	gen, err := synthetic.New(sc, graph)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(24 * time.Hour)
	step := time.Minute
	data, err := source.NewSynthetic(gen).Fetch(context.Background(), source.Query{Services: graph.Services,
		Features: source.AllFeatures, Start: start, End: end, Step: step})
	if err != nil {
		t.Fatal(err)
	}
	delete(data[source.Requests], "details-v1")
	delete(data[source.Latency], "ratings")
	data.Add(source.Memory, "istio-proxy.sidecar", source.Sample{Time: start, Value: 1})
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "Book_Info.csv")
	f, err := os.Create(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := widecsv.Write(f, data, start, end, step); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// The call graph names a service the history does not have: dropped, said.
	cg := filepath.Join(dir, "callgraph.csv")
	if err := os.WriteFile(cg, []byte("caller,callee,fanOut\nproduct.page,details-v1,1\nproduct.page,reviews-v2,1\nreviews-v2,ratings,0.67\nreviews-v2,reviews-db,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "model")
	log, err := runTrain(t, "--data", csvPath, "--call-graph", cg, "--epochs", "2", "--out", out)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, log)
	}
	for _, want := range []string{"modelled 4 services", "left out 1 services", "istio-proxy.sidecar",
		"modelled without requests (no usable series): 1 services: details-v1", "modelled without latency", "not used: 1 (e.g. reviews-v2→reviews-db)",
		"held-out MAE / last value's, by step"} {
		if !strings.Contains(log, want) {
			t.Errorf("train output lacks %q:\n%s", want, log)
		}
	}
	m, err := model.Load(out)
	if err != nil {
		t.Fatalf("trained model does not load: %v", err)
	}
	man := m.Manifest()
	if man.Name != "book-info-gnn" || time.Duration(man.Step) != step || len(man.Services) != 4 || len(man.CallGraph) != 3 {
		t.Errorf("manifest %s: step %v, services %v, edges %v; want book-info-gnn, 1m, 4 services, 3 edges",
			man.Name, time.Duration(man.Step), man.Services, man.CallGraph)
	}
	if !man.IsUnobserved(source.Requests, "details-v1") || !man.IsUnobserved(source.Latency, "ratings") || man.IsUnobserved(source.CPU, "ratings") {
		t.Errorf("manifest unobserved = %v", man.Unobserved)
	}

	// A later file of the same application, with a service added since:
	// the backtest scores the model's services and says what it ignored.
	later, err := source.NewSynthetic(gen).Fetch(context.Background(), source.Query{Services: graph.Services,
		Features: source.AllFeatures, Start: end, End: end.Add(6 * time.Hour), Step: step})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range later[source.Requests]["ratings"] {
		later.Add(source.Requests, "reviews-db", s)
		later.Add(source.CPU, "reviews-db", s)
	}
	laterPath := filepath.Join(dir, "later.csv")
	f, err = os.Create(laterPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := widecsv.Write(f, later, end, end.Add(6*time.Hour), step); err != nil {
		t.Fatal(err)
	}
	f.Close()
	stdout, stderr, err := execute(newBacktestCommand(), time.Minute, "--model", out, "--data", laterPath, "--format", "json")
	if err != nil {
		t.Fatalf("backtest on the later file: %v\n%s", err, stderr)
	}
	var report struct {
		Services []string `json:"services"`
		Ignored  []string `json:"ignored_services"`
	}
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("backtest JSON: %v\n%s", err, stdout)
	}
	if len(report.Services) != 4 || len(report.Ignored) != 1 || report.Ignored[0] != "reviews-db" || !strings.Contains(stderr, "ignored 1 services") {
		t.Errorf("backtest services %v, ignored %v, stderr:\n%s", report.Services, report.Ignored, stderr)
	}
}

// TestTrainPromote: `train --promote STORE` saves the first model that beats
// last value as the store's first version; a challenger trained on a much
// shorter history (a quarter of the champion's, one epoch) is backtested
// against that champion on its held-out part and kept out, with the figures.
func TestTrainPromote(t *testing.T) {
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(24 * time.Hour)
	data := layeredHistory(t, meshtest.Layered(6, 3, 6), source.AllFeatures, start, end, time.Minute)
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "shop.csv")
	f, err := os.Create(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := widecsv.Write(f, data, start, end, time.Minute); err != nil {
		t.Fatal(err)
	}
	f.Close()
	storeDir := filepath.Join(dir, "store")

	log, err := runTrain(t, "--data", csvPath, "--epochs", "4", "--season", "none", "--promote", storeDir)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, log)
	}
	if !strings.Contains(log, "promoted: no champion to beat") {
		t.Fatalf("first model not promoted:\n%s", log)
	}
	st, err := store.Open(storeDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	vs, _ := st.Versions()
	if len(vs) != 1 {
		t.Fatalf("store holds %d versions, want 1", len(vs))
	}
	if _, err := model.Load(vs[0].Dir); err != nil {
		t.Fatalf("the promoted version does not load: %v", err)
	}
	var saved training.Report
	b, err := os.ReadFile(filepath.Join(vs[0].Dir, "report.json"))
	if err != nil || json.Unmarshal(b, &saved) != nil || saved.Decision == nil || !saved.Decision.Promote {
		t.Fatalf("the version's report has no promotion decision: %v %s", err, b)
	}

	out := filepath.Join(dir, "challenger")
	log, err = runTrain(t, "--data", csvPath, "--start", end.Add(-6*time.Hour).Format(time.RFC3339), "--epochs", "1",
		"--season", "none", "--promote", storeDir, "--out", out)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, log)
	}
	if !strings.Contains(log, "kept: ") || !strings.Contains(log, "is unchanged") {
		t.Fatalf("the weaker challenger was not kept out:\n%s", log)
	}
	if vs, _ := st.Versions(); len(vs) != 1 {
		t.Errorf("store holds %d versions after a kept challenger, want 1", len(vs))
	}
	history, err := os.ReadFile(filepath.Join(storeDir, store.DecisionsFile))
	if lines := strings.Split(strings.TrimSpace(string(history)), "\n"); err != nil || len(lines) != 2 ||
		!strings.Contains(lines[0], `"promote":true`) || !strings.Contains(lines[0], `"version":"`+vs[0].Name+`"`) || !strings.Contains(lines[1], `"promote":false`) {
		t.Errorf("promotion history %q (%v): want the promotion, then the kept challenger", history, err)
	}
	var rep training.Report
	b, err = os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil || json.Unmarshal(b, &rep) != nil {
		t.Fatalf("challenger report: %v", err)
	}
	c := rep.Comparison
	if rep.Decision == nil || rep.Decision.Promote || c == nil || c.Champion == nil || c.ChampionName == "" || c.Points == 0 {
		t.Fatalf("challenger's report: decision %+v, comparison %+v; want kept, with the champion's figures", rep.Decision, c)
	}
	t.Logf("challenger / champion MAE by step: %v / %v (%s)", c.Challenger, c.Champion, rep.Decision.Reason)
}
