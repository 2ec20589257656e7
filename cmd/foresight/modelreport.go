package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foresightscale/foresight/models/training"
)

// modelReportMetrics show what the serving model's report.json (written by
// `foresight train` next to the model, and into every store version) says
// of it: when it was trained, how it did on the history it never saw, and
// against the model it replaced. A model without a report (the built-in
// one, or files copied without it) has none of these series: they are
// vectors, so a figure the report lacks is simply not set.
type modelReportMetrics struct {
	trained, toChampion *prometheus.GaugeVec // no labels of their own
	ratio               *prometheus.GaugeVec // by step
	log                 *slog.Logger
	// figures are the same numbers for the status page.
	figures atomic.Pointer[modelFigures]
}

// modelFigures are what the serving model's report says: when it was
// trained (zero: unknown) and its held-out MAE over last value's by step.
type modelFigures struct {
	trained time.Time
	ratio   []float64
}

// current returns the serving model's figures (zero without a report).
func (m *modelReportMetrics) current() modelFigures {
	if f := m.figures.Load(); f != nil {
		return *f
	}
	return modelFigures{}
}

func newModelReportMetrics(reg prometheus.Registerer, log *slog.Logger) *modelReportMetrics {
	m := &modelReportMetrics{
		log: log,
		trained: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "foresight_model_trained_timestamp_seconds",
			Help: "When the serving model finished training (Unix seconds, from its report.json).",
		}, nil),
		ratio: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "foresight_model_heldout_mae_ratio",
			Help: "The serving model's MAE over last value's on the held-out history it never saw, by step ahead (below 1: better than last value).",
		}, []string{"step"}),
		toChampion: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "foresight_model_heldout_to_champion_ratio",
			Help: "The serving model's mean held-out MAE over the model it replaced when it was promoted.",
		}, nil),
	}
	for _, c := range []prometheus.Collector{m.trained, m.ratio, m.toChampion} {
		if err := reg.Register(c); err != nil {
			log.Warn("cannot show the model's training figures", "err", err)
		}
	}
	return m
}

// update reads dir's report.json and sets the series from it, or clears
// them when there is no readable report.
func (m *modelReportMetrics) update(dir string) {
	m.trained.Reset()
	m.ratio.Reset()
	m.toChampion.Reset()
	figures := &modelFigures{}
	defer m.figures.Store(figures)
	if dir == "" {
		return
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var r training.Report
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	if err != nil {
		m.log.Warn("the model's report.json is unreadable; its training figures are not shown", "dir", dir, "err", err)
		return
	}
	if !r.Trained.IsZero() {
		m.trained.WithLabelValues().Set(float64(r.Trained.Unix()))
		figures.trained = r.Trained
	}
	if t := r.Test; t != nil && len(t.MAEByHorizon) == len(t.LastValueMAEByHorizon) {
		figures.ratio = make([]float64, len(t.MAEByHorizon))
		for h := range t.MAEByHorizon {
			figures.ratio[h] = math.NaN()
			if t.LastValueMAEByHorizon[h] > 0 {
				figures.ratio[h] = t.MAEByHorizon[h] / t.LastValueMAEByHorizon[h]
				m.ratio.WithLabelValues(strconv.Itoa(h + 1)).Set(figures.ratio[h])
			}
		}
	}
	if d := r.Decision; d != nil && d.ToChampion != nil {
		m.toChampion.WithLabelValues().Set(*d.ToChampion)
	}
}
