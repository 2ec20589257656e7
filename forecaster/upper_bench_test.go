package forecaster

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foresightscale/foresight/forecaster/conformal"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
)

// The shape of the shipped model (window 12, horizon 10, a 30 s step, P50
// and P90 of requests and CPU) at 50 services.
const (
	benchServices = 50
	benchWindow   = 12
	benchHorizon  = 10
)

func benchUpperManifest() *model.Manifest {
	names := make([]string, benchServices)
	stats := model.Stats{Mean: make([]float64, benchServices), Std: make([]float64, benchServices)}
	for n := range names {
		names[n] = fmt.Sprintf("svc-%02d", n)
		stats.Mean[n], stats.Std[n] = 100, 10
	}
	out := func(name string, feat source.Feature, q float64) model.Output {
		return model.Output{Tensor: model.Tensor{Name: name, Shape: []int{benchHorizon, benchServices}}, Feature: feat, Quantile: q}
	}
	return &model.Manifest{
		Format: model.ManifestFormat, Name: "bench", Version: "1",
		Services: names,
		Features: []source.Feature{source.Requests, source.CPU},
		Window:   benchWindow, Horizon: benchHorizon, Step: model.Duration(30 * time.Second),
		Input: model.Tensor{Name: "x", Shape: []int{2 * benchWindow, benchServices}},
		Outputs: []model.Output{
			out("requests", source.Requests, 0.5), out("requests_p90", source.Requests, 0.9),
			out("cpu", source.CPU, 0.5), out("cpu_p90", source.CPU, 0.9),
		},
		Normalization: map[source.Feature]model.Stats{source.Requests: stats, source.CPU: stats},
	}
}

// benchLastValue forecasts the window's last value (P90: one std more), at
// the cost of a copy: the benchmark times the loop, not a model.
type benchLastValue struct{}

func (benchLastValue) Predict(x []float64) (map[string][]float64, error) {
	out := map[string][]float64{}
	for f, name := range []string{"requests", "cpu"} {
		p50, p90 := make([]float64, benchHorizon*benchServices), make([]float64, benchHorizon*benchServices)
		last := x[((f+1)*benchWindow-1)*benchServices:][:benchServices]
		for h := range benchHorizon {
			copy(p50[h*benchServices:], last)
			for n, v := range last {
				p90[h*benchServices+n] = v + 1
			}
		}
		out[name], out[name+"_p90"] = p50, p90
	}
	return out, nil
}

// benchJitter serves every service a load of 100 req/s with a deterministic
// jitter per step, so errors vary as real ones do (sorting equal errors
// would flatter the quantile).
type benchJitter struct{}

func (benchJitter) Name() string { return "jitter" }

func (benchJitter) Fetch(_ context.Context, q source.Query) (source.Data, error) {
	d := source.Data{}
	for t := q.Start; !t.After(q.End); t = t.Add(q.Step) {
		k := t.Unix() / 30
		for n, svc := range q.Services {
			v := 100 + 20*math.Sin(float64(k*int64(n+7)%97))
			d.Add(source.Requests, svc, source.Sample{Time: t, Value: v})
			d.Add(source.CPU, svc, source.Sample{Time: t, Value: v})
		}
	}
	return d, nil
}

// BenchmarkCycleUpper50 is a whole cycle of a 50-service model with and
// without policy.adaptiveUpper, after enough cycles that every service's
// bound rests on a full window of errors (the steady state): the
// difference is what the adaptive bound costs per cycle.
func BenchmarkCycleUpper50(b *testing.B) {
	for _, adaptive := range []bool{false, true} {
		b.Run(fmt.Sprintf("adaptiveUpper=%v", adaptive), func(b *testing.B) {
			pol := policy.Default()
			pol.CapacityPerPod = 10
			pol.AdaptiveUpper = adaptive
			f, err := New(Options{
				Source: benchJitter{}, Manifest: benchUpperManifest(), Predictor: benchLastValue{}, Policy: pol,
				Store: &snapshot.Store{}, Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				b.Fatal(err)
			}
			at := now
			cycle := func() {
				if _, err := f.Cycle(context.Background(), at); err != nil {
					b.Fatal(err)
				}
				at = at.Add(30 * time.Second)
			}
			for range conformal.DefaultWindow + benchHorizon + 1 {
				cycle()
			}
			if adaptive && f.upperRequests.tracker.Errors(benchHorizon-1, 0) != conformal.DefaultWindow {
				b.Fatalf("%d errors after the warm-up, want a full window", f.upperRequests.tracker.Errors(benchHorizon-1, 0))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				cycle()
			}
		})
	}
}
