// Package policy turns a load forecast into a replica count.
package policy

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/prometheus/common/model"

	"github.com/foresightscale/foresight/forecaster/queueing"
)

// Config is the scaling policy, YAML-configurable under "policy".
type Config struct {
	// Headroom is the fraction of extra capacity kept above the forecast peak.
	Headroom float64 `yaml:"headroom,omitempty" json:"headroom,omitempty"`
	// LeadTime is how far ahead capacity must be ready: the time a new pod
	// takes to start serving plus the HPA's reaction time. Replicas are sized
	// for the peak forecast within it.
	LeadTime model.Duration `yaml:"leadTime,omitempty" json:"leadTime,omitempty"`
	// MinReplicas and MaxReplicas bound every prediction.
	MinReplicas int64 `yaml:"minReplicas,omitempty" json:"minReplicas,omitempty"`
	MaxReplicas int64 `yaml:"maxReplicas,omitempty" json:"maxReplicas,omitempty"`
	// MaxScaleDownPercent limits how far one cycle may lower a prediction
	// (at least one replica per cycle), so a dip in the forecast cannot drop
	// capacity all at once.
	MaxScaleDownPercent float64 `yaml:"maxScaleDownPercent,omitempty" json:"maxScaleDownPercent,omitempty"`
	// Quantile is the forecast quantile replicas are sized from: 0.9 sizes
	// for the model's P90 (an upper bound is what autoscaling needs), 0.5
	// for the point forecast. A model without that output falls back to its
	// point forecast, with a warning at start-up.
	Quantile float64 `yaml:"quantile,omitempty" json:"quantile,omitempty"`
	// CapacityPerPod is the request rate (req/s) one pod serves within its
	// SLO, used for services that do not set their own.
	CapacityPerPod float64 `yaml:"capacityPerPod,omitempty" json:"capacityPerPod,omitempty"`
	// Services overrides the defaults per service.
	Services map[string]ServiceConfig `yaml:"services,omitempty" json:"services,omitempty"`
}

// ServiceConfig overrides the policy for one service. Zero fields inherit.
type ServiceConfig struct {
	CapacityPerPod float64 `yaml:"capacityPerPod,omitempty" json:"capacityPerPod,omitempty"`
	MinReplicas    int64   `yaml:"minReplicas,omitempty" json:"minReplicas,omitempty"`
	MaxReplicas    int64   `yaml:"maxReplicas,omitempty" json:"maxReplicas,omitempty"`
	// PodRate and LatencyP99 together size the service with a queueing
	// model instead of CapacityPerPod: PodRate is the requests/s one pod
	// serves when fully busy (its CPU request over the CPU-seconds a request
	// costs), LatencyP99 the service's own p99 latency budget. Replicas are
	// then the fewest that keep an M/M/c queue's p99 within the budget at
	// the forecast peak times (1 + headroom). A fixed capacity per pod is
	// one utilisation for every size; the queueing model lets a large
	// deployment run hotter than a small one at the same latency, which is
	// where the savings at scale are.
	PodRate    float64        `yaml:"podRate,omitempty" json:"podRate,omitempty"`
	LatencyP99 model.Duration `yaml:"latencyP99,omitempty" json:"latencyP99,omitempty"`
}

// queueingQuantile is the latency quantile LatencyP99 bounds.
const queueingQuantile = 0.99

// Default returns the policy defaults.
func Default() Config {
	return Config{
		Headroom:            0.2,
		LeadTime:            model.Duration(2 * time.Minute),
		MinReplicas:         1,
		MaxReplicas:         100,
		MaxScaleDownPercent: 25,
		Quantile:            0.9,
	}
}

// Validate checks the configuration for the given services; errors name the field.
func (c Config) Validate(services []string) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Headroom < 0 || c.Headroom > 10 || math.IsNaN(c.Headroom) {
		bad("policy.headroom: must be between 0 and 10, got %v", c.Headroom)
	}
	if !(c.Quantile > 0 && c.Quantile < 1) {
		bad("policy.quantile: must be in (0,1), got %v", c.Quantile)
	}
	if c.LeadTime <= 0 {
		bad("policy.leadTime: must be positive, got %v", c.LeadTime)
	}
	if c.MinReplicas < 1 {
		bad("policy.minReplicas: must be at least 1, got %d (publishing 0 would let the HPA scale a service away)", c.MinReplicas)
	}
	if c.MaxReplicas < c.MinReplicas {
		bad("policy.maxReplicas: %d is below minReplicas %d", c.MaxReplicas, c.MinReplicas)
	}
	if c.MaxScaleDownPercent <= 0 || c.MaxScaleDownPercent > 100 {
		bad("policy.maxScaleDownPercent: must be in (0,100], got %v", c.MaxScaleDownPercent)
	}
	if c.CapacityPerPod < 0 || math.IsNaN(c.CapacityPerPod) || math.IsInf(c.CapacityPerPod, 0) {
		bad("policy.capacityPerPod: must be a positive request rate, got %v", c.CapacityPerPod)
	}
	known := make(map[string]bool, len(services))
	for _, s := range services {
		known[s] = true
		if c.capacity(s) <= 0 && !c.queueing(s) {
			bad("policy.services.%s.capacityPerPod: not set and no policy.capacityPerPod default (req/s one pod serves), nor podRate and latencyP99", s)
		}
	}
	names := make([]string, 0, len(c.Services))
	for name := range c.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sc := c.Services[name]
		if !known[name] {
			bad("policy.services.%s: not a service of the model (services: %v)", name, services)
		}
		if sc.CapacityPerPod < 0 || math.IsNaN(sc.CapacityPerPod) || math.IsInf(sc.CapacityPerPod, 0) {
			bad("policy.services.%s.capacityPerPod: must be positive, got %v", name, sc.CapacityPerPod)
		}
		if sc.PodRate < 0 || math.IsNaN(sc.PodRate) || math.IsInf(sc.PodRate, 0) {
			bad("policy.services.%s.podRate: must be a positive request rate, got %v", name, sc.PodRate)
		}
		if sc.LatencyP99 < 0 {
			bad("policy.services.%s.latencyP99: must be positive, got %v", name, sc.LatencyP99)
		}
		if (sc.PodRate > 0) != (sc.LatencyP99 > 0) {
			bad("policy.services.%s: podRate and latencyP99 go together (queueing sizing needs both)", name)
		} else if sc.PodRate > 0 {
			// An idle pod's own p99 is ln(100)/podRate: a budget below it
			// cannot be met by any number of pods.
			if floor := -math.Log(1-queueingQuantile) / sc.PodRate; time.Duration(sc.LatencyP99).Seconds() <= floor {
				bad("policy.services.%s.latencyP99: %v is below what one request takes at the 99th percentile even on an idle pod (%v at podRate %v)",
					name, sc.LatencyP99, time.Duration(floor*float64(time.Second)).Round(time.Millisecond), sc.PodRate)
			}
		}
		if sc.MinReplicas < 0 {
			bad("policy.services.%s.minReplicas: must not be negative, got %d", name, sc.MinReplicas)
		}
		lo, hi := c.bounds(name)
		if hi < lo {
			bad("policy.services.%s: maxReplicas %d is below minReplicas %d", name, hi, lo)
		}
	}
	return errors.Join(errs...)
}

