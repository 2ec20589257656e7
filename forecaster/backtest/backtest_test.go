package backtest

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

	"github.com/foresightscale/foresight/forecaster/baseline"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/models/dataset"
)

// fixed forecasts the same value everywhere; with p90 set it is a
// QuantileMethod whose P90 is that value.
type fixed struct {
	name  string
	value float64
	p90   *float64
}

func (f *fixed) Name() string                         { return f.name }
func (f *fixed) Fit(*dataset.Dataset, int, int) error { return nil }
func (f *fixed) HasQuantile(_ *dataset.Dataset, _ int, q float64) bool {
	return f.p90 != nil && q == P90
}
func (f *fixed) Forecast(ds *dataset.Dataset, _, _, horizon int) ([][]float64, error) {
	return filled(horizon, len(ds.Services), f.value), nil
}
func (f *fixed) ForecastQuantile(ds *dataset.Dataset, _, _, horizon int, _ float64) ([][]float64, error) {
	return filled(horizon, len(ds.Services), *f.p90), nil
}

func filled(horizon, services int, v float64) [][]float64 {
	out := make([][]float64, horizon)
	for h := range out {
		out[h] = slices.Repeat([]float64{v}, services)
	}
	return out
}

// handDataset is one service "a" with values 1,2,3,4,5,0,7,8, step 6 (the 7)
// not observed.
func handDataset() *dataset.Dataset {
	values := []float64{1, 2, 3, 4, 5, 0, 7, 8}
	ds := &dataset.Dataset{
		Services: []string{"a"}, Features: []source.Feature{source.Requests},
		Start: time.Date(2024, 4, 6, 0, 0, 0, 0, time.UTC), Step: 30 * time.Second, Steps: len(values),
		Raw: [][][]float64{make([][]float64, len(values))}, Observed: [][][]bool{make([][]bool, len(values))},
	}
	for t, v := range values {
		ds.Raw[0][t] = []float64{v}
		ds.Observed[0][t] = []bool{t != 6}
	}
	return ds
}

func handConfig(methods ...baseline.Method) Config {
	return Config{Target: source.Requests, Window: 2, Horizon: 2, TrainEnd: 4, Stride: 1, Methods: methods, ModelName: "hand"}
}

func near(m Metric, want float64) bool { return m.Defined && math.Abs(m.Value-want) < 1e-12 }

