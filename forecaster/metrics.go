package forecaster

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foresightscale/foresight/forecaster/conformal"
	"github.com/foresightscale/foresight/forecaster/model"
)

// metrics are the forecaster loop's own health signals.
type metrics struct {
	cycleDuration     prometheus.Histogram
	inferenceDuration prometheus.Histogram
	cycles            *prometheus.CounterVec
	sourceErrors      *prometheus.CounterVec
	held              *prometheus.CounterVec
	imputed           *windowGaps
	inputOutOfRange   *prometheus.CounterVec
	lastSuccess       prometheus.Gauge
	modelInfo         *prometheus.GaugeVec
	modelReloads      *prometheus.CounterVec
	modelLoaded       prometheus.Gauge
	coverage          *prometheus.GaugeVec
	seasonal          *prometheus.GaugeVec
	upperBoundErrors  *prometheus.GaugeVec
	// Forecast accuracy, kept by accuracy.go.
	forecastAbsError    *prometheus.GaugeVec
	forecastEvaluations *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		cycleDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "foresight_cycle_duration_seconds",
			Help:    "Time one forecast cycle took: fetch, window, inference, policy.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		inferenceDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "foresight_inference_duration_seconds",
			Help:    "Time the model took for one forecast.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}),
		cycles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "foresight_cycles_total",
			Help: "Forecast cycles by result: ok (every service fresh), degraded (some held), failed (none fresh).",
		}, []string{"result"}),
		sourceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "foresight_source_errors_total",
			Help: "Failed metric fetches by source and kind (unreachable, timeout, bad_response, bad_data).",
		}, []string{"source", "kind"}),
		held: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "foresight_held_predictions_total",
			Help: "Cycles in which a service's prediction could not be computed and the last good one was held (or, once stale, dropped), by reason.",
		}, []string{"service", "reason"}),
		imputed: newWindowGaps(),
		inputOutOfRange: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "foresight_input_out_of_range_total",
			Help: "Input samples beyond a million training standard deviations (a broken exporter or query), clipped before the model so they cannot overflow it; by service and feature.",
		}, []string{"service", "feature"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "foresight_last_success_timestamp_seconds",
			Help: "Unix time of the last cycle that produced at least one fresh prediction.",
		}),
		modelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "foresight_model_info",
			Help: "The model being served (value is always 1); name=\"" + NoModelName + "\" with services=\"0\" while no trained model is, and the fallback forecasts every service.",
		}, []string{"name", "version", "services", "window", "horizon", "step"}),
		modelReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "foresight_model_reloads_total",
			Help: "Models found changed on disk (or re-read on SIGHUP) by result: loaded (now serving) or rejected (failed to load or check; the previous model keeps serving).",
		}, []string{"result"}),
		modelLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "foresight_model_loaded_timestamp_seconds",
			Help: "Unix time the model being served was taken: at start, or by the last successful reload.",
		}),
		coverage: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "foresight_service_coverage",
			Help: "1 per service for how it is forecast: coverage=model (the model knows it and the data has it), fallback (in the data, not in the model: the model-free fallback forecasts it until a retrained model does), absent (in the model, not in the data).",
		}, []string{"service", "coverage"}),
		seasonal: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "foresight_seasonal_context",
			Help: "Models with a seasonal context only, per service: 1 when the last forecast read the values of one period earlier, 0 when it ran without them (the lagged query failed, or the history does not reach one period back).",
		}, []string{"service"}),
		upperBoundErrors: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "foresight_upper_bound_errors",
			Help: "With policy.adaptiveUpper, per service and sizing feature: how many recent errors of the model's point forecast the upper bound replicas are sized from rests on (the fewest over the horizon steps); 0 while the model's own upper quantile is used (fewer than " + itoa(conformal.DefaultMinResiduals) + " errors at some step, after a start or for a new service).",
		}, []string{"service", "feature"}),
		forecastAbsError: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "foresight_forecast_absolute_error",
			Help: "Mean absolute error of the request-rate point forecast made step model steps before the observation (requests per second), over the last " + itoa(AccuracyWindow) + " forecasts scored, by service and step.",
		}, []string{"service", "step"}),
		forecastEvaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "foresight_forecast_evaluations_total",
			Help: "Request-rate forecasts scored against the rate later observed, by service and step ahead.",
		}, []string{"service", "step"}),
	}
	for _, c := range []prometheus.Collector{m.cycleDuration, m.inferenceDuration, m.cycles, m.sourceErrors, m.held, m.imputed, m.inputOutOfRange, m.lastSuccess, m.modelInfo,
		m.modelReloads, m.modelLoaded,
		m.coverage, m.seasonal, m.upperBoundErrors, m.forecastAbsError, m.forecastEvaluations} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range []string{resultOK, resultDegraded, resultFailed} {
		m.cycles.WithLabelValues(r)
	}
	for _, r := range []string{reloadLoaded, reloadRejected} {
		m.modelReloads.WithLabelValues(r)
	}
	return m, nil
}

// Results of foresight_model_reloads_total.
const (
	reloadLoaded   = "loaded"
	reloadRejected = "rejected"
)

// setModel makes foresight_model_info show only man, taken at t.
func (m *metrics) setModel(man *model.Manifest, t time.Time) {
	m.modelInfo.Reset()
	m.modelInfo.WithLabelValues(man.Name, man.Version, itoa(len(man.Services)), itoa(man.Window), itoa(man.Horizon), time.Duration(man.Step).String()).Set(1)
	m.modelLoaded.Set(float64(t.UnixNano()) / 1e9)
}

func itoa(i int) string { return strconv.Itoa(i) }

// windowGaps is foresight_window_imputed_samples, made at scrape time from
// the counts the cycles left: held in a GaugeVec, its ten series per
// service (five features, two methods) were 3.5 MiB of a 500-service
// serve's heap. A service keeps its last counts until Reset, as a
// GaugeVec's series would.
type windowGaps struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	gaps map[gapKey]gapCounts
}

const windowGapsHelp = "Samples of the last input window that were missing and filled, by service, feature and method: carried (from a sample within the 5m lookback, as Prometheus itself does) or imputed (no recent sample; counts towards holding the forecast)."

type gapKey struct{ service, feature string }

type gapCounts struct{ carried, imputed int }

func newWindowGaps() *windowGaps {
	return &windowGaps{
		desc: prometheus.NewDesc("foresight_window_imputed_samples", windowGapsHelp, []string{"service", "feature", "method"}, nil),
		gaps: map[gapKey]gapCounts{},
	}
}

// Set records a service's gaps in one feature of the last window.
func (g *windowGaps) Set(service, feature string, carried, imputed int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gaps[gapKey{service, feature}] = gapCounts{carried, imputed}
}

// Reset forgets every service's counts (a new model).
func (g *windowGaps) Reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.gaps)
}

func (g *windowGaps) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *windowGaps) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, c := range g.gaps {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(c.carried), k.service, k.feature, "carried")
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(c.imputed), k.service, k.feature, "imputed")
	}
}
