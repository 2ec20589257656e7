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
		[]string{"namespace", "service", "horizon"}, nil)
	predictedRequestsDesc = prometheus.NewDesc(MetricPredictedRequests,
		"Peak forecast request rate over the horizon (requests per second).",
		[]string{"namespace", "service", "horizon"}, nil)
	predictedCPUCoresDesc = prometheus.NewDesc(MetricPredictedCPUCores,
		"Peak forecast CPU usage over the horizon (cores).",
		[]string{"namespace", "service", "horizon"}, nil)
	forecastRequestsDesc = prometheus.NewDesc("foresight_forecast_requests",
		"Forecast request rate at each model step ahead (requests per second); step 1 is the nearest.",
		[]string{"namespace", "service", "step"}, nil)
	observedRequestsDesc = prometheus.NewDesc("foresight_observed_requests",
		"Latest request rate the forecast started from (requests per second).",
		[]string{"namespace", "service"}, nil)
	observedCPUCoresDesc = prometheus.NewDesc("foresight_observed_cpu_cores",
		"Latest CPU usage the forecast started from (cores).",
		[]string{"namespace", "service"}, nil)
	observedReplicasDesc = prometheus.NewDesc("foresight_observed_replicas",
		"Latest replica count the forecast started from.",
		[]string{"namespace", "service"}, nil)
	predictionAgeDesc = prometheus.NewDesc("foresight_prediction_age_seconds",
		"Seconds since the served prediction was computed.",
		[]string{"namespace", "service"}, nil)
	predictionHeldDesc = prometheus.NewDesc("foresight_prediction_held",
		"1 when the last good prediction is being held instead of a new one (reason says why), else 0.",
		[]string{"namespace", "service", "reason"}, nil)
)

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
		predictionAgeDesc, predictionHeldDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Invalid values (NaN, ±Inf,
// negative, replicas below 1) are left out and logged, never exported.
func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, p := range onePerService(c.reader.Latest().Fresh(now, ""), c.log) {
		if p.Service == "" {
			c.log.Warn("skipping a prediction without a service name", "namespace", p.Namespace)
			continue
		}
		horizon := formatHorizon(p.Horizon)
		gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
		}
		skip := func(err error) {
			c.log.Error("not exporting an invalid prediction", "namespace", p.Namespace, "service", p.Service, "err", err)
		}

		if err := checkReplicas(p.PredictedReplicas); err != nil {
			skip(err)
		} else {
			gauge(predictedReplicasDesc, float64(p.PredictedReplicas), p.Namespace, p.Service, horizon)
		}
		if err := checkRate("predicted requests", p.PredictedRequests); err != nil {
			skip(err)
		} else {
			gauge(predictedRequestsDesc, p.PredictedRequests, p.Namespace, p.Service, horizon)
		}
		if err := checkRate("predicted CPU cores", p.PredictedCPUCores); err != nil {
			skip(err)
		} else {
			gauge(predictedCPUCoresDesc, p.PredictedCPUCores, p.Namespace, p.Service, horizon)
		}
		for i, v := range p.RequestsByStep {
			step := strconv.Itoa(i + 1)
			if err := checkRate("forecast requests at step "+step, v); err != nil {
				skip(err)
				continue
			}
			gauge(forecastRequestsDesc, v, p.Namespace, p.Service, step)
		}

		// NaN means the model does not read that series: nothing to export.
		for _, o := range []struct {
			desc *prometheus.Desc
			v    float64
		}{{observedRequestsDesc, p.ObservedRequests}, {observedCPUCoresDesc, p.ObservedCPUCores}, {observedReplicasDesc, p.ObservedReplicas}} {
			if !math.IsNaN(o.v) && !math.IsInf(o.v, 0) && o.v >= 0 {
				gauge(o.desc, o.v, p.Namespace, p.Service)
			}
		}

		// A computation time in the future (clock skew) reads as age 0, not negative.
		gauge(predictionAgeDesc, max(now.Sub(p.ComputedAt).Seconds(), 0), p.Namespace, p.Service)
		held := 0.0
		if p.HeldReason != "" {
			held = 1
		}
		gauge(predictionHeldDesc, held, p.Namespace, p.Service, p.HeldReason)
	}
}