// TestMetricsByHand: origins 3,4,5 forecast steps 4..7 with 4; actuals 5,0,
// 0,(7 missing),(7 missing),8 give errors 1,4,4,4 (two points missing), and
// MAPE only over the non-zero actuals 5 and 8: (1/5+4/8)/2.
func TestMetricsByHand(t *testing.T) {
	res, err := Run(context.Background(), handDataset(), handConfig(&fixed{name: "four", value: 4}))
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report
	if !slices.Equal(res.Origins, []int{3, 4, 5}) || rep.EvaluatedPoints != 4 || rep.MissingPoints != 2 {
		t.Fatalf("origins %v, evaluated %d, missing %d; want [3 4 5], 4, 2", res.Origins, rep.EvaluatedPoints, rep.MissingPoints)
	}
	m := rep.Methods[0]
	checks := []struct {
		name string
		got  Metric
		want float64
	}{
		{"mae", m.MAE, 13.0 / 4},
		{"rmse", m.RMSE, 3.5},
		{"mape", m.MAPE, 35},
		{"mae@1", m.MAEByHorizon[0], 2.5},
		{"mae@2", m.MAEByHorizon[1], 4},
		{"per-service mae", m.PerService["a"].MAE, 13.0 / 4},
	}
	for _, c := range checks {
		if !near(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if m.EvaluatedPoints != 4 || m.MAPEPoints != 2 {
		t.Errorf("evaluated %d, MAPE points %d; want 4 and 2", m.EvaluatedPoints, m.MAPEPoints)
	}
}

// TestP90AndHeadroomByHand: a P90 of 6 covers 5,0,0 but not 8; the
// headroom tuned on the training residuals (3−2, 4−2) at coverage 3/4 is 2.
func TestP90AndHeadroomByHand(t *testing.T) {
	six := 6.0
	res, err := Run(context.Background(), handDataset(), handConfig(&fixed{name: "gnn", value: 4, p90: &six}))
	if err != nil {
		t.Fatal(err)
	}
	rep, m := res.Report, res.Report.Methods[0]
	if m.P90Coverage == nil || !near(*m.P90Coverage, 0.75) || !near(*m.P90MeanExcess, 11.0/4) {
		t.Errorf("P90 coverage %v mean excess %v, want 0.75 and 2.75", m.P90Coverage, m.P90MeanExcess)
	}
	if rep.HeadroomPerService["a"] != 2 {
		t.Errorf("headroom = %v, want 2", rep.HeadroomPerService)
	}
	// Last value + 2 from origins 3,4,5 (values 4,5,0): 6 vs 5 and 0, 7 vs
	// 0, 2 vs 8: excess (1+6+7−6)/4, coverage 3/4.
	if !near(rep.HeadroomBaselineMeanExcess, 2) || !near(rep.HeadroomBaselineCoverage, 0.75) {
		t.Errorf("headroom baseline excess %v coverage %v, want 2 and 0.75", rep.HeadroomBaselineMeanExcess, rep.HeadroomBaselineCoverage)
	}
	// Tuned on the test residuals (1, −4, −5, 8) at coverage 3/4 the
	// headroom is 1: 5 vs 5 and 0, 6 vs 0, 1 vs 8: excess (0+5+6−7)/4.
	if !near(rep.HeadroomHindsightMeanExcess, 1) || !near(rep.HeadroomHindsightCoverage, 0.75) {
		t.Errorf("hindsight headroom excess %v coverage %v, want 1 and 0.75", rep.HeadroomHindsightMeanExcess, rep.HeadroomHindsightCoverage)
	}
}

// TestUndefinedMetricsAreNull: nothing observed in the test part gives
// null metrics, each with its reason, and never NaN.
func TestUndefinedMetricsAreNull(t *testing.T) {
	ds := handDataset()
	for tt := 4; tt < ds.Steps; tt++ {
		ds.Raw[0][tt][0], ds.Observed[0][tt][0] = 0, tt == 4 // only a zero, one step ahead of origin 3
	}
	res, err := Run(context.Background(), ds, handConfig(&fixed{name: "gnn", value: 1}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := res.Report.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "NaN") {
		t.Fatalf("report has NaN:\n%s", buf.String())
	}
	var got struct {
		Undefined map[string]string `json:"undefined"`
		Methods   []struct {
			MAE          *float64          `json:"mae"`
			MAPE         *float64          `json:"mape"`
			MAEByHorizon []*float64        `json:"mae_by_horizon"`
			P90Coverage  *float64          `json:"p90_coverage"`
			Undefined    map[string]string `json:"undefined"`
		} `json:"methods"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	m := got.Methods[0]
	if m.MAE == nil || *m.MAE != 1 || m.MAPE != nil || m.MAEByHorizon[1] != nil || m.P90Coverage != nil {
		t.Errorf("mae %v mape %v mae_by_horizon %v p90 %v; want 1, null, [1 null], null", m.MAE, m.MAPE, m.MAEByHorizon, m.P90Coverage)
	}
	for _, key := range []string{"mape", "mae_by_horizon[1]", "p90_coverage", "p90_mean_excess"} {
		if m.Undefined[key] == "" {
			t.Errorf("no reason for null %s (undefined: %v)", key, m.Undefined)
		}
	}
	if got.Undefined["headroom_hindsight_mean_excess"] == "" {
		t.Errorf("no reason for null headroom_hindsight_mean_excess (undefined: %v)", got.Undefined)
	}
	if got.Undefined["headroom_baseline_mean_excess"] == "" {
		t.Errorf("no reason for null headroom_baseline_mean_excess (undefined: %v)", got.Undefined)
	}
}

type broken struct {
	fixed
	forecast func(horizon, services int) [][]float64
}

func (b *broken) Forecast(ds *dataset.Dataset, _, _, horizon int) ([][]float64, error) {
	return b.forecast(horizon, len(ds.Services)), nil
}

func TestRunRefuses(t *testing.T) {
	nan := &broken{fixed: fixed{name: "nan"}, forecast: func(h, n int) [][]float64 { return filled(h, n, math.NaN()) }}
	short := &broken{fixed: fixed{name: "short"}, forecast: func(h, n int) [][]float64 { return filled(h-1, n, 1) }}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"non-finite forecast", func(c *Config) { c.Methods = []baseline.Method{nan} }, "nan from step 3: forecast for a at h=1 is NaN"},
		{"wrong shape", func(c *Config) { c.Methods = []baseline.Method{short} }, "short from step 3: 1 horizon steps, want 2"},
		{"duplicate method", func(c *Config) { c.Methods = append(c.Methods, c.Methods[0]) }, `"four" listed twice`},
		{"no test window", func(c *Config) { c.TrainEnd = 7 }, "holds no window"},
		{"unknown target", func(c *Config) { c.Target = source.CPU }, `target feature "cpu"`},
		{"zero stride", func(c *Config) { c.Stride = 0 }, "stride"},
		{"no methods", func(c *Config) { c.Methods = nil }, "no methods"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := handConfig(&fixed{name: "four", value: 4})
			tc.mutate(&cfg)
			_, err := Run(context.Background(), handDataset(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestNegativeForecastsClipped: a negative forecast is scored as 0 and counted.
func TestNegativeForecastsClipped(t *testing.T) {
	res, err := Run(context.Background(), handDataset(), handConfig(&fixed{name: "minus", value: -1}))
	if err != nil {
		t.Fatal(err)
	}
	m := res.Report.Methods[0]
	// Forecast 0 against 5,0,0,8: errors 5,0,0,8.
	if m.ClippedForecasts != 6 || !near(m.MAE, 13.0/4) {
		t.Errorf("clipped %d, MAE %v; want 6 and 3.25", m.ClippedForecasts, m.MAE)
	}
}

func TestStride(t *testing.T) {
	cfg := handConfig(&fixed{name: "four", value: 4})
	cfg.Stride = 2
	res, err := Run(context.Background(), handDataset(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Origins, []int{3, 5}) {
		t.Errorf("origins = %v, want [3 5]", res.Origins)
	}
}

// servicesOfDemo are the demo model's services.
var servicesOfDemo = []string{"adservice", "cartservice", "checkoutservice", "currencyservice", "emailservice",
	"frontend", "paymentservice", "productcatalogservice", "recommendationservice", "shippingservice"}

// writeCSV writes a wide-format CSV of rows steps for services: a seasonal
// request rate (period 40 steps) and plausible other metrics.
func writeCSV(t *testing.T, rows int, services []string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("step,timestamp_local")
	for _, s := range services {
		for _, m := range []string{"cpu", "mem", "req", "res", "pod"} {
			fmt.Fprintf(&b, ",%s_%s", s, m)
		}
	}
	b.WriteString("\n")
	start := time.Date(2023, 11, 2, 8, 0, 0, 0, time.UTC) // not a range the demo model saw
	for r := range rows {
		fmt.Fprintf(&b, "%d,%s", r, start.Add(time.Duration(r)*30*time.Second).Format("2006-01-02T15:04:05"))
		for n := range services {
			req := 20 + float64(n) + 10*math.Sin(2*math.Pi*float64(r)/40+float64(n)) + 0.05*float64(r%7)
			fmt.Fprintf(&b, ",%.4f,%.4f,%.4f,%.4f,%d", req/100, 0.3, req, 0.05+req/2000, 1)
		}
		b.WriteString("\n")
	}
	path := filepath.Join(t.TempDir(), "history.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHorizonTable: against 5,0,0,8 a model forecasting 4 and a baseline
// forecasting 3 tie at both steps; the summary names each step's winner,
// the best baseline and the model's ratio to it.
func TestHorizonTable(t *testing.T) {
	res, err := Run(context.Background(), handDataset(), handConfig(&fixed{name: baseline.ModelName, value: 4}, &fixed{name: "three", value: 3}, &fixed{name: "nine", value: 9}))
	if err != nil {
		t.Fatal(err)
	}
	h := res.Report.Horizons
	// Step 1 targets 5 and 0 (origins 3, 4): 4 errs 1,4 (2.5), 3 errs 2,3 (2.5), 9 errs 4,9.
	// Step 2 targets 0 and 8 (origins 3, 5): 4 errs 4,4 (4), 3 errs 3,5 (4), 9 errs 9,1 (5).
	if len(h) != 2 || h[0].Step != 1 || h[0].BestBaseline != "three" || !near(h[0].ModelToBestBaseline, 1) || !near(h[1].ModelMAE, 4) {
		t.Fatalf("horizons = %+v", h)
	}
	for _, s := range h {
		if s.Winner != baseline.ModelName && s.Winner != "three" {
			t.Errorf("step %d winner %q", s.Step, s.Winner)
		}
	}
	var buf bytes.Buffer
	if err := res.Report.WriteHorizonTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MAE by step ahead (30s per step)", "@1", "@2", "nine", "winner", "model / best baseline", "2.5*"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("horizon table lacks %q:\n%s", want, buf.String())
		}
	}
	// Without a model the ratio is undefined, not zero.
	res, err = Run(context.Background(), handDataset(), handConfig(&fixed{name: "three", value: 3}))
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Report.Horizons[0]; s.ModelToBestBaseline.Defined || s.Winner != "three" {
		t.Errorf("without a model: %+v", s)
	}
}
