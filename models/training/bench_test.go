package training_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/internal/meshtest"
	"github.com/foresightscale/foresight/models/gnn"
	"github.com/foresightscale/foresight/models/training"
)

// Shape of the training benchmark: a fixed history and a fixed number of
// epochs, so the figures of two runs (or two machines) compare.
const (
	benchHistory = 24 * time.Hour
	benchStep    = time.Minute
	benchEpochs  = 3
	benchDepth   = 3 // layers of the synthetic call graph
)

var benchStart = time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)

// BenchmarkTrain measures `foresight train` on an application that is not
// Online Boutique: a layered call graph of n services (roots fanning into
// chains three deep) with the synthetic workload's default profile for every
// service, one day of history at one-minute steps, exactly benchEpochs epochs
// (Patience ≥ Epochs, so early stopping cannot end a run sooner). The
// services are not given: training learns them from the history, as it does
// for any application's CSV or Prometheus. Generating the history is setup and
// not timed; the timed part is training.Run from reading the history to the
// evaluation on the held-out part. Run it with -benchtime 1x: one run of 200
// services takes about half a minute on two cores, and one run is the figure.
func BenchmarkTrain(b *testing.B) {
	for _, n := range []int{10, 50, 200} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			cfg := benchConfig(b, n)
			var last *training.Report
			// b.Loop times only the loop: generating the history is not timed.
			for b.Loop() {
				_, report, err := training.Run(b.Context(), cfg, nil)
				if err != nil {
					b.Fatal(err)
				}
				if got := len(report.Data.Services); got != n {
					b.Fatalf("trained on %d services, want %d", got, n)
				}
				if report.Epochs != benchEpochs {
					b.Fatalf("trained %d epochs (stopped: %s), want exactly %d", report.Epochs, report.Stopped, benchEpochs)
				}
				last = report
			}
			perRun := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(perRun, "s/run")
			b.ReportMetric(last.Seconds/float64(last.Epochs), "s/epoch")
			b.ReportMetric(float64(last.Windows.Train), "train-windows")
		})
	}
}

// benchConfig generates the history of an n-service layered application
// once and returns a training configuration that replays it.
func benchConfig(b *testing.B, n int) training.Config {
	b.Helper()
	graph := meshtest.Layered(n, benchDepth, int64(n))
	gcfg := synthetic.DefaultConfig()
	gcfg.Services = nil // the default profiles name Online Boutique's services
	gen, err := synthetic.New(gcfg, graph)
	if err != nil {
		b.Fatal(err)
	}
	opts := gnn.DefaultOptions(graph)
	opts.Name = fmt.Sprintf("layered-%d", n)
	opts.Graph.Services = nil // learnt from the history, as for any application
	opts.Step = benchStep
	opts.Epochs, opts.Patience = benchEpochs, benchEpochs
	end := benchStart.Add(benchHistory)
	data, err := source.NewSynthetic(gen).Fetch(b.Context(), source.Query{
		Namespace: "bench", AllServices: true, Features: opts.Features,
		Start: benchStart, End: end, Step: opts.Step,
	})
	if err != nil {
		b.Fatal(err)
	}
	return training.Config{
		Source: replay{data}, SourceName: "synthetic replay", Namespace: "bench",
		Start: benchStart, End: end, Options: opts,
		TestFraction: training.DefaultTestFraction, ValidationFraction: training.DefaultValidationFraction,
	}
}

// replay answers every fetch with one recorded history, so the benchmark
// times training rather than the synthetic generator (which stands in for
// Prometheus or a CSV file here). Each answer has its own maps: training
// drops series too sparse to use from what it is given. The sample slices
// are shared; nothing writes to them.
type replay struct{ data source.Data }

func (replay) Name() string { return "replay" }

func (r replay) Fetch(context.Context, source.Query) (source.Data, error) {
	out := make(source.Data, len(r.data))
	for f, byService := range r.data {
		out[f] = maps.Clone(byService)
	}
	return out, nil
}
