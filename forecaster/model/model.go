package model

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
)

// The files of a model directory.
const (
	ONNXFile     = "model.onnx"
	ManifestFile = "manifest.json"
)

// Model is a checked model: its manifest is valid, every node is in the
// verified op set, the graph's input and outputs match the manifest, and the
// runtime reproduced the golden outputs. A Model is immutable and safe for
// concurrent use; run it through a Session.
type Model struct {
	manifest Manifest
	// onnxDeflated is model.onnx compressed: only a new session reads it,
	// and a large graph's adjacency constants are mostly zeros (a
	// 500-service model's 3 MiB were most of serve's model memory).
	onnxDeflated []byte
}

// Load reads dir/model.onnx and dir/manifest.json and checks them (see Parse).
func Load(dir string) (*Model, error) {
	m, err := load(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	return m, nil
}

// LoadFS reads model.onnx and manifest.json from the root of fsys (an
// embedded default model, say) and checks them (see Parse).
func LoadFS(fsys fs.FS) (*Model, error) {
	return load(fsys)
}

func load(fsys fs.FS) (*Model, error) {
	onnxBytes, err := fs.ReadFile(fsys, ONNXFile)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ONNXFile, err)
	}
	manifestJSON, err := fs.ReadFile(fsys, ManifestFile)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ManifestFile, err)
	}
	return Parse(onnxBytes, manifestJSON)
}

// Parse checks a model file and its manifest and returns the model. The
// manifest is decoded strictly (unknown fields are errors) and validated; the
// ONNX graph must use only the verified op set and take and produce exactly
// what the manifest says; and the golden input must reproduce the golden
// outputs within GoldenTolerance. Errors name the file at fault.
func Parse(onnxBytes, manifestJSON []byte) (*Model, error) {
	man, err := DecodeManifest(manifestJSON)
	if err != nil {
		return nil, err
	}
	if err := checkGraph(onnxBytes, man); err != nil {
		return nil, fmt.Errorf("%s: %w", ONNXFile, err)
	}
	deflated, err := deflate(onnxBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ONNXFile, err)
	}
	m := &Model{manifest: *man, onnxDeflated: deflated}
	s, err := m.newSession(onnxBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ONNXFile, err)
	}
	got, err := s.Predict(man.Golden.Input)
	if err != nil {
		return nil, fmt.Errorf("%s: golden input: %w", ONNXFile, err)
	}
	if err := compareGolden(got, man); err != nil {
		return nil, err
	}
	return m, nil
}

// Manifest returns the model's manifest. It is shared: do not modify it.
func (m *Model) Manifest() *Manifest { return &m.manifest }

// NewSession prepares an execution of the model. A session holds one onnx-go
// model and gorgonia machine, which keep state between runs: a Session must
// not be used by two goroutines at once; give each worker its own.
func (m *Model) NewSession() (*Session, error) {
	onnxBytes, err := inflate(m.onnxDeflated)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ONNXFile, err)
	}
	return m.newSession(onnxBytes)
}

func (m *Model) newSession(onnxBytes []byte) (*Session, error) {
	man := &m.manifest
	names := make([]string, len(man.Outputs))
	sizes := make([]int, len(man.Outputs))
	for i, o := range man.Outputs {
		names[i], sizes[i] = o.Name, Shape(o.Shape).Size()
	}
	e, err := newEngine(onnxBytes, man.Input.Name, man.Input.Shape, names, sizes)
	if err != nil {
		return nil, err
	}
	return &Session{manifest: man, engine: e, in: make([]float32, Shape(man.Input.Shape).Size())}, nil
}

// DecodeManifest reads manifest.json strictly, an unknown field or trailing
// data being an error, and validates it. Errors start with "manifest.json:".
func DecodeManifest(manifestJSON []byte) (*Manifest, error) {
	var man Manifest
	dec := json.NewDecoder(bytes.NewReader(manifestJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&man); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return nil, fmt.Errorf("%s: unexpected data after the manifest object", ManifestFile)
	}
	if err := validateManifest(&man); err != nil {
		return nil, err
	}
	return &man, nil
}

// validateManifest runs Manifest.Validate plus the checks that matter when
// the manifest drives a graph, prefixing every error with the file name.
func validateManifest(man *Manifest) error {
	errs := []error{man.Validate()}
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	seen := map[string]bool{man.Input.Name: true}
	for i, o := range man.Outputs {
		if o.Name != "" && seen[o.Name] {
			bad("outputs[%d].name: %q is used twice (by the input or another output)", i, o.Name)
		}
		seen[o.Name] = true
	}
	for feat := range man.Normalization {
		if !slices.Contains(man.Features, feat) {
			bad("normalization.%s: not among the features", key(feat))
		}
	}
	for name := range man.Golden.Outputs {
		if !slices.ContainsFunc(man.Outputs, func(o Output) bool { return o.Name == name }) {
			bad("golden.outputs.%s: no such output", key(name))
		}
	}
	var all []error
	for _, err := range errs {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			all = append(all, joined.Unwrap()...)
		} else if err != nil {
			all = append(all, err)
		}
	}
	for i, err := range all {
		all[i] = fmt.Errorf("%s: %w", ManifestFile, err)
	}
	return errors.Join(all...)
}

// compareGolden reports the first golden value the runtime missed, and how
// many it missed in all.
func compareGolden(got map[string][]float64, man *Manifest) error {
	for _, o := range man.Outputs {
		want, have := man.Golden.Outputs[o.Name], got[o.Name]
		first, misses := -1, 0
		for i := range want {
			if !(math.Abs(have[i]-want[i]) <= GoldenTolerance) {
				if first < 0 {
					first = i
				}
				misses++
			}
		}
		if misses > 0 {
			return fmt.Errorf("golden output %s[%d]: got %v want %v (%d of %d values differ by more than %v)",
				o.Name, first, have[first], want[first], misses, len(want), GoldenTolerance)
		}
	}
	return nil
}

// ComputeGolden runs a model's golden input (man.Golden.Input) and returns
// the outputs to store as man.Golden.Outputs. Everything Parse checks is
// checked except the golden outputs themselves. The outputs come from this
// runtime, so a model exporter should also compare them with its own forward
// pass: that is what catches a mis-exported graph.
func ComputeGolden(onnxBytes []byte, man *Manifest) (map[string][]float64, error) {
	probe := *man
	probe.Golden.Outputs = make(map[string][]float64, len(man.Outputs))
	for _, o := range man.Outputs {
		probe.Golden.Outputs[o.Name] = make([]float64, Shape(o.Shape).Size())
	}
	if err := validateManifest(&probe); err != nil {
		return nil, err
	}
	if err := checkGraph(onnxBytes, &probe); err != nil {
		return nil, fmt.Errorf("%s: %w", ONNXFile, err)
	}
	m := &Model{manifest: probe}
	s, err := m.newSession(onnxBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ONNXFile, err)
	}
	out, err := s.Predict(man.Golden.Input)
	if err != nil {
		return nil, fmt.Errorf("%s: golden input: %w", ONNXFile, err)
	}
	return out, nil
}

// deflate compresses b (fast: it runs once per model load).
func deflate(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		return nil, fmt.Errorf("compressing the model: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return nil, fmt.Errorf("compressing the model: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("compressing the model: %w", err)
	}
	return bytes.Clone(buf.Bytes()), nil
}

// inflate reverses deflate.
func inflate(b []byte) ([]byte, error) {
	out, err := io.ReadAll(flate.NewReader(bytes.NewReader(b)))
	if err != nil {
		return nil, fmt.Errorf("decompressing the model: %w", err)
	}
	return out, nil
}
