package adapter

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/metrics/pkg/apis/custom_metrics"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/foresightscale/foresight/forecaster/snapshot"
)

// workloadKinds are the objects a prediction can describe in the custom
// metrics API: an HPA's Object metric names the workload it scales.
var workloadKinds = map[schema.GroupResource]string{
	{Group: "apps", Resource: "deployments"}:  "Deployment",
	{Group: "apps", Resource: "statefulsets"}: "StatefulSet",
}

// workloadResources lists workloadKinds in a stable order for discovery.
var workloadResources = []schema.GroupResource{
	{Group: "apps", Resource: "deployments"},
	{Group: "apps", Resource: "statefulsets"},
}

// CustomMetricsProvider serves the latest snapshot through the custom
// metrics API (custom.metrics.k8s.io) as metrics of the workload itself, for
// clusters where another adapter (KEDA, prometheus-adapter, Datadog) owns
// external.metrics.k8s.io. An HPA reads it with an Object metric whose
// describedObject is the Deployment.
type CustomMetricsProvider struct {
	reader snapshot.Reader
	now    func() time.Time
	log    *slog.Logger

	// pods, when set, serves Pods metrics (see WithPods).
	pods          PodLister
	serviceLabels []string
}

// PodLister lists the pods of namespace that selector matches (a
// client-go List in production).
type PodLister func(ctx context.Context, namespace string, selector labels.Selector) ([]corev1.Pod, error)

// DefaultPodServiceLabels are the pod labels that name a pod's service, in
// order: Knative's, then the recommended and the conventional app label.
var DefaultPodServiceLabels = []string{"serving.knative.dev/service", "app.kubernetes.io/name", "app"}

// WithPods turns on Pods metrics, for HPAs whose metric type is Pods
// (Knative's HPA-class autoscaler creates those for a custom metric). Each
// running pod of a service reports its share of the service's prediction,
// so the HPA's sum over the pods is the prediction. serviceLabels are the
// pod labels naming the service, first match wins.
func (p *CustomMetricsProvider) WithPods(list PodLister, serviceLabels []string) {
	p.pods, p.serviceLabels = list, serviceLabels
}

var _ provider.CustomMetricsProvider = (*CustomMetricsProvider)(nil)

// NewCustomMetricsProvider serves what reader holds at the time of each
// request; now decides freshness (time.Now in production). A nil log means
// slog.Default().
func NewCustomMetricsProvider(reader snapshot.Reader, now func() time.Time, log *slog.Logger) *CustomMetricsProvider {
	if log == nil {
		log = slog.Default()
	}
	return &CustomMetricsProvider{reader: reader, now: now, log: log}
}

// GetMetricByName returns the metric of one workload. The service is the
// workload's name unless the HPA's metric selector names it
// (`selector.matchLabels.service`), for a workload named differently.
//
// With no fresh, valid prediction it answers NotFound: the HPA controller
// then reports FailedGetObjectMetric and keeps the current replica count,
// the safe behaviour. It never answers a made-up value.
func (p *CustomMetricsProvider) GetMetricByName(_ context.Context, name types.NamespacedName, info provider.CustomMetricInfo, metricSelector labels.Selector) (*custom_metrics.MetricValue, error) {
	kind, ok := workloadKinds[info.GroupResource]
	value, known := externalMetrics[info.Metric]
	if !ok || !known || !info.Namespaced {
		return nil, provider.NewMetricNotFoundError(info.GroupResource, info.Metric)
	}
	service, err := serviceFromSelector(metricSelector, name.Name)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	pred, found := p.prediction(name.Namespace, service)
	if !found {
		p.log.Debug("no fresh prediction for a custom metric request", "metric", info.Metric,
			"namespace", name.Namespace, "workload", name.Name, "service", service)
		return nil, provider.NewMetricNotFoundForError(info.GroupResource, info.Metric, name.Name)
	}
	q, err := value(pred)
	if err != nil {
		// Serving nothing makes the HPA hold; serving a bad number would move it.
		p.log.Error("not serving an invalid prediction", "metric", info.Metric,
			"namespace", pred.Namespace, "service", service, "err", err)
		return nil, provider.NewMetricNotFoundForError(info.GroupResource, info.Metric, name.Name)
	}
	v := metricValue(custom_metrics.ObjectReference{APIVersion: info.GroupResource.Group + "/v1", Kind: kind,
		Namespace: name.Namespace, Name: name.Name}, info.Metric, metricSelector, pred, q)
	return &v, nil
}

