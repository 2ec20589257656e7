// Package adapter publishes the forecaster's latest snapshot to Kubernetes and
// Prometheus: the external metrics API (for HPA/KEDA), a /metrics collector and
// the HTTPS/HTTP serving around them. It only ever reads a snapshot.Reader, so a
// request never waits on a backend or on the model.
package adapter

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/foresightscale/foresight/forecaster/snapshot"
)

// The metric names Foresight publishes, in the external metrics API and on /metrics.
const (
	MetricPredictedReplicas = "foresight_predicted_replicas"
	MetricPredictedRequests = "foresight_predicted_requests"
	MetricPredictedCPUCores = "foresight_predicted_cpu_cores"
)

// formatHorizon renders a horizon compactly in seconds ("120s" rather than
// "2m0s") so label values stay short and sort the same way as the durations.
func formatHorizon(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// checkRate reports a forecast value no publisher may serve. Zero is a valid
// forecast (an idle service); NaN, ±Inf and negatives never are.
func checkRate(name string, v float64) error {
	switch {
	case math.IsNaN(v):
		return fmt.Errorf("%s is NaN", name)
	case math.IsInf(v, 0):
		return fmt.Errorf("%s is %v", name, v)
	case v < 0:
		return fmt.Errorf("%s is negative (%v)", name, v)
	case v > maxMilliValue:
		// The external metrics API carries values as milli-quantities in an int64.
		return fmt.Errorf("%s %v is too large to publish", name, v)
	}
	return nil
}

// maxMilliValue is the largest value that still fits an int64 milli-quantity.
const maxMilliValue = MaxValue

// MaxValue is the largest value any publisher may serve: the HPA carries
// metric values as milli-quantities in an int64.
const MaxValue = float64(math.MaxInt64/1000) - 1

// PublishableValue is metric's value for p, or the reason it must not be
// published (NaN, ±Inf, negative, too large, fewer than 1 replica): the one
// rule every publisher (external and custom metrics, KEDA) applies.
func PublishableValue(metric string, p snapshot.Prediction) (float64, error) {
	switch metric {
	case MetricPredictedReplicas:
		if err := checkReplicas(p.PredictedReplicas); err != nil {
			return 0, err
		}
		return float64(p.PredictedReplicas), nil
	case MetricPredictedRequests:
		return p.PredictedRequests, checkRate("predicted requests", p.PredictedRequests)
	case MetricPredictedCPUCores:
		return p.PredictedCPUCores, checkRate("predicted CPU cores", p.PredictedCPUCores)
	}
	return 0, fmt.Errorf("unknown metric %q", metric)
}

// checkReplicas rejects replica counts below one: the policy never produces
// them, and serving 0 would let the HPA scale a running service away.
func checkReplicas(n int64) error {
	if n < 1 {
		return fmt.Errorf("predicted replicas %d is below 1", n)
	}
	return nil
}

// serviceKey identifies one service across namespaces.
type serviceKey struct{ namespace, service string }

// onePerService keeps, for each namespace/service, only the newest prediction.
// An HPA sums every item its selector matches, so two items for one service
// would double its replica count; the forecaster never publishes duplicates,
// but the publishers defend against it. Order of first appearance is kept.
func onePerService(preds []snapshot.Prediction, log *slog.Logger) []snapshot.Prediction {
	index := make(map[serviceKey]int, len(preds))
	out := make([]snapshot.Prediction, 0, len(preds))
	for _, p := range preds {
		k := serviceKey{p.Namespace, p.Service}
		i, seen := index[k]
		if !seen {
			index[k] = len(out)
			out = append(out, p)
			continue
		}
		log.Warn("snapshot holds more than one prediction for a service; serving the newest",
			"namespace", p.Namespace, "service", p.Service)
		if p.ComputedAt.After(out[i].ComputedAt) {
			out[i] = p
		}
	}
	return out
}
