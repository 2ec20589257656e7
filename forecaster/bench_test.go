package forecaster_test

import (
	"context"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/synthetic"
)

// BenchmarkCycle measures one whole forecast cycle of the demo: synthetic
// fetch of the window, alignment and normalisation, inference of the shipped
// model, policy and snapshot publication.
func BenchmarkCycle(b *testing.B) {
	m := loadDemoModel(b)
	gen, err := synthetic.New(synthetic.DefaultConfig(), m.Manifest().Graph())
	if err != nil {
		b.Fatal(err)
	}
	fc := newDemoForecaster(b, m, source.NewSynthetic(gen), 50)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := fc.Cycle(context.Background(), now.Add(time.Duration(i)*30*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
}
