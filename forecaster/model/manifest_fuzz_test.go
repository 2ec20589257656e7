package model_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/internal/testenv"
)

// tinyManifest is the smallest valid manifest: two services, one feature.
const tinyManifest = `{"format":1,"name":"t","version":"1","services":["a","b"],"features":["requests"],
"window":2,"horizon":1,"step":"30s","input":{"name":"x","shape":[2,2]},
"outputs":[{"name":"y","shape":[1,2],"feature":"requests","quantile":0.5}],
"normalization":{"requests":{"mean":[1,2],"std":[1,1]}},
"callGraph":[{"caller":"a","callee":"b","fanOut":1}],
"golden":{"input":[0,0,0,0],"outputs":{"y":[0,0]}},"training":{"epochs":3}}`

// FuzzDecodeManifest: arbitrary bytes through DecodeManifest, the function
// that reads manifest.json. Invariants: no panic; every error starts with
// "manifest.json:"; an accepted manifest passes Validate, its sizes agree
// (input and output shapes hold exactly the golden values, with no
// overflow), its limits hold, its graph validates, and it survives a JSON
// round trip unchanged and still accepted.
func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(tinyManifest))
	for _, hostile := range []struct{ from, to string }{
		{`"window":2`, `"window":4611686018427387904`}, // f×window×n overflows to 0
		{`"window":2`, `"window":-1`},
		{`"step":"30s"`, `"step":"1ns"`},
		{`"step":"30s"`, `"step":"2562047h"`},
		{`"quantile":0.5`, `"quantile":1e400`},
		{`"fanOut":1`, `"fanOut":-1`},
		{`"callGraph":[{"caller":"a","callee":"b","fanOut":1}]`, `"callGraph":[{"caller":"a","callee":"b"},{"caller":"a","callee":"b"}]`},
		{`"features":["requests"]`, `"features":["requests","requests"]`},
		{`"std":[1,1]`, `"std":[1,0]`},
		{`"training":{"epochs":3}`, `"training":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000)},
		{`"services":["a","b"]`, `"services":["a","a"]`},
		{`"name":"t"`, `"name":"t","extra":1`},
	} {
		f.Add([]byte(strings.Replace(tinyManifest, hostile.from, hostile.to, 1)))
	}
	f.Add([]byte(tinyManifest + "{}"))
	f.Add([]byte("null"))
	f.Add([]byte("{}"))
	if b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(f), "models", "demo", "manifest.json")); err == nil {
		f.Add(b)
	} else {
		f.Logf("seed models/demo/manifest.json not readable (%v): fuzzing without it", err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := model.DecodeManifest(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), model.ManifestFile+": ") {
				t.Fatalf("error does not start with %q: %.300q", model.ManifestFile+": ", err.Error())
			}
			return
		}
		checkManifest(t, m)
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("an accepted manifest does not marshal: %v", err)
		}
		m2, err := model.DecodeManifest(again)
		if err != nil {
			t.Fatalf("an accepted manifest is refused after a round trip: %v\n%s", err, again)
		}
		if third, _ := json.Marshal(m2); !bytes.Equal(third, again) {
			t.Fatalf("round trip changed the manifest:\n%s\n%s", again, third)
		}
	})
}

// checkManifest asserts what an accepted manifest guarantees its users.
func checkManifest(t *testing.T, m *model.Manifest) {
	t.Helper()
	if err := m.Validate(); err != nil {
		t.Fatalf("DecodeManifest accepted a manifest Validate refuses: %v", err)
	}
	n, f := len(m.Services), len(m.Features)
	if m.Window < 1 || m.Window > model.MaxWindow || m.Horizon < 1 || m.Horizon > model.MaxHorizon ||
		time.Duration(m.Step) < model.MinStep || time.Duration(m.Step) > model.MaxStep {
		t.Fatalf("window %d, horizon %d, step %v accepted", m.Window, m.Horizon, time.Duration(m.Step))
	}
	if size := model.Shape(m.Input.Shape).Size(); size != f*m.Window*n || size != len(m.Golden.Input) || size <= 0 {
		t.Fatalf("input shape %v (%d values) for %d golden inputs", m.Input.Shape, size, len(m.Golden.Input))
	}
	for _, o := range m.Outputs {
		if size := model.Shape(o.Shape).Size(); size != m.Horizon*n || size != len(m.Golden.Outputs[o.Name]) {
			t.Fatalf("output %s shape %v for %d golden values", o.Name, o.Shape, len(m.Golden.Outputs[o.Name]))
		}
		if !(o.Quantile > 0 && o.Quantile < 1) {
			t.Fatalf("output %s quantile %v", o.Name, o.Quantile)
		}
	}
	for feat, st := range m.Normalization {
		for i := range st.Std {
			if !(st.Std[i] > 0) || math.IsInf(st.Std[i], 0) || math.IsNaN(st.Mean[i]) || math.IsInf(st.Mean[i], 0) {
				t.Fatalf("normalization.%s[%d]: mean %v std %v", feat, i, st.Mean[i], st.Std[i])
			}
		}
	}
	if err := m.Graph().Validate(); err != nil {
		t.Fatalf("accepted call graph fails Validate: %v", err)
	}
}

// TestValidateBoundsSizes: a window of 2^62 made features × window ×
// services overflow to 0, so an empty golden input and a huge input shape
// passed Validate; windows, horizons and steps now have bounds, and NaN
// quantiles and non-finite golden values are refused.
func TestValidateBoundsSizes(t *testing.T) {
	valid := func() *model.Manifest {
		m, err := model.DecodeManifest([]byte(tinyManifest))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name   string
		modify func(*model.Manifest)
		want   string
	}{
		{"window overflowing the sizes", func(m *model.Manifest) {
			m.Window = 1 << 62
			m.Services = []string{"a", "b", "c", "d"}
			m.Input.Shape = []int{1 << 62, 4}
			m.Golden.Input = nil // 1 × 2^62 × 4 values overflows to 0
			m.Outputs[0].Shape = []int{1, 4}
			m.Golden.Outputs["y"] = []float64{0, 0, 0, 0}
			m.Normalization["requests"] = model.Stats{Mean: []float64{1, 1, 1, 1}, Std: []float64{1, 1, 1, 1}}
		}, "window: must be between 1 and 10000"},
		{"horizon", func(m *model.Manifest) { m.Horizon = model.MaxHorizon + 1 }, "horizon: must be between"},
		{"step too short", func(m *model.Manifest) { m.Step = model.Duration(time.Nanosecond) }, "step: must be between 1s and 24h0m0s"},
		{"NaN quantile", func(m *model.Manifest) { m.Outputs[0].Quantile = math.NaN() }, "outputs[0].quantile"},
		{"NaN golden input", func(m *model.Manifest) { m.Golden.Input[1] = math.NaN() }, "golden.input[1]: NaN is not finite"},
		{"Inf golden output", func(m *model.Manifest) { m.Golden.Outputs["y"][0] = math.Inf(1) }, "golden.outputs.y[0]: +Inf is not finite"},
		{"too many features", func(m *model.Manifest) {
			m.Features = append(m.Features, m.Features[0], m.Features[0], m.Features[0], m.Features[0], m.Features[0])
		}, "features: 6 listed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid()
			tt.modify(m)
			if err := m.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
