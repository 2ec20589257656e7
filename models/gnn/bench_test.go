package gnn

import (
	"testing"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/topology"
)

// BenchmarkExportedPredict measures one forecast of the exported default-sized
// network (10 services, all five features, T=12, H=10, hidden 16) through the
// real runtime. Target: ≤ 1 ms. The weights come from a short training run:
// speed does not depend on their values.
func BenchmarkExportedPredict(b *testing.B) {
	o := DefaultOptions(topology.OnlineBoutique())
	o.Epochs, o.Patience = 1, 1
	ds, tr, val := syntheticDataset(b, o, 2)
	m, err := Train(b.Context(), ds, tr, val, o, nil)
	if err != nil {
		b.Fatal(err)
	}
	onnxBytes, man, err := m.Export()
	if err != nil {
		b.Fatal(err)
	}
	loaded, err := model.Parse(onnxBytes, manifestJSON(b, man))
	if err != nil {
		b.Fatal(err)
	}
	s, err := loaded.NewSession()
	if err != nil {
		b.Fatal(err)
	}
	x := ds.Input(val[0], o.Window)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Predict(x); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForward is the plain-Go reference on the same network.
func BenchmarkForward(b *testing.B) {
	o := DefaultOptions(topology.OnlineBoutique())
	o.Epochs, o.Patience = 1, 1
	ds, tr, val := syntheticDataset(b, o, 2)
	m, err := Train(b.Context(), ds, tr, val, o, nil)
	if err != nil {
		b.Fatal(err)
	}
	x := ds.Input(val[0], o.Window)
	b.ReportAllocs()
	for b.Loop() {
		m.Forward(x)
	}
}
