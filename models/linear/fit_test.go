package linear

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/forecaster/topology"
)

var start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func testOptions() Options {
	return Options{
		Name: "t", Version: "1", Graph: topology.OnlineBoutique(),
		Features: []source.Feature{source.Requests, source.CPU},
		Targets:  []source.Feature{source.Requests},
		Window:   6, Horizon: 4, Step: 30 * time.Second, Ridge: 1e-3, ValidationFraction: 0.25,
	}
}

func history(t *testing.T, hours int) source.Data {
	t.Helper()
	gen, err := synthetic.New(synthetic.DefaultConfig(), topology.OnlineBoutique())
	if err != nil {
		t.Fatal(err)
	}
	d, err := source.NewSynthetic(gen).Fetch(context.Background(), source.Query{
		Services: topology.OnlineBoutique().Services, Features: source.AllFeatures,
		Start: start, End: start.Add(time.Duration(hours) * time.Hour), Step: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestFitExportRoundTrip(t *testing.T) {
	// More than a whole synthetic day: on half a day the held-out part is a
	// different phase of the diurnal cycle and the fit loses to last value.
	m, err := Fit(history(t, 26), start, start.Add(26*time.Hour), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if !(m.Report.MAE["requests"] < m.Report.LastValueMAE["requests"]) {
		t.Errorf("validation MAE %v not below last value %v", m.Report.MAE, m.Report.LastValueMAE)
	}
	onnxBytes, man, err := m.Export()
	if err != nil {
		t.Fatal(err)
	}
	// The runtime must reproduce the plain-Go forward pass (the golden pair)
	// and, on another input, the same numbers.
	manifestJSON, err := jsonOf(man)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := model.Parse(onnxBytes, manifestJSON)
	if err != nil {
		t.Fatal(err)
	}
	s, err := loaded.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, len(man.Golden.Input))
	for i := range x {
		x[i] = float64(float32(float64(i%7)/3 - 1))
	}
	got, err := s.Predict(x)
	if err != nil {
		t.Fatal(err)
	}
	want := m.Forward(x)["requests"]
	for i := range want {
		if d := got["requests"][i] - want[i]; d > 1e-4 || d < -1e-4 {
			t.Fatalf("runtime output[%d] = %v, forward pass %v", i, got["requests"][i], want[i])
		}
	}
}

func TestFitRefusesBadHistory(t *testing.T) {
	full := history(t, 1)
	noCart := source.Data{}
	for f, bySvc := range full {
		for svc, samples := range bySvc {
			if svc != "cartservice" {
				noCart[f] = mapWith(noCart[f], svc, samples)
			}
		}
	}
	bad := testOptions()
	bad.Targets = []source.Feature{source.Latency}
	tests := []struct {
		name string
		data source.Data
		end  time.Time
		opts Options
		want string
	}{
		{"too short", full, start.Add(5 * time.Minute), testOptions(), "training windows"},
		{"service without data", noCart, start.Add(time.Hour), testOptions(), "service cartservice"},
		{"target not an input", full, start.Add(time.Hour), bad, "target latency is not an input"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Fit(tc.data, start, tc.end, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func mapWith(m map[string][]source.Sample, k string, v []source.Sample) map[string][]source.Sample {
	if m == nil {
		m = map[string][]source.Sample{}
	}
	m[k] = v
	return m
}

func jsonOf(m *model.Manifest) ([]byte, error) { return json.Marshal(m) }