func (c Config) capacity(service string) float64 {
	if sc, ok := c.Services[service]; ok && sc.CapacityPerPod > 0 {
		return sc.CapacityPerPod
	}
	return c.CapacityPerPod
}

// queueing reports whether the service is sized by the queueing model.
func (c Config) queueing(service string) bool {
	sc, ok := c.Services[service]
	return ok && sc.PodRate > 0 && sc.LatencyP99 > 0
}

// MinReplicasFor is the service's own minimum, or the default.
func (c Config) MinReplicasFor(service string) int64 {
	lo, _ := c.bounds(service)
	return lo
}

func (c Config) bounds(service string) (lo, hi int64) {
	lo, hi = c.MinReplicas, c.MaxReplicas
	if sc, ok := c.Services[service]; ok {
		if sc.MinReplicas > 0 {
			lo = sc.MinReplicas
		}
		if sc.MaxReplicas > 0 {
			hi = sc.MaxReplicas
		}
	}
	return lo, hi
}

// LeadSteps is how many forecast steps the lead time covers (at least one,
// at most the model's horizon).
func (c Config) LeadSteps(step time.Duration, horizon int) int {
	n := int(math.Ceil(float64(c.LeadTime) / float64(step)))
	return max(1, min(n, horizon))
}

// Decision is the outcome for one service, with the reasoning kept for logs.
type Decision struct {
	Replicas     int64
	PeakRequests float64 // forecast peak over the lead time, req/s
	Raw          int64   // before clamping and the scale-down limit
	Limited      string  // "", "min", "max" or "scale_down_step"
}

// ErrBadForecast reports a forecast that must not be turned into replicas.
var ErrBadForecast = errors.New("bad forecast")

// Decide sizes a service for the peak of forecast (req/s per step, step 1
// first) within the lead time. previous is the replicas last published for
// the service (0 if none), for the scale-down limit.
func (c Config) Decide(service string, forecast []float64, step time.Duration, previous int64) (Decision, error) {
	if len(forecast) == 0 {
		return Decision{}, fmt.Errorf("%w: %s: empty forecast", ErrBadForecast, service)
	}
	capacity := c.capacity(service)
	if capacity <= 0 && !c.queueing(service) {
		return Decision{}, fmt.Errorf("%s: no capacity per pod configured", service)
	}
	peak, err := Peak(forecast[:c.LeadSteps(step, len(forecast))])
	if err != nil {
		return Decision{}, fmt.Errorf("%w: %s: %v", ErrBadForecast, service, err)
	}
	lo, hi := c.bounds(service)
	load := peak * (1 + c.Headroom)
	var raw int64
	if c.queueing(service) {
		sc := c.Services[service]
		n, ok := queueing.ServersFor(load, sc.PodRate, queueingQuantile, time.Duration(sc.LatencyP99).Seconds(), int(min(hi, math.MaxInt32)))
		raw = int64(n)
		if !ok {
			raw = hi + 1 // not even maxReplicas meets the budget: the clamp below says so
		}
	} else {
		raw = int64(math.Ceil(load / capacity))
	}
	d := Decision{PeakRequests: peak, Raw: raw, Replicas: raw}
	if previous > 0 && d.Replicas < previous {
		step := max(1, int64(math.Floor(float64(previous)*c.MaxScaleDownPercent/100)))
		if floor := previous - step; d.Replicas < floor {
			d.Replicas, d.Limited = floor, "scale_down_step"
		}
	}
	switch {
	case d.Replicas < lo:
		d.Replicas, d.Limited = lo, "min"
	case d.Replicas > hi:
		d.Replicas, d.Limited = hi, "max"
	}
	return d, nil
}

// Peak returns the largest value, treating a negative forecast (a linear
// model can undershoot near zero load) as zero load. NaN or Inf is an error:
// no number at all is better than a wrong one.
func Peak(values []float64) (float64, error) {
	peak := 0.0
	for i, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("value %v at step %d", v, i+1)
		}
		peak = math.Max(peak, v)
	}
	return peak, nil
}
