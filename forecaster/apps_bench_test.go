package forecaster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foresightscale/foresight/forecaster"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/internal/meshtest"
	"github.com/foresightscale/foresight/models/gnn"
	"github.com/foresightscale/foresight/models/training"
)

// Shape of one benchmarked application: a layered call graph of appServices
// services (not Online Boutique), its own GNN and its own synthetic source.
const (
	appServices = 50
	appDepth    = 3
	// appHistory is what each application's model is trained on (one epoch):
	// enough windows for training.Run, no more. Inference costs the same
	// whatever the weights, so a barely trained model times serving fairly.
	appHistory = 3 * time.Hour
	// appCapacityPerPod is the synthetic default profile's capacity (req/s).
	appCapacityPerPod = 50
)

var appsBenchStart = time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)

// benchApp is one application's parts that outlive a benchmark: its call
// graph, its workload generator and its checked model.
type benchApp struct {
	graph topology.Graph
	gen   *synthetic.Generator
	model *model.Model
}

// benchApps caches the trained applications across benchmarks and the b.N
// ramp-up: training is setup, never timed.
var benchApps struct {
	mu   sync.Mutex
	apps []*benchApp
}

// appsForBench returns n applications, training those not built yet.
func appsForBench(b *testing.B, n int) []*benchApp {
	b.Helper()
	benchApps.mu.Lock()
	defer benchApps.mu.Unlock()
	for i := len(benchApps.apps); i < n; i++ {
		a, err := newBenchApp(b.Context(), i)
		if err != nil {
			b.Fatalf("application %d: %v", i, err)
		}
		benchApps.apps = append(benchApps.apps, a)
	}
	return benchApps.apps[:n]
}

// newBenchApp trains application i's model on its own graph's synthetic
// history, exports it to ONNX and loads it back through the model checks,
// exactly the file serve would load.
func newBenchApp(ctx context.Context, i int) (*benchApp, error) {
	graph := meshtest.Layered(appServices, appDepth, int64(i+1))
	cfg := synthetic.DefaultConfig()
	cfg.Services = nil // the default profiles name Online Boutique's services
	gen, err := synthetic.New(cfg, graph)
	if err != nil {
		return nil, fmt.Errorf("synthetic workload: %w", err)
	}
	opts := gnn.DefaultOptions(graph)
	opts.Name = fmt.Sprintf("layered-app-%d", i)
	opts.Epochs, opts.Patience = 1, 1
	m, _, err := training.Run(ctx, training.Config{
		Source: source.NewSynthetic(gen), SourceName: "synthetic", Namespace: "default",
		Start: appsBenchStart.Add(-appHistory), End: appsBenchStart, Options: opts,
		TestFraction: training.DefaultTestFraction, ValidationFraction: training.DefaultValidationFraction,
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("training: %w", err)
	}
	onnxBytes, manifest, err := m.Export()
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		return nil, fmt.Errorf("encoding manifest: %w", err)
	}
	loaded, err := model.Parse(onnxBytes, manifestJSON)
	if err != nil {
		return nil, fmt.Errorf("loading the export: %w", err)
	}
	return &benchApp{graph: graph, gen: gen, model: loaded}, nil
}

// loop builds the application's forecast loop as serve does: its own
// session, store, namespace and (wrapped) registerer.
func (a *benchApp) loop(b *testing.B, namespace string) *forecaster.Forecaster {
	b.Helper()
	session, err := a.model.NewSession()
	if err != nil {
		b.Fatal(err)
	}
	pol := policy.Default()
	pol.CapacityPerPod = appCapacityPerPod
	fc, err := forecaster.New(forecaster.Options{
		Source: source.NewSynthetic(a.gen), Manifest: a.model.Manifest(), Predictor: session, Policy: pol,
		Store: &snapshot.Store{}, Namespace: namespace,
		Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"app": namespace}, prometheus.NewRegistry()),
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	return fc
}

// BenchmarkCycleApps1x50 is the single-application baseline of
// BenchmarkCycleApps5x50: one 50-service application's cycle.
func BenchmarkCycleApps1x50(b *testing.B) { benchmarkCycleApps(b, 1) }

// BenchmarkCycleApps5x50 measures serve with five applications of 50
// services each: every round runs one cycle of each application's loop
// concurrently, one goroutine per application as serve runs them, and
// ns/op is one whole round. On a machine with fewer cores than applications
// the round is bounded by the total work, not by the slowest application.
func BenchmarkCycleApps5x50(b *testing.B) { benchmarkCycleApps(b, 5) }

// benchmarkCycleApps times rounds of one concurrent cycle per application
// and also reports the slowest application's cycle per round and the mean
// cycle. Every cycle must publish a fresh model forecast for every service,
// or the figure would time a shortcut (a held or fallback service).
func benchmarkCycleApps(b *testing.B, n int) {
	apps := appsForBench(b, n)
	loops := make([]*forecaster.Forecaster, n)
	for i, a := range apps {
		loops[i] = a.loop(b, fmt.Sprintf("app-%d", i))
	}
	step := time.Duration(apps[0].model.Manifest().Step)
	took := make([]time.Duration, n)
	errs := make([]error, n)
	var slowest, total time.Duration
	b.ReportAllocs()
	for round := 0; b.Loop(); round++ {
		now := appsBenchStart.Add(time.Duration(round) * step)
		var wg sync.WaitGroup
		for i, fc := range loops {
			wg.Go(func() {
				start := time.Now()
				snap, err := fc.Cycle(b.Context(), now)
				took[i] = time.Since(start)
				errs[i] = checkAppSnapshot(snap, err, apps[i].model.Manifest())
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				b.Fatalf("round %d, app %d: %v", round, i, err)
			}
		}
		slowest += slices.Max(took)
		for _, d := range took {
			total += d
		}
	}
	b.ReportMetric(slowest.Seconds()*1e3/float64(b.N), "slowest-app-ms/cycle")
	b.ReportMetric(total.Seconds()*1e3/float64(b.N*n), "mean-app-ms/cycle")
}

// checkAppSnapshot requires a fresh forecast of the model for every one of
// its services.
func checkAppSnapshot(snap *snapshot.Snapshot, err error, m *model.Manifest) error {
	if err != nil {
		return err
	}
	if len(snap.Predictions) != len(m.Services) || len(snap.Unpublished) > 0 {
		return fmt.Errorf("%d predictions and %d unpublished services, want %d predictions", len(snap.Predictions), len(snap.Unpublished), len(m.Services))
	}
	for _, p := range snap.Predictions {
		// A loop leaves Model empty on its model's predictions and names
		// the fallback on the others.
		if p.HeldReason != "" || p.Model != "" {
			return fmt.Errorf("service %s: held %q, forecast by %q; want a fresh forecast of %s", p.Service, p.HeldReason, p.Model, m.Name)
		}
	}
	return nil
}
