package model

import (
	"fmt"
	"math"
)

// Session runs a model. It reuses one onnx-go graph and gorgonia machine
// across calls, which makes Predict cheap and also makes a Session unsafe for
// concurrent use: give each goroutine its own (Model.NewSession).
type Session struct {
	manifest *Manifest
	engine   *engine
	in       []float32
}

// Predict runs the model on one input: the row-major [features×window,
// services] tensor of normalised values the manifest describes. It returns
// every output by name as a row-major [horizon, services] slice (normalised
// units). Non-finite inputs are refused, and an output holding NaN or ±Inf is
// an error, never a result. If onnx-go panics, the session is unusable
// afterwards and every call returns an error.
func (s *Session) Predict(input []float64) (map[string][]float64, error) {
	if len(input) != len(s.in) {
		return nil, fmt.Errorf("predict: input has %d values, want %d (%v)", len(input), len(s.in), s.manifest.Input.Shape)
	}
	for i, v := range input {
		f := float32(v)
		if math.IsNaN(v) || math.IsInf(float64(f), 0) {
			return nil, fmt.Errorf("predict: input[%d] (%s) is %v, not a finite float32", i, s.inputPosition(i), v)
		}
		s.in[i] = f
	}
	outs, err := s.engine.run(s.in)
	if err != nil {
		return nil, fmt.Errorf("predict: %w", err)
	}
	result := make(map[string][]float64, len(outs))
	for k, o := range s.manifest.Outputs {
		vals := make([]float64, len(outs[k]))
		for i, v := range outs[k] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("predict: output %s[%d] (%s) is %v", o.Name, i, s.outputPosition(i), v)
			}
			vals[i] = float64(v)
		}
		result[o.Name] = vals
	}
	return result, nil
}

// inputPosition names the feature, window step and service of input[i].
func (s *Session) inputPosition(i int) string {
	m := s.manifest
	n := len(m.Services)
	row, col := i/n, i%n
	return fmt.Sprintf("feature %s, step %d of %d, service %s", m.Features[row/m.Window], row%m.Window+1, m.Window, m.Services[col])
}

// outputPosition names the horizon step and service of output[i].
func (s *Session) outputPosition(i int) string {
	n := len(s.manifest.Services)
	return fmt.Sprintf("horizon step %d, service %s", i/n+1, s.manifest.Services[i%n])
}
