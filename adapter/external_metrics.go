package adapter

import (
	"context"
	"log/slog"
	"math"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/metrics/pkg/apis/external_metrics"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/foresightscale/foresight/forecaster/snapshot"
)

// Labels carried by every external metric item; an HPA selects its service
// with `metric.selector.matchLabels: {service: <name>}`.
const (
	LabelService = "service"
	LabelHorizon = "horizon"
	LabelModel   = "model"
)

// externalMetric turns one prediction into the value of one metric, or an
// error saying why that value must not be served.
type externalMetric func(p snapshot.Prediction) (resource.Quantity, error)

var externalMetrics = map[string]externalMetric{
	MetricPredictedReplicas: func(p snapshot.Prediction) (resource.Quantity, error) {
		v, err := PublishableValue(MetricPredictedReplicas, p)
		return *resource.NewQuantity(int64(v), resource.DecimalSI), err
	},
	MetricPredictedRequests: func(p snapshot.Prediction) (resource.Quantity, error) {
		return milliQuantity(MetricPredictedRequests, p)
	},
	MetricPredictedCPUCores: func(p snapshot.Prediction) (resource.Quantity, error) {
		return milliQuantity(MetricPredictedCPUCores, p)
	},
}

// externalMetricNames lists the metrics in a stable order for discovery.
var externalMetricNames = []string{MetricPredictedReplicas, MetricPredictedRequests, MetricPredictedCPUCores}

// milliQuantity keeps three decimals: the HPA reads external values with
// MilliValue, so finer precision would be dropped anyway.
func milliQuantity(metric string, p snapshot.Prediction) (resource.Quantity, error) {
	v, err := PublishableValue(metric, p)
	if err != nil {
		return resource.Quantity{}, err
	}
	return *resource.NewMilliQuantity(int64(math.Round(v*1000)), resource.DecimalSI), nil
}

// ExternalMetricsProvider serves the latest snapshot through the Kubernetes
// external metrics API (external.metrics.k8s.io).
type ExternalMetricsProvider struct {
	reader snapshot.Reader
	now    func() time.Time
	log    *slog.Logger
}

var _ provider.ExternalMetricsProvider = (*ExternalMetricsProvider)(nil)

// NewExternalMetricsProvider serves what reader holds at the time of each
// request; now decides freshness (time.Now in production). A nil log means
// slog.Default().
func NewExternalMetricsProvider(reader snapshot.Reader, now func() time.Time, log *slog.Logger) *ExternalMetricsProvider {
	if log == nil {
		log = slog.Default()
	}
	return &ExternalMetricsProvider{reader: reader, now: now, log: log}
}

// GetExternalMetric returns one item per fresh service prediction in
// namespace whose labels match selector.
//
// With no fresh prediction (before the first cycle, or once every prediction
// has expired) the list is empty rather than an error. The HPA controller
// treats an empty list as a failure to get the metric ("no metrics returned
// from external metrics API"): it sets ScalingActive=False and keeps the
// current replica count, which is the safe behaviour. An error would have the
// same effect but would claim the request itself was bad.
func (p *ExternalMetricsProvider) GetExternalMetric(_ context.Context, namespace string, selector labels.Selector, info provider.ExternalMetricInfo) (*external_metrics.ExternalMetricValueList, error) {
	value, ok := externalMetrics[info.Metric]
	if !ok {
		return nil, provider.NewMetricNotFoundError(external_metrics.Resource(info.Metric), info.Metric)
	}
	if selector == nil {
		selector = labels.Everything()
	}
	snap := p.reader.Latest()
	fresh := snap.Fresh(p.now(), namespace)

	// Match first, so the usual one-service selector does the least work.
	matched := make([]snapshot.Prediction, 0, 1)
	candidate := &itemLabels{} // reused: boxing a value per service would allocate
	for _, pred := range fresh {
		if pred.Service == "" {
			p.log.Warn("skipping a prediction without a service name", "metric", info.Metric, "namespace", pred.Namespace)
			continue
		}
		candidate.service, candidate.horizon, candidate.model = pred.Service, pred.Horizon, snap.ModelOf(pred)
		if selector.Matches(candidate) {
			matched = append(matched, pred)
		}
	}

	matched = onePerService(matched, p.log)
	items := make([]external_metrics.ExternalMetricValue, 0, len(matched))
	for _, pred := range matched {
		q, err := value(pred)
		if err != nil {
			// Serving nothing makes the HPA hold; serving a bad number would move it.
			p.log.Error("not serving an invalid prediction", "metric", info.Metric,
				"namespace", pred.Namespace, "service", pred.Service, "err", err)
			continue
		}
		items = append(items, external_metrics.ExternalMetricValue{
			MetricName:   info.Metric,
			MetricLabels: itemLabels{service: pred.Service, horizon: pred.Horizon, model: snap.ModelOf(pred)}.set(),
			Timestamp:    metav1.NewTime(pred.ComputedAt),
			Value:        q,
		})
	}
	return &external_metrics.ExternalMetricValueList{Items: items}, nil
}

// itemLabels are the labels of one item. Matching the selector against this
// struct instead of a map saves building a map for every service a selector
// rules out (the common case: one HPA asks for one service).
type itemLabels struct {
	service string
	horizon time.Duration // formatted only when a selector asks for it
	model   string
}

var _ labels.Labels = itemLabels{}

// Lookup implements labels.Labels. The model label is absent, not empty, when
// the snapshot names no model.
func (l itemLabels) Lookup(name string) (string, bool) {
	switch name {
	case LabelService:
		return l.service, true
	case LabelHorizon:
		return formatHorizon(l.horizon), true
	case LabelModel:
		return l.model, l.model != ""
	}
	return "", false
}

// Get implements labels.Labels.
func (l itemLabels) Get(name string) string {
	v, _ := l.Lookup(name)
	return v
}

// Has implements labels.Labels.
func (l itemLabels) Has(name string) bool {
	_, ok := l.Lookup(name)
	return ok
}

func (l itemLabels) set() map[string]string {
	m := map[string]string{LabelService: l.service, LabelHorizon: formatHorizon(l.horizon)}
	if l.model != "" {
		m[LabelModel] = l.model
	}
	return m
}

// ListAllExternalMetrics lists the metrics Foresight serves; discovery on
// /apis/external.metrics.k8s.io/v1beta1 shows them.
func (p *ExternalMetricsProvider) ListAllExternalMetrics() []provider.ExternalMetricInfo {
	out := make([]provider.ExternalMetricInfo, len(externalMetricNames))
	for i, name := range externalMetricNames {
		out[i] = provider.ExternalMetricInfo{Metric: name}
	}
	return out
}
