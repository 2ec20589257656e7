package meshtest

import (
	"fmt"

	"github.com/foresightscale/foresight/forecaster/source"
)

// RateWindow is the rate() window of the Queries templates: four samples at
// a 30 s scrape interval, so one missed scrape never empties it.
const RateWindow = "2m"

// Queries returns the PromQL templates (source.PrometheusConfig.Queries) that
// read requests, CPU and replicas per service from the series
// WriteOpenMetrics writes for the flavour, i.e. from what Istio, Linkerd or
// the OpenTelemetry servicegraph connector, cAdvisor and kube-state-metrics
// export. Each returns one series per service with a "service" label:
//   - requests: every request the service receives (from other services and
//     from outside), by the mesh's destination label;
//   - cpu: the container CPU counter, by container name (= service name);
//   - replicas: kube-state-metrics' Deployment replicas, by Deployment name.
//
// Latency and memory are left to the defaults (or absent).
func Queries(f Flavour) map[source.Feature]string {
	var requests string
	switch f {
	case Istio:
		requests = fmt.Sprintf(`sum by (service) (label_replace(rate(istio_requests_total{reporter="destination", destination_workload_namespace="{{.Namespace}}"}[%s]), "service", "$1", "destination_workload", "(.+)"))`, RateWindow)
	case Linkerd:
		requests = fmt.Sprintf(`sum by (service) (label_replace(rate(request_total{direction="inbound", namespace="{{.Namespace}}"}[%s]), "service", "$1", "deployment", "(.+)"))`, RateWindow)
	case OpenTelemetry:
		requests = fmt.Sprintf(`sum by (service) (label_replace(rate(traces_service_graph_request_total{%s="{{.Namespace}}"}[%s]), "service", "$1", "server", "(.+)"))`, OTelServerNamespaceLabel, RateWindow)
	default:
		return nil
	}
	return map[source.Feature]string{
		source.Requests: requests,
		source.CPU:      fmt.Sprintf(`sum by (service) (label_replace(rate(container_cpu_usage_seconds_total{namespace="{{.Namespace}}", container!="", container!="POD"}[%s]), "service", "$1", "container", "(.+)"))`, RateWindow),
		source.Replicas: `sum by (service) (label_replace(kube_deployment_status_replicas{namespace="{{.Namespace}}"}, "service", "$1", "deployment", "(.+)"))`,
	}
}
