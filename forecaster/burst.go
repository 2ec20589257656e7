package forecaster

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/source"
)

// burstEstimator turns each cycle's requests_peak and requests samples into
// per-service burst factors (policy.BurstConfig) and publishes them.
type burstEstimator struct {
	factor *prometheus.GaugeVec
	// silent is true while no service has a usable requests_peak: said once.
	silent bool
}

// newBurstEstimator registers the burst series; nil when policy.burst is off.
func newBurstEstimator(cfg policy.BurstConfig, reg prometheus.Registerer) (*burstEstimator, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	b := &burstEstimator{factor: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "foresight_burst_factor",
		Help: "The burst factor the policy multiplies the service's forecast peak by: a recent quantile of its short-window peak rate over its step's mean (policy.burst); 1 without requests_peak data."},
		[]string{"service"})}
	if err := reg.Register(b.factor); err != nil {
		return nil, fmt.Errorf("registering burst metrics: %w", err)
	}
	return b, nil
}

// estimate returns the burst factors of the services with enough data, sets
// the gauge of every service this loop owns that has a request rate, and
// logs once when no service has a requests_peak series and once when one
// comes back.
func (b *burstEstimator) estimate(data source.Data, end time.Time, cfg policy.BurstConfig, owns func(string) bool, log *slog.Logger) map[string]float64 {
	factors := BurstFactors(data, end, cfg)
	for svc := range data[source.Requests] {
		if !owns(svc) {
			continue
		}
		f, ok := factors[svc]
		if !ok {
			f = 1
		}
		b.factor.WithLabelValues(svc).Set(f)
	}
	switch {
	case len(factors) == 0 && len(data[source.Requests]) > 0 && !b.silent:
		b.silent = true
		log.Warn("policy.burst: no requests_peak samples paired with request rates; sizing for each step's mean rate until they arrive (check the requests_peak query or recording rule, or set policy.burst.enabled: false)")
	case len(factors) > 0 && b.silent:
		b.silent = false
		log.Info("policy.burst: requests_peak samples available again", "services", len(factors))
	}
	return factors
}

// BurstFactors computes, per service, the cfg.Quantile of peak / mean over
// its last cfg.Steps steps up to end that have both a requests_peak and a
// positive requests sample (same timestamp; both series in time order, as
// source.Data holds them), each ratio bounded to [1,
// policy.MaxBurst]. Non-finite samples are skipped. A service with fewer
// than policy.MinBurstSamples ratios has no entry.
func BurstFactors(data source.Data, end time.Time, cfg policy.BurstConfig) map[string]float64 {
	peaks := data[source.RequestsPeak]
	out := make(map[string]float64, len(peaks))
	ratios := make([]float64, 0, cfg.Steps)
	for svc, ps := range peaks {
		means := data[source.Requests][svc]
		ratios = ratios[:0]
		// Both series are in time order: walk them back from end together.
		j := len(means) - 1
		for i := len(ps) - 1; i >= 0 && len(ratios) < cfg.Steps; i-- {
			p := ps[i]
			if p.Time.After(end) {
				continue
			}
			for j >= 0 && means[j].Time.After(p.Time) {
				j--
			}
			if j < 0 {
				break
			}
			if !means[j].Time.Equal(p.Time) {
				continue
			}
			m := means[j].Value
			r := p.Value / m
			if !(m > 0) || math.IsNaN(r) || math.IsInf(r, 0) || math.IsInf(m, 0) {
				continue
			}
			ratios = append(ratios, min(max(r, 1), policy.MaxBurst))
		}
		if len(ratios) < policy.MinBurstSamples {
			continue
		}
		slices.Sort(ratios)
		// The smallest ratio with at least a Quantile share at or below it.
		k := int(math.Ceil(cfg.Quantile*float64(len(ratios)))) - 1
		out[svc] = ratios[min(max(k, 0), len(ratios)-1)]
	}
	return out
}
