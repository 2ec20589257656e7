package forecaster_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foresightscale/foresight/forecaster"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/models"
)

// loadDemoModel loads the shipped demo model through the real runtime.
func loadDemoModel(tb testing.TB) *model.Model {
	tb.Helper()
	m, err := model.LoadFS(models.Demo())
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// newDemoForecaster runs the demo model on src with one capacity per pod for
// every service and its own session, store and registry.
func newDemoForecaster(tb testing.TB, m *model.Model, src source.Source, capacityPerPod float64) *forecaster.Forecaster {
	tb.Helper()
	session, err := m.NewSession()
	if err != nil {
		tb.Fatal(err)
	}
	pol := policy.Default()
	pol.CapacityPerPod = capacityPerPod
	fc, err := forecaster.New(forecaster.Options{
		Source: src, Manifest: m.Manifest(), Predictor: session, Policy: pol,
		Store: &snapshot.Store{}, Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return fc
}
