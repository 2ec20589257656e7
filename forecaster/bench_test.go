package forecaster_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foresightscale/foresight/forecaster"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/models"
)

// BenchmarkCycle measures one whole forecast cycle of the demo: synthetic
// fetch of the window, alignment and normalisation, inference of the shipped
// model, policy and snapshot publication.
func BenchmarkCycle(b *testing.B) {
	m, err := model.LoadFS(models.Demo())
	if err != nil {
		b.Fatal(err)
	}
	manifest := m.Manifest()
	gen, err := synthetic.New(synthetic.DefaultConfig(), manifest.Graph())
	if err != nil {
		b.Fatal(err)
	}
	session, err := m.NewSession()
	if err != nil {
		b.Fatal(err)
	}
	pol := policy.Default()
	pol.CapacityPerPod = 50
	fc, err := forecaster.New(forecaster.Options{
		Source: source.NewSynthetic(gen), Manifest: manifest, Predictor: session, Policy: pol,
		Store: &snapshot.Store{}, Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := fc.Cycle(context.Background(), now.Add(time.Duration(i)*30*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
}
