package adapter

import (
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foresightscale/foresight/forecaster/snapshot"
)

var (
	predictedReplicasDesc = prometheus.NewDesc(MetricPredictedReplicas,
		"Replica count each service needs over the horizon, as served to the HPA.",
		[]string{"app", "namespace", "service", "horizon", "model"}, nil)
	predictedRequestsDesc = prometheus.NewDesc(MetricPredictedRequests,
		"Peak forecast request rate over the horizon (requests per second).",
		[]string{"app", "namespace", "service", "horizon", "model"}, nil)
	predictedCPUCoresDesc = prometheus.NewDesc(MetricPredictedCPUCores,
		"Peak forecast CPU usage over the horizon (cores).",
		[]string{"app", "namespace", "service", "horizon", "model"}, nil)
	forecastRequestsDesc = prometheus.NewDesc("foresight_forecast_requests",
		"Forecast request rate at each model step ahead (requests per second); step 1 is the nearest.",
		[]string{"app", "namespace", "service", "step", "model"}, nil)
	observedRequestsDesc = prometheus.NewDesc("foresight_observed_requests",
		"Latest request rate the forecast started from (requests per second).",
		[]string{"app", "namespace", "service"}, nil)
	observedCPUCoresDesc = prometheus.NewDesc("foresight_observed_cpu_cores",
		"Latest CPU usage the forecast started from (cores).",
		[]string{"app", "namespace", "service"}, nil)
	observedReplicasDesc = prometheus.NewDesc("foresight_observed_replicas",
		"Latest replica count the forecast started from.",
		[]string{"app", "namespace", "service"}, nil)
	predictionAgeDesc = prometheus.NewDesc("foresight_prediction_age_seconds",
		"Seconds since the newest real input sample the served prediction was computed from.",
		[]string{"app", "namespace", "service"}, nil)
	predictionHeldDesc = prometheus.NewDesc("foresight_prediction_held",
		"1 while a service has no fresh prediction (reason says why): its last good one is held, or, after staleAfter, nothing is served; 0 when fresh.",
		[]string{"app", "namespace", "service", "reason"}, nil)
	predictionPublishedDesc = prometheus.NewDesc("foresight_prediction_published",
		"1 while a prediction is served for the service (fresh or held), 0 when nothing is and the HPA keeps its current replicas.",
		[]string{"app", "namespace", "service"}, nil)
)

// reasonExpired marks a prediction that expired between two cycles (the
// loop itself stopped publishing), so it carries no held reason of its own.
const reasonExpired = "expired"

// snapshotCollector reads the latest snapshot at scrape time, so a service
// whose prediction expired disappears from /metrics instead of lingering with
// its last value, as a set-once gauge would.
type snapshotCollector struct {
	reader snapshot.Reader
	now    func() time.Time
	log    *slog.Logger
}

// NewCollector returns a collector of the predictions reader holds that are
// fresh at now() when scraped. Register it on the registry served as /metrics.
func NewCollector(reader snapshot.Reader, now func() time.Time) prometheus.Collector {
	return &snapshotCollector{reader: reader, now: now, log: slog.Default()}
}

