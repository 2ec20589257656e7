package model_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/models/onnxbuild"
	"github.com/foresightscale/foresight/models/onnxpb"
	"google.golang.org/protobuf/proto"
)

func TestParseRunsTheShippedModelShape(t *testing.T) {
	for _, n := range []int{1, 3, 10} {
		m := newLinearGCN(t, n)
		loaded, err := model.Parse(m.onnx, m.manifestJSON(t))
		if err != nil {
			t.Fatalf("services=%d: %v", n, err)
		}
		s, err := loaded.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		// Alternate inputs: a graph that cached its first input or kept state
		// between runs would repeat or drift.
		var previous map[string][]float64
		for pass, seed := range []int{1, 2, 1, 2} {
			in := m.input(seed)
			got, err := s.Predict(in)
			if err != nil {
				t.Fatalf("services=%d pass %d: %v", n, pass, err)
			}
			if d := maxDiff(t, got, m.forward(in)); d > model.GoldenTolerance {
				t.Errorf("services=%d pass %d: differs from the reference by %g", n, pass, d)
			}
			if previous != nil && maxDiff(t, got, previous) < 1e-3 {
				t.Errorf("services=%d pass %d: output did not change with the input", n, pass)
			}
			previous = got
		}
		if got := loaded.Manifest().Services; len(got) != n {
			t.Errorf("Manifest().Services = %v", got)
		}
	}
}

