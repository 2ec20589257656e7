package forecaster_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/window"
	"github.com/foresightscale/foresight/internal/promtest"
	"github.com/foresightscale/foresight/internal/testenv"
)

// TestCycleFromRealPrometheusMatchesCSVReplay backfills real Online Boutique
// history into a real Prometheus server under the shipped recording-rule
// names, runs forecast cycles with the Prometheus source and the shipped
// PromQL templates, and requires the same input tensors and the same
// predictions as the same cycles run from the CSV replay of that history.
func TestCycleFromRealPrometheusMatchesCSVReplay(t *testing.T) {
	path := testenv.SharedData(t, "boutique/boutique.csv")
	csvSource, err := source.NewCSV(path, source.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := loadDemoModel(t)
	manifest := m.Manifest()
	step := time.Duration(manifest.Step)
	fileStart, _ := csvSource.Span()
	from, to := fileStart.Add(5*time.Hour), fileStart.Add(11*time.Hour)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	history, err := csvSource.Fetch(ctx, source.Query{Services: manifest.Services, Features: manifest.Features, Start: from, End: to, Step: step})
	if err != nil {
		t.Fatal(err)
	}
	srv := promtest.Start(t, promtest.Options{Backfill: promtest.WriteOpenMetricsFile(t, "default", history)})
	promCfg := source.DefaultPrometheusConfig()
	promCfg.URL = srv.URL()
	promSource, err := source.NewPrometheus(promCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer promSource.Close()

	// Evaluation times every 17 minutes over the backfilled range, well past
	// its start so the window has history on both sides.
	var ends []time.Time
	for end := from.Add(30 * time.Minute); end.Before(to); end = end.Add(17 * time.Minute) {
		ends = append(ends, end)
	}
	spec := window.SpecFor(manifest)
	var carried, imputed int
	for _, end := range ends {
		q := spec.Query("default", end)
		fromProm, err := promSource.Fetch(ctx, q)
		if err != nil {
			t.Fatalf("prometheus fetch for %v: %v", end, err)
		}
		fromCSV, err := csvSource.Fetch(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		wp, err := window.Build(spec, fromProm, end)
		if err != nil {
			t.Fatal(err)
		}
		wc, err := window.Build(spec, fromCSV, end)
		if err != nil {
			t.Fatal(err)
		}
		for i := range wc.Input {
			if wp.Input[i] != wc.Input[i] {
				f, rest := i/(spec.Length*len(spec.Services)), i%(spec.Length*len(spec.Services))
				t.Fatalf("window ending %v: input[%d] (feature %s, step %d, service %s) = %v from Prometheus, %v from CSV",
					end, i, spec.Features[f], rest/len(spec.Services), spec.Services[rest%len(spec.Services)], wp.Input[i], wc.Input[i])
			}
		}
		for f := range wc.Carried {
			for n := range wc.Carried[f] {
				carried += wc.Carried[f][n]
				imputed += wc.Imputed[f][n]
			}
		}
	}
	t.Logf("%d windows: identical input tensors (CSV gaps: %d samples carried as Prometheus's lookback does, %d imputed)", len(ends), carried, imputed)

	// Whole cycles: the same snapshot from both sources.
	run := func(src source.Source) []*snapshot.Snapshot {
		fc := newDemoForecaster(t, m, src, 20)
		var out []*snapshot.Snapshot
		for _, end := range ends {
			snap, err := fc.Cycle(ctx, end)
			if err != nil {
				t.Fatalf("%s cycle at %v: %v", src.Name(), end, err)
			}
			out = append(out, snap)
		}
		return out
	}
	prom, csv := run(promSource), run(csvSource)
	for i := range ends {
		if len(prom[i].Predictions) != len(manifest.Services) || len(csv[i].Predictions) != len(manifest.Services) {
			t.Fatalf("cycle %d: %d and %d predictions, want %d", i, len(prom[i].Predictions), len(csv[i].Predictions), len(manifest.Services))
		}
		for j, p := range prom[i].Predictions {
			c := csv[i].Predictions[j]
			if p.Service != c.Service || p.PredictedReplicas != c.PredictedReplicas ||
				math.Abs(p.PredictedRequests-c.PredictedRequests) > 1e-9 || math.Abs(p.PredictedCPUCores-c.PredictedCPUCores) > 1e-9 {
				t.Errorf("cycle %d: prometheus %+v, csv %+v", i, p, c)
			}
		}
	}
	p := prom[len(prom)-1].Predictions[5]
	t.Logf("last cycle, %s: %d replicas for a peak of %.1f req/s", p.Service, p.PredictedReplicas, p.PredictedRequests)
}
