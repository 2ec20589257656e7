package forecaster

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foresightscale/foresight/forecaster/feedback"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/source"
)

// sloFeedback is the loop's outer controller: it reads the SLO service's
// p99 each new step and sets the headroom the cycle's policy sizes with.
type sloFeedback struct {
	slo        policy.SLOConfig
	controller *feedback.Controller
	// last is the time of the p99 sample last taken: a sample is counted
	// once, however many cycles see it (an interval shorter than the step).
	last time.Time
	// silent is true while the SLO service has had no usable p99: said once.
	silent  bool
	latency *prometheus.GaugeVec
	gauge   prometheus.Gauge
	actions *prometheus.CounterVec
}

// newSLOFeedback starts the controller at the policy's headroom and
// registers its series; nil when the policy has no SLO.
func newSLOFeedback(pol policy.Config, reg prometheus.Registerer) (*sloFeedback, error) {
	if pol.SLO == nil {
		return nil, nil
	}
	lo, hi := pol.SLO.Bounds(pol.Headroom)
	cfg := feedback.Config{Min: lo, Max: hi}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("policy.slo: %w", err)
	}
	s := &sloFeedback{
		slo:        *pol.SLO,
		controller: feedback.New(cfg, pol.Headroom),
		latency: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "foresight_slo_latency_p99_seconds",
			Help: "The SLO service's p99 response time the SLO feedback last read (seconds); absent until it has read one."}, []string{"service"}),
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "foresight_slo_headroom",
			Help: "The headroom the policy sizes with now, as the SLO feedback tuned it from policy.headroom."}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "foresight_slo_feedback_total",
			Help: "SLO feedback updates by action: widened (p99 above the SLO), tightened (p99 with slack), held, at_bound, no_signal (no p99 sample for the step)."}, []string{"action"}),
	}
	for _, c := range []prometheus.Collector{s.latency, s.gauge, s.actions} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering SLO feedback metrics: %w", err)
		}
	}
	for _, a := range []feedback.Action{feedback.Widened, feedback.Tightened, feedback.Held, feedback.AtBound, feedback.NoSignal} {
		s.actions.WithLabelValues(string(a))
	}
	s.gauge.Set(s.controller.Headroom())
	return s, nil
}

// observe takes the newest p99 sample of the SLO service in data, if it is
// newer than the last one taken and not older than maxAge before end.
func (s *sloFeedback) observe(data source.Data, end time.Time, maxAge time.Duration, log *slog.Logger) {
	samples := data[source.LatencyP99][s.slo.Service]
	var newest *source.Sample
	for j := len(samples) - 1; j >= 0; j-- {
		if !samples[j].Time.After(end) {
			newest = &samples[j]
			break
		}
	}
	if newest != nil && !newest.Time.After(s.last) {
		return // counted already
	}
	if newest == nil || end.Sub(newest.Time) > maxAge {
		s.actions.WithLabelValues(string(feedback.NoSignal)).Inc()
		if !s.silent {
			s.silent = true
			log.Warn("SLO feedback: no recent p99 for the SLO service; the headroom holds until one arrives (check the latency_p99 query and policy.slo.service)",
				"service", s.slo.Service, "headroom", s.controller.Headroom())
		}
		return
	}
	if s.silent {
		s.silent = false
		log.Info("SLO feedback: p99 of the SLO service available again", "service", s.slo.Service)
	}
	s.last = newest.Time
	before := s.controller.Headroom()
	action := s.controller.Update(newest.Value, time.Duration(s.slo.LatencyP99).Seconds())
	s.actions.WithLabelValues(string(action)).Inc()
	if action != feedback.NoSignal {
		s.latency.WithLabelValues(s.slo.Service).Set(newest.Value)
	}
	s.gauge.Set(s.controller.Headroom())
	if action == feedback.Widened {
		log.Info("SLO feedback: p99 above the SLO; headroom raised", "service", s.slo.Service,
			"p99", newest.Value, "slo", time.Duration(s.slo.LatencyP99).Seconds(), "headroom", s.controller.Headroom(), "was", before)
	}
}

// policy is pol with the tuned headroom.
func (s *sloFeedback) policy(pol policy.Config) policy.Config {
	if s != nil {
		pol.Headroom = s.controller.Headroom()
	}
	return pol
}