// craft edits a model file at the protobuf level, for files onnxbuild refuses to write.
func craft(t *testing.T, onnxBytes []byte, edit func(*onnxpb.ModelProto)) []byte {
	t.Helper()
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(onnxBytes, &mp); err != nil {
		t.Fatal(err)
	}
	edit(&mp)
	out, err := proto.Marshal(&mp)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// editManifest returns the manifest JSON after an edit of a deep copy.
func editManifest(t *testing.T, man model.Manifest, edit func(*model.Manifest)) []byte {
	t.Helper()
	b, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	var cp model.Manifest
	if err := json.Unmarshal(b, &cp); err != nil {
		t.Fatal(err)
	}
	edit(&cp)
	if b, err = json.Marshal(cp); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRejects(t *testing.T) {
	m := newLinearGCN(t, 3)
	good := m.manifestJSON(t)
	nodeOp := func(i int, op string) func(*onnxpb.ModelProto) {
		return func(mp *onnxpb.ModelProto) { mp.Graph.Node[i].OpType = proto.String(op) }
	}
	tests := []struct {
		name     string
		onnx     []byte
		manifest []byte
		want     string
	}{
		{"truncated model file", m.onnx[:len(m.onnx)/2], good, "model.onnx: not an ONNX model"},
		{"empty model file", nil, good, "model.onnx: the model has no graph"},
		{"op outside the verified set", craft(t, m.onnx, nodeOp(3, "Slice")), good, "model.onnx: node 3 (Slice) uses an op outside the verified set"},
		{"op from another domain", craft(t, m.onnx, func(mp *onnxpb.ModelProto) { mp.Graph.Node[3].Domain = proto.String("com.microsoft") }), good, `model.onnx: node 3 (Add): domain "com.microsoft"`},
		{"unsupported broadcast", craft(t, m.onnx, func(mp *onnxpb.ModelProto) {
			mp.Graph.Initializer[3].Dims = []int64{2, 1} // requests_bias [1] -> [2,1] against [10,3]
			mp.Graph.Initializer[3].RawData = make([]byte, 8)
		}), good, "model.onnx: node 4 (Add): shapes [10 3] and [2 1]: broadcast not verified"},
		{"initializer data does not match dims", craft(t, m.onnx, func(mp *onnxpb.ModelProto) {
			mp.Graph.Initializer[0].RawData = mp.Graph.Initializer[0].RawData[:4]
		}), good, `model.onnx: initializer "adjacency": shape [3 3] needs 36 bytes of raw_data, got 4`},
		{"NaN weight", craft(t, m.onnx, func(mp *onnxpb.ModelProto) {
			copy(mp.Graph.Initializer[1].RawData, []byte{0, 0, 0xc0, 0x7f})
		}), good, `model.onnx: initializer "requests_w1": value 0 is NaN`},
		{"node reads a value twice", craft(t, m.onnx, func(mp *onnxpb.ModelProto) {
			mp.Graph.Node[0].Input = []string{"x", "x"}
		}), good, `model.onnx: node 0 (MatMul): reads "x" twice`},
		{"output read by another node", craft(t, m.onnx, func(mp *onnxpb.ModelProto) {
			mp.Graph.Node = append(mp.Graph.Node, &onnxpb.NodeProto{OpType: proto.String("Neg"), Input: []string{"cpu"}, Output: []string{"unused"}})
		}), good, `model.onnx: graph output "cpu" is also read by node 11 (Neg)`},
		{"undefined input", craft(t, m.onnx, func(mp *onnxpb.ModelProto) { mp.Graph.Node[1].Input[0] = "nowhere" }), good, `model.onnx: node 1 (MatMul): input "nowhere" is not`},
		{"two graph inputs", craft(t, m.onnx, func(mp *onnxpb.ModelProto) {
			mp.Graph.Input = append(mp.Graph.Input, proto.CloneOf(mp.Graph.Input[0]))
			mp.Graph.Input[1].Name = proto.String("y")
		}), good, `model.onnx: graph inputs (besides initializers) are ["x" "y"]; want exactly one`},
		{"symbolic input dimension", craft(t, m.onnx, func(mp *onnxpb.ModelProto) {
			mp.Graph.Input[0].Type.GetTensorType().Shape.Dim[1].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}
		}), good, `model.onnx: graph input "x": dimension 1 is not a fixed positive size`},
		{"opset 17", craft(t, m.onnx, func(mp *onnxpb.ModelProto) { mp.OpsetImport[0].Version = proto.Int64(17) }), good, "model.onnx: imports opset 17 of the default domain"},
		{"manifest unknown field", m.onnx, bytes.Replace(good, []byte(`{"format"`), []byte(`{"fromat":1,"format"`), 1), `manifest.json: json: unknown field "fromat"`},
		{"unobserved service unknown", m.onnx, bytes.Replace(good, []byte(`{"format"`), []byte(`{"unobserved":{"requests":["nobody"]},"format"`), 1), "unobserved.requests[0]: nobody is not a service of the model"},
		{"unobserved feature not an input", m.onnx, bytes.Replace(good, []byte(`{"format"`), []byte(`{"unobserved":{"disk":["nobody"]},"format"`), 1), "unobserved.disk: not an input feature"},
		{"seasonal period within the horizon", m.onnx, editManifest(t, m.manifest, func(man *model.Manifest) {
			man.Seasonal = &model.Seasonal{PeriodSteps: shipHorizon, Features: []source.Feature{source.Requests}}
		}), "seasonal.periodSteps: must be above the horizon (10) and at most 20160, got 10"},
		{"seasonal feature not an input", m.onnx, editManifest(t, m.manifest, func(man *model.Manifest) {
			man.Seasonal = &model.Seasonal{PeriodSteps: 100, Features: []source.Feature{source.Requests, source.Requests}}
		}), "seasonal.features[1]: requests is not an input feature, or is listed twice"},
		{"seasonal rows missing from the input", m.onnx, editManifest(t, m.manifest, func(man *model.Manifest) {
			man.Seasonal = &model.Seasonal{PeriodSteps: 100, Features: []source.Feature{source.Requests}}
		}), "input.shape: got [60 3], want [82 3] (features×window plus seasonal rows, services)"},
		{"manifest trailing data", m.onnx, append(append([]byte{}, good...), []byte(` {}`)...), "manifest.json: unexpected data after the manifest object"},
		{"manifest not JSON", m.onnx, []byte("format: 1"), "manifest.json: invalid character"},
		{"manifest invalid", m.onnx, editManifest(t, m.manifest, func(man *model.Manifest) { man.Outputs[0].Shape = []int{shipHorizon, 4} }),
			"manifest.json: outputs[0].shape: got [10 4], want [10 3]"},
		{"manifest normalisation for an unused feature", m.onnx, editManifest(t, m.manifest, func(man *model.Manifest) {
			man.Features = man.Features[:4]
			man.Input.Shape = []int{4 * shipWindow, 3}
			man.Golden.Input = man.Golden.Input[:4*shipWindow*3]
		}), "manifest.json: normalization.replicas: not among the features"},
		{"manifest golden for an unknown output", m.onnx, editManifest(t, m.manifest, func(man *model.Manifest) { man.Golden.Outputs["latency"] = []float64{1} }),
			"manifest.json: golden.outputs.latency: no such output"},
		{"manifest duplicate output", m.onnx, editManifest(t, m.manifest, func(man *model.Manifest) { man.Outputs[1].Name = "requests" }),
			`manifest.json: outputs[1].name: "requests" is used twice`},
		{"input name mismatch", m.onnx, editManifest(t, m.manifest, func(man *model.Manifest) { man.Input.Name = "window" }),
			`model.onnx: graph input is "x", manifest input.name is "window"`},
		{"manifest for more services", m.onnx, newLinearGCN(t, 4).manifestJSON(t),
			`model.onnx: graph input "x" has shape [60 3], manifest input.shape is [60 4]`},
		{"manifest for a shorter horizon", m.onnx, editManifest(t, m.manifest, func(man *model.Manifest) {
			man.Horizon = 9
			for i := range man.Outputs {
				man.Outputs[i].Shape = []int{9, 3}
				man.Golden.Outputs[man.Outputs[i].Name] = man.Golden.Outputs[man.Outputs[i].Name][:27]
			}
		}), `model.onnx: graph output "requests" has shape [10 3], manifest outputs[0].shape is [9 3]`},
		{"manifest output missing from the graph", m.onnx, editManifest(t, m.manifest, func(man *model.Manifest) {
			man.Outputs[1].Name = "cpu_p50"
			man.Golden.Outputs["cpu_p50"] = man.Golden.Outputs["cpu"]
			delete(man.Golden.Outputs, "cpu")
		}), `model.onnx: manifest outputs[1] "cpu_p50" is not a graph output`},
		{"wrong golden output", m.onnx, editManifest(t, m.manifest, func(man *model.Manifest) { man.Golden.Outputs["cpu"][17] += 0.01 }),
			"golden output cpu[17]: got"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := model.Parse(tt.onnx, tt.manifest)
			if err == nil {
				t.Fatalf("Parse succeeded, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error:\n%v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestManifestErrorsAllNameTheFile(t *testing.T) {
	m := newLinearGCN(t, 2)
	_, err := model.Parse(m.onnx, editManifest(t, m.manifest, func(man *model.Manifest) {
		man.Name = ""
		man.Window = 0
	}))
	if err == nil {
		t.Fatal("Parse accepted an invalid manifest")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) < 2 {
		t.Fatalf("want one line per problem, got %q", err)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "manifest.json: ") {
			t.Errorf("line %q does not name the file", l)
		}
	}
}

func TestPredictRefusesNonFiniteOutput(t *testing.T) {
	// requests = Log(W·x) with positive W: finite for the positive golden
	// input, NaN when the input turns negative.
	const n = 2
	ft := len(shipFeatures) * shipWindow
	w := make([]float32, shipHorizon*ft)
	for i := range w {
		w[i] = 0.01
	}
	b := onnxbuild.New("log")
	x := b.Input("x", []int{ft, n})
	y := b.MatMul(b.Initializer("w", []int{shipHorizon, ft}, w), x)
	b.Output(b.Log(y), "requests")
	b.Output(b.Identity(y), "cpu")
	onnxBytes, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	man := shipManifest(n)
	man.Golden.Input = make([]float64, ft*n)
	for i := range man.Golden.Input {
		man.Golden.Input[i] = 1
	}
	if man.Golden.Outputs, err = model.ComputeGolden(onnxBytes, &man); err != nil {
		t.Fatal(err)
	}
	if got, want := man.Golden.Outputs["requests"][0], math.Log(0.01*float64(ft)); math.Abs(got-want) > 1e-5 {
		t.Fatalf("golden requests[0] = %v, want %v", got, want)
	}
	manJSON, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := model.Parse(onnxBytes, manJSON)
	if err != nil {
		t.Fatal(err)
	}
	s, err := loaded.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	negative := make([]float64, ft*n)
	for i := range negative {
		negative[i] = -1
	}
	out, err := s.Predict(negative)
	if err == nil || !strings.Contains(err.Error(), "output requests[0] (horizon step 1, service svc-0) is NaN") {
		t.Fatalf("Predict(negative) = %v, %v; want a NaN error", out, err)
	}
	// A NaN is a property of the input, not a broken session.
	if _, err := s.Predict(man.Golden.Input); err != nil {
		t.Fatalf("Predict after a NaN output: %v", err)
	}
}

func TestPredictChecksItsInput(t *testing.T) {
	m := newLinearGCN(t, 3)
	loaded, err := model.Parse(m.onnx, m.manifestJSON(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := loaded.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	withValue := func(i int, v float64) []float64 {
		in := m.input(0)
		in[i] = v
		return in
	}
	tests := []struct {
		name  string
		input []float64
		want  string
	}{
		{"short", m.input(0)[:10], "input has 10 values, want 180 ([60 3])"},
		{"long", append(m.input(0), 1), "input has 181 values, want 180"},
		{"NaN", withValue(40, math.NaN()), "input[40] (feature requests, step 2 of 12, service svc-1) is NaN"},
		{"Inf", withValue(0, math.Inf(-1)), "input[0] (feature cpu, step 1 of 12, service svc-0) is -Inf"},
		{"beyond float32", withValue(179, 1e39), "input[179] (feature replicas, step 12 of 12, service svc-2) is 1e+39"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Predict(tt.input)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Predict: got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := s.Predict(m.input(0)); err != nil {
		t.Fatalf("Predict after refused inputs: %v", err)
	}
}

func TestLoadAndLoadFS(t *testing.T) {
	m := newLinearGCN(t, 3)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, model.ONNXFile), m.onnx, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, model.ManifestFile), m.manifestJSON(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := model.Load(dir); err != nil {
		t.Fatalf("Load: %v", err)
	}
	fsys := fstest.MapFS{
		model.ONNXFile:     {Data: m.onnx},
		model.ManifestFile: {Data: m.manifestJSON(t)},
	}
	if _, err := model.LoadFS(fsys); err != nil {
		t.Fatalf("LoadFS: %v", err)
	}

	empty := t.TempDir()
	if _, err := model.Load(empty); err == nil || !strings.Contains(err.Error(), "model "+empty+": read model.onnx") {
		t.Errorf("Load of an empty dir: %v", err)
	}
	delete(fsys, model.ManifestFile)
	if _, err := model.LoadFS(fsys); err == nil || !strings.Contains(err.Error(), "read manifest.json") {
		t.Errorf("LoadFS without a manifest: %v", err)
	}
}

func TestComputeGoldenMatchesTheReference(t *testing.T) {
	m := newLinearGCN(t, 5)
	man := m.manifest
	man.Golden.Outputs = nil
	got, err := model.ComputeGolden(m.onnx, &man)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(t, got, m.forward(man.Golden.Input)); d > model.GoldenTolerance {
		t.Fatalf("ComputeGolden differs from the reference by %g", d)
	}
	if _, err := model.ComputeGolden(m.onnx[:100], &man); err == nil {
		t.Fatal("ComputeGolden accepted a truncated file")
	}
}

// Sessions of one model are independent: each goroutine gets its own.
func TestSessionsRunConcurrently(t *testing.T) {
	m := newLinearGCN(t, 4)
	loaded, err := model.Parse(m.onnx, m.manifestJSON(t))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			s, err := loaded.NewSession()
			if err != nil {
				errs <- err
				return
			}
			for i := range 20 {
				in := m.input(g + i)
				got, err := s.Predict(in)
				if err != nil {
					errs <- err
					return
				}
				d, err := outputDiff(got, m.forward(in))
				if err == nil && d > model.GoldenTolerance {
					err = fmt.Errorf("session %d run %d differs from the reference by %g", g, i, d)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
