package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/internal/testenv"
	"github.com/spf13/cobra"
)

var backtestMethods = []string{"gnn", "last_value", "seasonal_naive", "holt_winters", "linear_regression", "fft", "autoregression"}

// demoServices are the built-in demo model's services.
var demoServices = []string{"adservice", "cartservice", "checkoutservice", "currencyservice", "emailservice",
	"frontend", "paymentservice", "productcatalogservice", "recommendationservice", "shippingservice"}

// writeHistoryCSV writes a small wide-format recording: a request rate with
// a 30-step season for every service, a few gaps written as 0 (missing).
func writeHistoryCSV(t *testing.T, services []string) string {
	t.Helper()
	var b strings.Builder
	writeCSVHeader(&b, services)
	start := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	for r := range 300 {
		fmt.Fprintf(&b, "%d,%s", r, start.Add(time.Duration(r)*30*time.Second).Format("2006-01-02T15:04:05"))
		for n := range services {
			req := 30 + 2*float64(n) + 12*math.Sin(2*math.Pi*float64(r)/30+float64(n))
			if r%53 == 7 {
				req = 0 // the recorder's "no sample"
			}
			fmt.Fprintf(&b, ",%.4f,0.4,%.4f,0.05,2", 0.1+req/200, req)
		}
		b.WriteString("\n")
	}
	path := filepath.Join(t.TempDir(), "history.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeCSVHeader writes the shared wide format's header for services.
func writeCSVHeader(b *strings.Builder, services []string) {
	b.WriteString("step,timestamp_local")
	for _, s := range services {
		for _, m := range []string{"cpu", "mem", "req", "res", "pod"} {
			fmt.Fprintf(b, ",%s_%s", s, m)
		}
	}
	b.WriteString("\n")
}

// runBacktest runs the command with args and returns its standard output.
func runBacktest(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, _, err := execute(newBacktestCommand(), time.Minute, args...)
	return out, err
}

// execute runs a subcommand as the root command would (no usage or error
// printed by cobra) and returns what it wrote to stdout and stderr.
func execute(cmd *cobra.Command, timeout time.Duration, args ...string) (stdout, stderr string, err error) {
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// checkBacktestJSON parses the report and checks every method is there.
func checkBacktestJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	var names []string
	methods, _ := doc["methods"].([]any)
	for _, m := range methods {
		names = append(names, m.(map[string]any)["name"].(string))
	}
	if !slices.Equal(names, backtestMethods) {
		t.Errorf("methods = %v, want %v", names, backtestMethods)
	}
	if doc["horizon_steps"] != 10.0 {
		t.Errorf("horizon_steps = %v, want the demo model's 10", doc["horizon_steps"])
	}
	if _, ok := doc["headroom_baseline_mean_excess"]; !ok {
		t.Error("headroom_baseline_mean_excess missing")
	}
	return doc
}

func TestBacktestCommand(t *testing.T) {
	data := writeHistoryCSV(t, demoServices)
	plots := filepath.Join(t.TempDir(), "plots")
	out, err := runBacktest(t, "--data", data, "--format", "json", "--stride", "2", "--plots", plots, "--plot-horizon", "3")
	if err != nil {
		t.Fatal(err)
	}
	doc := checkBacktestJSON(t, out)
	if doc["missing_points"].(float64) == 0 {
		t.Error("the zeros in the request rate were not counted as missing")
	}
	for _, f := range []string{"forecast-frontend-h3.png", "mae-by-horizon.png"} {
		if st, err := os.Stat(filepath.Join(plots, f)); err != nil || st.Size() == 0 {
			t.Errorf("plot %s: %v", f, err)
		}
	}

	table, err := runBacktest(t, "--data", data, "--season", "30")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range backtestMethods {
		if !strings.Contains(table, m) {
			t.Errorf("table lacks %s:\n%s", m, table)
		}
	}
	if !strings.Contains(table, "*") {
		t.Errorf("table marks no best value:\n%s", table)
	}
	if strings.Contains(table, "MAE by step ahead") {
		t.Errorf("the step table printed without --horizons:\n%s", table)
	}
	byStep, err := runBacktest(t, "--data", data, "--season", "30", "--horizons")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MAE by step ahead (30s per step)", "@1", "@10", "winner", "model / best baseline"} {
		if !strings.Contains(byStep, want) {
			t.Errorf("--horizons output lacks %q:\n%s", want, byStep)
		}
	}
}

func TestBacktestCommandRefuses(t *testing.T) {
	data := writeHistoryCSV(t, demoServices)
	partial := writeHistoryCSV(t, demoServices[1:])
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no data", nil, "--data"},
		{"bad format", []string{"--data", data, "--format", "yaml"}, "--format"},
		{"service missing", []string{"--data", partial}, "adservice"},
		{"model directory missing", []string{"--data", data, "--model", filepath.Join(t.TempDir(), "none")}, "--model"},
		{"plot horizon too far", []string{"--data", data, "--plots", t.TempDir(), "--plot-horizon", "11"}, "--plot-horizon"},
		{"bad split", []string{"--data", data, "--split", "1.5"}, "split"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runBacktest(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestBacktestCommandBoutique runs the command on the real recording with
// the built-in model.
func TestBacktestCommandBoutique(t *testing.T) {
	data := testenv.SharedData(t, "boutique/boutique.csv")
	out, err := runBacktest(t, "--data", data, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	checkBacktestJSON(t, out)
}
