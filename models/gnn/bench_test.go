package gnn

import (
	"fmt"
	"testing"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/internal/meshtest"
)

// BenchmarkExportedPredict measures one forecast of the exported
// default-sized network (all five features, T=12, H=10, hidden 16) through
// the real runtime, for the 10 Online Boutique services and a 50-service
// layered graph, without and with a seasonal context (period 40 steps: the
// size of the input, not the period, sets the cost). Target: ≤ 1 ms at 50
// services. The weights come from a short training run: speed does not
// depend on their values.
func BenchmarkExportedPredict(b *testing.B) {
	graphs := []struct {
		name string
		g    topology.Graph
	}{{"services=10", topology.OnlineBoutique()}, {"services=50", meshtest.Layered(50, 3, 50)}}
	for _, g := range graphs {
		for _, period := range []int{0, 40} {
			b.Run(fmt.Sprintf("%s/period=%d", g.name, period), func(b *testing.B) {
				o := DefaultOptions(g.g)
				o.Epochs, o.Patience, o.Period = 1, 1, period
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
				x := m.Input(ds, val[0])
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := s.Predict(x); err != nil {
						b.Fatal(err)
					}
				}
			})
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
