package model_test

import (
	"fmt"
	"testing"

	"github.com/foresightscale/foresight/forecaster/model"
)

// BenchmarkPredict runs the shipped model shape (5 features, 12-step window,
// 10-step horizon, outputs requests and cpu) on one reused session.
func BenchmarkPredict(b *testing.B) {
	for _, n := range []int{10, 50, 200} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			m := newLinearGCN(b, n)
			loaded, err := model.Parse(m.onnx, m.manifestJSON(b))
			if err != nil {
				b.Fatal(err)
			}
			s, err := loaded.NewSession()
			if err != nil {
				b.Fatal(err)
			}
			in := m.input(1)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Predict(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoad is Parse end to end: manifest, graph checks, onnx-go decode
// and the golden run.
func BenchmarkLoad(b *testing.B) {
	m := newLinearGCN(b, 50)
	manifestJSON := m.manifestJSON(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := model.Parse(m.onnx, manifestJSON); err != nil {
			b.Fatal(err)
		}
	}
}