// metricValue is one item of the custom metrics API.
func metricValue(obj custom_metrics.ObjectReference, metric string, metricSelector labels.Selector, pred snapshot.Prediction, q resource.Quantity) custom_metrics.MetricValue {
	return custom_metrics.MetricValue{
		DescribedObject: obj,
		Metric:          custom_metrics.MetricIdentifier{Name: metric, Selector: labelSelector(metricSelector)},
		Timestamp:       metav1.NewTime(pred.ComputedAt),
		Value:           q,
	}
}

// GetMetricBySelector answers only the "every object" query (name `*`,
// what `kubectl get --raw .../deployments.apps/*/<metric>` asks), listing
// one object per service with a fresh prediction. A label selector on
// workloads would need their labels from the cluster; HPAs never send one
// for Object metrics, so it is refused with a clear message.
func (p *CustomMetricsProvider) GetMetricBySelector(ctx context.Context, namespace string, selector labels.Selector, info provider.CustomMetricInfo, metricSelector labels.Selector) (*custom_metrics.MetricValueList, error) {
	if info.GroupResource == podsResource {
		return p.podMetrics(ctx, namespace, selector, info, metricSelector)
	}
	kind, ok := workloadKinds[info.GroupResource]
	value, known := externalMetrics[info.Metric]
	if !ok || !known || !info.Namespaced {
		return nil, provider.NewMetricNotFoundError(info.GroupResource, info.Metric)
	}
	if selector != nil && !selector.Empty() {
		return nil, apierrors.NewBadRequest(fmt.Sprintf(
			"Foresight serves %s per named %s; label selectors on workloads are not supported (name the workload, or use `*` for all)",
			info.Metric, kind))
	}
	if metricSelector == nil {
		metricSelector = labels.Everything()
	}
	// One snapshot for the whole answer.
	snap := p.reader.Latest()
	list := &custom_metrics.MetricValueList{}
	candidate := &itemLabels{}
	for _, pred := range onePerService(snap.Fresh(p.now(), namespace), p.log) {
		if pred.Service == "" {
			continue
		}
		candidate.service, candidate.horizon, candidate.model = pred.Service, pred.Horizon, snap.ModelOf(pred)
		if !metricSelector.Matches(candidate) {
			continue
		}
		q, err := value(pred)
		if err != nil {
			p.log.Error("not serving an invalid prediction", "metric", info.Metric,
				"namespace", pred.Namespace, "service", pred.Service, "err", err)
			continue
		}
		list.Items = append(list.Items, metricValue(custom_metrics.ObjectReference{APIVersion: info.GroupResource.Group + "/v1",
			Kind: kind, Namespace: pred.Namespace, Name: pred.Service}, info.Metric, metricSelector, pred, q))
	}
	return list, nil
}

// ListAllMetrics lists every Foresight metric for every workload kind, and
// for pods when Pods metrics are on.
func (p *CustomMetricsProvider) ListAllMetrics() []provider.CustomMetricInfo {
	resources := workloadResources
	if p.pods != nil {
		resources = append(slices.Clone(resources), podsResource)
	}
	out := make([]provider.CustomMetricInfo, 0, len(resources)*len(externalMetricNames))
	for _, gr := range resources {
		for _, name := range externalMetricNames {
			out = append(out, provider.CustomMetricInfo{GroupResource: gr, Namespaced: true, Metric: name})
		}
	}
	return out
}

var podsResource = schema.GroupResource{Resource: "pods"}

// podMetrics answers a Pods metric: each running pod of a service reports
// value/N, N being the service's running pods among those selected, so the
// HPA's desired count, ceil(sum / target), is the service's value / target.
// The HPA ignores pending and deleted pods' values (and counts only running
// ones), so they get none. Shares round down to the milli-unit so the sum
// never exceeds the prediction (which would add a replica).
func (p *CustomMetricsProvider) podMetrics(ctx context.Context, namespace string, selector labels.Selector, info provider.CustomMetricInfo, metricSelector labels.Selector) (*custom_metrics.MetricValueList, error) {
	value, known := externalMetrics[info.Metric]
	if p.pods == nil || !known {
		return nil, provider.NewMetricNotFoundError(info.GroupResource, info.Metric)
	}
	if selector == nil {
		selector = labels.Everything()
	}
	only, err := serviceFromSelector(metricSelector, "")
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	pods, err := p.pods(ctx, namespace, selector)
	if err != nil {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("listing pods in %s for %s: %v", namespace, info.Metric, err))
	}
	byService := map[string][]*corev1.Pod{}
	var order []string
	for i := range pods {
		pod := &pods[i]
		if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
			continue
		}
		svc := only
		if svc == "" {
			svc = p.podService(pod)
		}
		if svc == "" {
			continue
		}
		if _, seen := byService[svc]; !seen {
			order = append(order, svc)
		}
		byService[svc] = append(byService[svc], pod)
	}
	list := &custom_metrics.MetricValueList{}
	for _, svc := range order {
		pred, found := p.prediction(namespace, svc)
		if !found {
			continue
		}
		q, err := value(pred)
		if err != nil {
			p.log.Error("not serving an invalid prediction", "metric", info.Metric, "namespace", namespace, "service", svc, "err", err)
			continue
		}
		group := byService[svc]
		// At least 1m per pod: a share that rounds to 0 would read as no load.
		share := max(q.MilliValue()/int64(len(group)), 1)
		if q.MilliValue() == 0 {
			share = 0
		}
		for _, pod := range group {
			list.Items = append(list.Items, metricValue(custom_metrics.ObjectReference{APIVersion: "v1", Kind: "Pod",
				Namespace: pod.Namespace, Name: pod.Name}, info.Metric, metricSelector, pred, *resource.NewMilliQuantity(share, resource.DecimalSI)))
		}
	}
	if len(list.Items) == 0 {
		// An empty list would read as "no pods"; say why there is nothing.
		return nil, provider.NewMetricNotFoundForSelectorError(info.GroupResource, info.Metric, "*", selector)
	}
	return list, nil
}

