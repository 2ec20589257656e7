package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
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
	"github.com/foresightscale/foresight/internal/childproc"
	"github.com/foresightscale/foresight/internal/meshtest"
	"github.com/foresightscale/foresight/internal/widecsv"
	"github.com/foresightscale/foresight/models"
)

// layeredHistory is the synthetic default workload on graph (every service
// with the default profile), from start to end at step: the history the
// training and retraining tests give Prometheus or a CSV.
func layeredHistory(t testing.TB, graph topology.Graph, features []source.Feature, start, end time.Time, step time.Duration) source.Data {
	t.Helper()
	sc := synthetic.DefaultConfig()
	sc.Services = nil
	gen, err := synthetic.New(sc, graph)
	if err != nil {
		t.Fatal(err)
	}
	data, err := source.NewSynthetic(gen).Fetch(context.Background(), source.Query{Services: graph.Services,
		Features: features, Start: start, End: end, Step: step})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// layeredHistoryEndingAt is layeredHistory over span ending at end, with the
// load of a fixed day moved there. The synthetic load follows the time of
// day, so a history ending now trained differently depending on when the
// test ran: ending in the small hours, its held-out part was flat, the
// models stayed at last value and the promotion tests failed. The fixed day
// ends at noon, after the morning's ramp.
func layeredHistoryEndingAt(t testing.TB, graph topology.Graph, features []source.Feature, end time.Time, span, step time.Duration) source.Data {
	t.Helper()
	ref := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	data := layeredHistory(t, graph, features, ref.Add(-span), ref, step)
	shift := end.Sub(ref)
	for _, byService := range data {
		for _, samples := range byService {
			for i := range samples {
				samples[i].Time = samples[i].Time.Add(shift)
			}
		}
	}
	return data
}

// trainHistory writes one day at 1-minute steps of a layered n-service
// application (not Online Boutique) as a wide CSV and returns its path.
func trainHistory(b *testing.B, n int) string {
	b.Helper()
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(24 * time.Hour)
	data := layeredHistory(b, meshtest.Layered(n, 3, int64(n)), source.AllFeatures, start, end, time.Minute)
	path := filepath.Join(b.TempDir(), fmt.Sprintf("layered-%d.csv", n))
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := widecsv.Write(f, data, start, end, time.Minute); err != nil {
		b.Fatal(err)
	}
	return path
}

// trainCommand is `foresight train` on history for epochs epochs (no early
// stop), as a retraining Job or child process runs it.
func trainCommand(bin, history string, epochs int) *exec.Cmd {
	cmd := exec.Command(bin, "train", "--data", history, "--epochs", fmt.Sprint(epochs), "--season", "none",
		"--out", filepath.Join(filepath.Dir(history), "model"))
	cmd.Stdout, cmd.Stderr = nil, nil
	return cmd
}

// BenchmarkTrainProcess runs `foresight train` as its own process (the
// release binary) on one day at 1-minute steps of a layered application of
// 10, 50 and 200 services, 3 epochs, and reports the process's peak resident
// memory (the kernel's high-water mark, what a Job's memory limit must
// allow) and its wall time.
func BenchmarkTrainProcess(b *testing.B) {
	bin := releaseBinary(b)
	for _, n := range []int{10, 50, 200} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			history := trainHistory(b, n)
			b.ResetTimer()
			var peak int64
			for b.Loop() {
				cmd := trainCommand(bin, history, 3)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("train: %v\n%s", err, out)
				}
				peak = max(peak, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) // KiB on Linux
			}
			b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
		})
	}
}

// BenchmarkCycleWhileTraining times forecast cycles (the demo model, 10
// services, synthetic source, as serve runs them) while nothing else runs,
// while a `foresight train` process trains a 50-service model at normal
// priority, and while it does as serve's retraining child runs (started
// by internal/childproc: nice 19). One op is one cycle; it reports the
// cycles' p50 and p99.
func BenchmarkCycleWhileTraining(b *testing.B) {
	bin := releaseBinary(b)
	history := trainHistory(b, 50)
	m, err := model.LoadFS(models.Demo())
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"idle", "training", "training-nice19"} {
		b.Run(mode, func(b *testing.B) {
			gen, err := synthetic.New(synthetic.DefaultConfig(), m.Manifest().Graph())
			if err != nil {
				b.Fatal(err)
			}
			session, err := m.NewSession()
			if err != nil {
				b.Fatal(err)
			}
			pol := policy.Default()
			pol.CapacityPerPod = 50
			fc, err := forecaster.New(forecaster.Options{Source: source.NewSynthetic(gen), Manifest: m.Manifest(),
				Predictor: session, Policy: pol, Store: &snapshot.Store{}, Registerer: prometheus.NewRegistry()})
			if err != nil {
				b.Fatal(err)
			}
			switch mode {
			case "training":
				cmd := trainCommand(bin, history, 1000) // outlasts the cycles; killed below
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
				time.Sleep(2 * time.Second) // past reading the history, into the epochs
			case "training-nice19":
				ctx, cancel := context.WithCancel(context.Background())
				cmd := trainCommand(bin, history, 1000)
				child := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
				done := make(chan error, 1)
				go func() { done <- childproc.Run(child, slog.Default()) }()
				defer func() { cancel(); <-done }()
				time.Sleep(2 * time.Second)
			}
			now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
			var took []time.Duration
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				t0 := time.Now()
				if _, err := fc.Cycle(context.Background(), now.Add(time.Duration(i)*30*time.Second)); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(t0))
			}
			slices.Sort(took)
			pct := func(p float64) float64 {
				return float64(took[min(len(took)-1, int(p*float64(len(took))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.5), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}