// Describe implements prometheus.Collector.
func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{predictedReplicasDesc, predictedRequestsDesc, predictedCPUCoresDesc,
		forecastRequestsDesc, observedRequestsDesc, observedCPUCoresDesc, observedReplicasDesc,
		predictionAgeDesc, predictionHeldDesc, predictionPublishedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Invalid values (NaN, ±Inf,
// negative, replicas below 1) are left out and logged, never exported.
// Services with nothing to serve keep their held and published series.
func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	snap := c.reader.Latest()
	fresh := snap.Fresh(now, "")
	c.collectUnpublished(ch, snap, fresh)
	for _, p := range onePerService(fresh, c.log) {
		if p.Service == "" {
			c.log.Warn("skipping a prediction without a service name", "namespace", p.Namespace)
			continue
		}
		horizon := formatHorizon(p.Horizon)
		// The model that forecast it: "fallback" for a service the
		// application's model does not know yet.
		model := snap.ModelOf(p)
		gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
		}
		skip := func(err error) {
			c.log.Error("not exporting an invalid prediction", "namespace", p.Namespace, "service", p.Service, "err", err)
		}

		published := 0.0
		if err := checkReplicas(p.PredictedReplicas); err != nil {
			skip(err)
		} else {
			published = 1
			gauge(predictedReplicasDesc, float64(p.PredictedReplicas), p.App, p.Namespace, p.Service, horizon, model)
		}
		// NaN is the forecaster's "no number" (a load forecast made from
		// clipped, out-of-range input; it logs that itself): left out
		// quietly. Anything else invalid is a bug worth an error.
		switch err := checkRate("predicted requests", p.PredictedRequests); {
		case math.IsNaN(p.PredictedRequests):
		case err != nil:
			skip(err)
		default:
			gauge(predictedRequestsDesc, p.PredictedRequests, p.App, p.Namespace, p.Service, horizon, model)
		}
		switch err := checkRate("predicted CPU cores", p.PredictedCPUCores); {
		case math.IsNaN(p.PredictedCPUCores):
		case err != nil:
			skip(err)
		default:
			gauge(predictedCPUCoresDesc, p.PredictedCPUCores, p.App, p.Namespace, p.Service, horizon, model)
		}
		for i, v := range p.RequestsByStep {
			step := strconv.Itoa(i + 1)
			if err := checkRate("forecast requests at step "+step, v); err != nil {
				skip(err)
				continue
			}
			gauge(forecastRequestsDesc, v, p.App, p.Namespace, p.Service, step, model)
		}

		// NaN means the model does not read that series: nothing to export.
		for _, o := range []struct {
			desc *prometheus.Desc
			v    float64
		}{{observedRequestsDesc, p.ObservedRequests}, {observedCPUCoresDesc, p.ObservedCPUCores}, {observedReplicasDesc, p.ObservedReplicas}} {
			if !math.IsNaN(o.v) && !math.IsInf(o.v, 0) && o.v >= 0 {
				gauge(o.desc, o.v, p.App, p.Namespace, p.Service)
			}
		}

		// An input time in the future (clock skew) reads as age 0, not negative.
		inputAt := p.InputAt
		if inputAt.IsZero() {
			inputAt = p.ComputedAt
		}
		gauge(predictionAgeDesc, max(now.Sub(inputAt).Seconds(), 0), p.App, p.Namespace, p.Service)
		held := 0.0
		if p.HeldReason != "" {
			held = 1
		}
		gauge(predictionHeldDesc, held, p.App, p.Namespace, p.Service, p.HeldReason)
		gauge(predictionPublishedDesc, published, p.App, p.Namespace, p.Service)
	}
}

// collectUnpublished exports held=1 and published=0 for every service the
// snapshot serves nothing for: those the forecaster listed, and those whose
// prediction expired after the snapshot was made (those not in fresh).
func (c *snapshotCollector) collectUnpublished(ch chan<- prometheus.Metric, snap *snapshot.Snapshot, fresh []snapshot.Prediction) {
	if snap == nil {
		return
	}
	seen := make(map[serviceKey]bool)
	emit := func(app, namespace, service, reason string) {
		k := serviceKey{namespace, service}
		if service == "" || seen[k] {
			return
		}
		seen[k] = true
		ch <- prometheus.MustNewConstMetric(predictionHeldDesc, prometheus.GaugeValue, 1, app, namespace, service, reason)
		ch <- prometheus.MustNewConstMetric(predictionPublishedDesc, prometheus.GaugeValue, 0, app, namespace, service)
	}
	served := make(map[serviceKey]bool, len(fresh))
	for _, p := range fresh {
		served[serviceKey{p.Namespace, p.Service}] = true
	}
	for _, u := range snap.Unpublished {
		if !served[serviceKey{u.Namespace, u.Service}] {
			emit(u.App, u.Namespace, u.Service, u.Reason)
		}
	}
	for _, p := range snap.Predictions {
		if served[serviceKey{p.Namespace, p.Service}] {
			continue
		}
		reason := p.HeldReason
		if reason == "" {
			reason = reasonExpired
		}
		emit(p.App, p.Namespace, p.Service, reason)
	}
}