// podService names a pod's service from the first configured label it has.
func (p *CustomMetricsProvider) podService(pod *corev1.Pod) string {
	for _, l := range p.serviceLabels {
		if v := pod.Labels[l]; v != "" {
			return v
		}
	}
	return ""
}

// prediction returns the newest fresh prediction of service in namespace.
func (p *CustomMetricsProvider) prediction(namespace, service string) (snapshot.Prediction, bool) {
	var matched []snapshot.Prediction
	for _, pred := range p.reader.Latest().Fresh(p.now(), namespace) {
		if pred.Service == service {
			matched = append(matched, pred)
		}
	}
	if len(matched) == 0 {
		return snapshot.Prediction{}, false
	}
	return onePerService(matched, p.log)[0], true
}

// serviceFromSelector reads `service=<name>` from an HPA's metric selector,
// defaulting to the workload's name. Any other requirement is refused, and
// so are two different names: the custom metric has exactly one value per
// workload, so a selector that could filter it out or pick between services
// would be ambiguous.
func serviceFromSelector(sel labels.Selector, workload string) (string, error) {
	if sel == nil || sel.Empty() {
		return workload, nil
	}
	reqs, _ := sel.Requirements()
	service, named := workload, false
	for _, r := range reqs {
		vals := r.Values().UnsortedList()
		if r.Key() != LabelService || (r.Operator() != selection.Equals && r.Operator() != selection.DoubleEquals && r.Operator() != selection.In) || len(vals) != 1 ||
			(named && vals[0] != service) {
			// A prefix: the selector may be kilobytes long, and the error is
			// both logged and sent back.
			return "", fmt.Errorf("metric selector %s: only `service: <name>` (matchLabels) is supported for custom metrics", quotePrefix(sel.String(), logPrefixBytes))
		}
		service, named = vals[0], true
	}
	return service, nil
}

// labelSelector echoes the request's metric selector in the answer, as the
// API expects; nil when it selected everything. It is built from the
// requirements rather than by re-parsing sel.String(): that round trip
// drops `!=` and `notin` and keeps only the last of two `key=value`
// requirements on one key, echoing a selector that selects something else.
func labelSelector(sel labels.Selector) *metav1.LabelSelector {
	if sel == nil || sel.Empty() {
		return nil
	}
	reqs, _ := sel.Requirements()
	perKey := make(map[string]int, len(reqs))
	for _, r := range reqs {
		perKey[r.Key()]++
	}
	out := &metav1.LabelSelector{}
	for _, r := range reqs {
		values := r.Values().List()
		var op metav1.LabelSelectorOperator
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals:
			if perKey[r.Key()] == 1 {
				if out.MatchLabels == nil {
					out.MatchLabels = map[string]string{}
				}
				out.MatchLabels[r.Key()] = values[0]
				continue
			}
			op = metav1.LabelSelectorOpIn
		case selection.In:
			op = metav1.LabelSelectorOpIn
		case selection.NotEquals, selection.NotIn:
			op = metav1.LabelSelectorOpNotIn
		case selection.Exists:
			op, values = metav1.LabelSelectorOpExists, nil
		case selection.DoesNotExist:
			op, values = metav1.LabelSelectorOpDoesNotExist, nil
		default:
			// gt and lt have no LabelSelector form. They compare integers,
			// and no label Foresight serves is one, so such a selector
			// matches no item and is never echoed.
			return nil
		}
		out.MatchExpressions = append(out.MatchExpressions, metav1.LabelSelectorRequirement{Key: r.Key(), Operator: op, Values: values})
	}
	return out
}
