package backtest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/internal/testenv"
	"github.com/foresightscale/foresight/models"
)

// contractMethods are the method names the JSON contract promises, in order.
var contractMethods = []string{"gnn", "last_value", "seasonal_naive", "holt_winters", "linear_regression", "fft", "autoregression"}

func demoModel(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.LoadFS(models.Demo())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestEvaluateJSONContract runs every method with the demo model on a small
// CSV from a time range the model never saw and checks the keys scripts
// depend on.
func TestEvaluateJSONContract(t *testing.T) {
	res := evaluateContract(t, writeCSV(t, 400, servicesOfDemo))
	// The seasonal baselines found the 40-step season of the file.
	for _, m := range res.Report.Methods {
		if m.Name == "seasonal_naive" && !strings.Contains(m.Fitted, "frontend=40") {
			t.Errorf("seasonal_naive fitted %q, want period 40", m.Fitted)
		}
	}
	// On a clean periodic series the seasonal baseline beats last value.
	byName := map[string]MethodReport{}
	for _, m := range res.Report.Methods {
		byName[m.Name] = m
	}
	if sn, lv := byName["seasonal_naive"].MAE.Value, byName["last_value"].MAE.Value; !(sn < lv) {
		t.Errorf("seasonal naive MAE %v not below last value's %v on a periodic series", sn, lv)
	}
}

// checkContract checks the JSON keys and types of a report.
func checkContract(t *testing.T, doc map[string]any, services []string) {
	t.Helper()
	h, ok := doc["horizon_steps"].(float64)
	if !ok || h < 1 {
		t.Fatalf("horizon_steps = %v", doc["horizon_steps"])
	}
	if hs, ok := doc["horizons"].([]any); !ok || len(hs) != int(h) {
		t.Errorf("horizons = %v, want one entry per step", doc["horizons"])
	} else if first, _ := hs[0].(map[string]any); first["winner"] == "" || first["best_baseline"] == nil {
		t.Errorf("horizons[0] = %v", first)
	}
	for _, key := range []string{"headroom_baseline_mean_excess", "evaluated_points", "missing_points", "origins"} {
		if _, ok := doc[key]; !ok {
			t.Errorf("top-level key %q missing", key)
		}
	}
	if doc["evaluated_points"].(float64) <= 0 {
		t.Errorf("evaluated_points = %v", doc["evaluated_points"])
	}
	methods, _ := doc["methods"].([]any)
	var names []string
	for _, raw := range methods {
		m := raw.(map[string]any)
		name, _ := m["name"].(string)
		names = append(names, name)
		for _, key := range []string{"mae", "rmse", "mape"} {
			if _, ok := m[key].(float64); !ok {
				t.Errorf("%s.%s = %v, want a number", name, key, m[key])
			}
		}
		if byH, _ := m["mae_by_horizon"].([]any); len(byH) != int(h) {
			t.Errorf("%s.mae_by_horizon has %d values, want %v", name, len(byH), h)
		}
		per, _ := m["per_service"].(map[string]any)
		for _, svc := range services {
			s, ok := per[svc].(map[string]any)
			if !ok {
				t.Errorf("%s.per_service.%s missing", name, svc)
				continue
			}
			for _, key := range []string{"mae", "rmse", "mape", "mae_by_horizon"} {
				if _, ok := s[key]; !ok {
					t.Errorf("%s.per_service.%s.%s missing", name, svc, key)
				}
			}
		}
		if name == "gnn" {
			for _, key := range []string{"p90_coverage", "p90_mean_excess"} {
				if _, ok := m[key]; !ok {
					t.Errorf("gnn.%s missing", key)
				}
			}
		}
	}
	if !slices.Equal(names, contractMethods) {
		t.Errorf("methods = %v, want %v", names, contractMethods)
	}
}

func TestEvaluateRefuses(t *testing.T) {
	m := demoModel(t)
	withoutFrontend := slices.DeleteFunc(slices.Clone(servicesOfDemo), func(s string) bool { return s == "frontend" || s == "adservice" })
	tests := []struct {
		name string
		path string
		opts Options
		want string
	}{
		{"service missing", writeCSV(t, 400, withoutFrontend), DefaultOptions(), "no columns for service(s) adservice, frontend"},
		{"split out of range", writeCSV(t, 400, servicesOfDemo), Options{Split: 1, Stride: 1}, "split must be in (0,1)"},
		{"no such file", filepath.Join(t.TempDir(), "nope.csv"), DefaultOptions(), "nope.csv"},
		{"test part too short", writeCSV(t, 400, servicesOfDemo), Options{Split: 0.98, Stride: 1}, "holds no window"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Evaluate(context.Background(), m, tc.path, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPlots(t *testing.T) {
	res, err := Evaluate(context.Background(), demoModel(t), writeCSV(t, 300, servicesOfDemo), Options{Split: 0.7, Stride: 3})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "plots")
	files, err := res.WritePlots(dir, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(servicesOfDemo)+1 {
		t.Errorf("%d plots, want one per service and one by horizon", len(files))
	}
	for _, f := range append(files, filepath.Join(dir, "forecast-frontend-h4.png"), filepath.Join(dir, "mae-by-horizon.png")) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 1000 || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Errorf("%s: %d bytes, not a PNG plot", f, len(b))
		}
	}
	if _, err := res.WritePlots(dir, 11); err == nil {
		t.Error("plot horizon beyond the model's accepted")
	}
}

func TestTable(t *testing.T) {
	res, err := Run(context.Background(), handDataset(), handConfig(&fixed{name: "four", value: 4}, &fixed{name: "five", value: 5}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := res.Report.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	// Against 5,0,0,8: forecasting 4 errs 1,4,4,4 (MAE 3.25), 5 errs
	// 0,5,5,3 (MAE 3.25 too, MAE@1 2.5 vs 2.5, MAE@2 4 vs 4, RMSE 3.5 vs
	// 3.841, MAPE 35 vs 18.75): RMSE and MAPE separate them.
	for _, want := range []string{"MAE@2", "four", "3.5*", "3.841 ", "18.75*"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// boutiqueCSV returns the shared boutique recording, or skips.
func boutiqueCSV(t testing.TB) string {
	t.Helper()
	return testenv.SharedData(t, "boutique/boutique.csv")
}

// TestBoutique backtests the demo model on the real recording: every method
// runs from every origin of the last 30 % and the report is complete.
func TestBoutique(t *testing.T) {
	path := boutiqueCSV(t)
	res := evaluateContract(t, path)
	// The recording writes a missing request rate as 0: some points are missing.
	if res.Report.MissingPoints == 0 {
		t.Error("no missing points counted on a recording with gaps")
	}
	for _, m := range res.Report.Methods {
		t.Logf("%-18s MAE %-8s MAE@%d %s", m.Name, m.MAE, res.Report.HorizonSteps, m.MAEByHorizon[res.Report.HorizonSteps-1])
	}
}

func BenchmarkBoutique(b *testing.B) {
	path := boutiqueCSV(b)
	m := demoModel(b)
	for b.Loop() {
		if _, err := Evaluate(context.Background(), m, path, DefaultOptions()); err != nil {
			b.Fatal(err)
		}
	}
}

// evaluateContract evaluates the demo model on the CSV at path and checks
// the JSON report's contract.
func evaluateContract(t *testing.T, path string) *Result {
	t.Helper()
	res, err := Evaluate(context.Background(), demoModel(t), path, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := res.Report.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("report is not JSON: %v", err)
	}
	checkContract(t, doc, servicesOfDemo)
	return res
}
