package source_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/foresightscale/foresight/internal/testenv"

	"sigs.k8s.io/yaml"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/promtest"
)

// repoRoot is the directory holding go.mod.
func repoRoot(t testing.TB) string { return testenv.RepoRoot(t) }

// rulesFile is a Prometheus rule file: the groups of a PrometheusRule spec.
type rulesFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval"`
		Rules    []struct {
			Record string `json:"record"`
			Expr   string `json:"expr"`
		} `json:"rules"`
	} `json:"groups"`
}

// shippedRuleGroups reads spec.groups of manifests/prometheus-rules.yaml as
// generic YAML, so that nothing is lost on the way to promtool.
func shippedRuleGroups(t testing.TB) any {
	t.Helper()
	path := filepath.Join(repoRoot(t), "manifests", "prometheus-rules.yaml")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   any    `json:"metadata"`
		Spec       struct {
			Groups any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(text, &manifest); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if manifest.APIVersion != "monitoring.coreos.com/v1" || manifest.Kind != "PrometheusRule" {
		t.Fatalf("%s: %s %s, want a monitoring.coreos.com/v1 PrometheusRule", path, manifest.APIVersion, manifest.Kind)
	}
	return manifest.Spec.Groups
}

// shippedRulesFile writes the shipped groups as a plain rule file
// (rules.yaml in a temporary directory) and returns its path.
func shippedRulesFile(t testing.TB) string {
	t.Helper()
	text, err := yaml.Marshal(map[string]any{"groups": shippedRuleGroups(t)})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestShippedRecordingRules(t *testing.T) {
	rules := shippedRulesFile(t)
	if out, err := promtest.Promtool(t, "check", "rules", rules); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	unitTest := filepath.Join(filepath.Dir(rules), "rules_test.yaml")
	if err := os.WriteFile(unitTest, []byte(rulesUnitTest), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := promtest.Promtool(t, "test", "rules", unitTest); err != nil {
		t.Fatalf("the recording rules compute wrong values: %v\n%s", err, out)
	}
}

func TestDefaultQueriesReadShippedRules(t *testing.T) {
	text, err := yaml.Marshal(map[string]any{"groups": shippedRuleGroups(t)})
	if err != nil {
		t.Fatal(err)
	}
	var file rulesFile
	if err := yaml.Unmarshal(text, &file); err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{}
	for _, g := range file.Groups {
		if g.Interval != "30s" {
			t.Errorf("group %s: interval %q, want 30s (one value per forecasting step)", g.Name, g.Interval)
		}
		for _, r := range g.Rules {
			recorded[r.Record] = true
		}
	}
	defaults := source.DefaultQueries()
	for _, f := range append(slices.Clone(source.AllFeatures), source.FeedbackFeatures...) {
		metric := source.RecordedMetrics[f]
		if !recorded[metric] {
			t.Errorf("feature %s reads %q, which the shipped rules do not record", f, metric)
		}
		if !strings.Contains(defaults[f], metric+`{namespace="{{.Namespace}}"}`) {
			t.Errorf("default query of %s = %q, want it to read %s in the namespace", f, defaults[f], metric)
		}
	}
}

// The docs show the same groups as a plain rule file, for Prometheus servers
// not run by the operator: they must not drift apart.
func TestDocsRulesMatchManifest(t *testing.T) {
	path := filepath.Join(repoRoot(t), "docs", "prometheus.md")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- BEGIN rules-file -->", "<!-- END rules-file -->"
	_, rest, ok := strings.Cut(string(text), begin)
	block, _, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("%s: no rules file between %s and %s", path, begin, end)
	}
	block = strings.TrimSpace(block)
	block = strings.TrimPrefix(block, "```yaml")
	block = strings.TrimSuffix(block, "```")
	var docs map[string]any
	if err := yaml.UnmarshalStrict([]byte(block), &docs); err != nil {
		t.Fatalf("%s: rules file: %v", path, err)
	}
	// Compare through the same JSON-compatible representation.
	want, err := yaml.Marshal(map[string]any{"groups": shippedRuleGroups(t)})
	if err != nil {
		t.Fatal(err)
	}
	var manifest map[string]any
	if err := yaml.Unmarshal(want, &manifest); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(docs, manifest) {
		got, _ := yaml.Marshal(docs)
		t.Errorf("%s: the rules file differs from manifests/prometheus-rules.yaml\ndocs:\n%s\nmanifest:\n%s", path, got, want)
	}
}

// rulesUnitTest checks what each recording rule computes from Istio, cAdvisor
// and kube-state-metrics series, including what must be left out.
const rulesUnitTest = `
rule_files: [rules.yaml]
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
      # frontend: two pods of Deployment frontend (ReplicaSet frontend-7d4f), 3 req/s in all.
      - series: 'istio_requests_total{reporter="destination", destination_workload="frontend", destination_workload_namespace="shop", namespace="shop", pod="frontend-7d4f-aaaaa", response_code="200"}'
        values: '0+60x10'
      - series: 'istio_requests_total{reporter="destination", destination_workload="frontend", destination_workload_namespace="shop", namespace="shop", pod="frontend-7d4f-bbbbb", response_code="500"}'
        values: '0+30x10'
      # Counted by the caller's sidecar too: must not be added.
      - series: 'istio_requests_total{reporter="source", destination_workload="frontend", destination_workload_namespace="shop", namespace="shop", pod="loadgen-1", response_code="200"}'
        values: '0+90x10'
      # cart: 1 req/s, except 3 req/s between 3m and 3m30s: a burst the
      # one-minute rate averages away and the peak rate keeps.
      - series: 'istio_requests_total{reporter="destination", destination_workload="cart", destination_workload_namespace="shop", namespace="shop", pod="cart-5b6c-aaaaa", response_code="200"}'
        values: '0+30x6 270+30x4'
      # Unknown destination: no service to attribute it to.
      - series: 'istio_requests_total{reporter="destination", destination_workload="unknown", destination_workload_namespace="unknown", namespace="shop", pod="x"}'
        values: '0+300x10'
      # redis-cart: a StatefulSet, 0.5 req/s.
      - series: 'istio_requests_total{reporter="destination", destination_workload="redis-cart", destination_workload_namespace="shop", namespace="shop", pod="redis-cart-0", response_code="200"}'
        values: '0+15x10'
      # Latency: frontend, 90 requests per 30 s taking 9000 ms in all = 100 ms each.
      - series: 'istio_request_duration_milliseconds_sum{reporter="destination", destination_workload="frontend", destination_workload_namespace="shop"}'
        values: '0+9000x10'
      - series: 'istio_request_duration_milliseconds_count{reporter="destination", destination_workload="frontend", destination_workload_namespace="shop"}'
        values: '0+90x10'
      # redis-cart had no requests: no latency sample rather than NaN.
      - series: 'istio_request_duration_milliseconds_sum{reporter="destination", destination_workload="redis-cart", destination_workload_namespace="shop"}'
        values: '5x10'
      - series: 'istio_request_duration_milliseconds_count{reporter="destination", destination_workload="redis-cart", destination_workload_namespace="shop"}'
        values: '1x10'
      # p99 latency histogram (milliseconds, Istio's buckets; the ones above
      # 500 are left out, cumulative counts there equal le="500"). Per 30 s
      # frontend pod a receives 1700 requests and pod b 1300; summed per
      # bucket: 1800 within 50 ms, 2700 within 100, 2940 within 250, all
      # 3000 within 500. The 99th percentile is request 0.99*3000 = 2970,
      # the 30th of the 60 in (250, 500]: 250 + 250*30/60 = 375 ms. (Taking
      # each pod's p99 and the max would give pod a's 250 + 250*43/60 ms.)
      - series: 'istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload="frontend", destination_workload_namespace="shop", pod="frontend-7d4f-aaaaa", le="50"}'
        values: '0+1000x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload="frontend", destination_workload_namespace="shop", pod="frontend-7d4f-aaaaa", le="100"}'
        values: '0+1500x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload="frontend", destination_workload_namespace="shop", pod="frontend-7d4f-aaaaa", le="250"}'
        values: '0+1640x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload="frontend", destination_workload_namespace="shop", pod="frontend-7d4f-aaaaa", le="500"}'
        values: '0+1700x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload="frontend", destination_workload_namespace="shop", pod="frontend-7d4f-aaaaa", le="+Inf"}'
        values: '0+1700x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload="frontend", destination_workload_namespace="shop", pod="frontend-7d4f-bbbbb", le="50"}'
        values: '0+800x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload="frontend", destination_workload_namespace="shop", pod="frontend-7d4f-bbbbb", le="100"}'
        values: '0+1200x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload="frontend", destination_workload_namespace="shop", pod="frontend-7d4f-bbbbb", le="250"}'
        values: '0+1300x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload="frontend", destination_workload_namespace="shop", pod="frontend-7d4f-bbbbb", le="500"}'
        values: '0+1300x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload="frontend", destination_workload_namespace="shop", pod="frontend-7d4f-bbbbb", le="+Inf"}'
        values: '0+1300x10'
      # The caller's sidecar also measures frontend, slower: must be left out.
      - series: 'istio_request_duration_milliseconds_bucket{reporter="source", destination_workload="frontend", destination_workload_namespace="shop", pod="loadgen-1", le="50"}'
        values: '0+0x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="source", destination_workload="frontend", destination_workload_namespace="shop", pod="loadgen-1", le="100"}'
        values: '0+0x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="source", destination_workload="frontend", destination_workload_namespace="shop", pod="loadgen-1", le="250"}'
        values: '0+0x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="source", destination_workload="frontend", destination_workload_namespace="shop", pod="loadgen-1", le="500"}'
        values: '0+0x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="source", destination_workload="frontend", destination_workload_namespace="shop", pod="loadgen-1", le="+Inf"}'
        values: '0+100x10'
      # redis-cart had no requests: no p99 sample rather than NaN.
      - series: 'istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload="redis-cart", destination_workload_namespace="shop", pod="redis-cart-0", le="50"}'
        values: '1x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload="redis-cart", destination_workload_namespace="shop", pod="redis-cart-0", le="100"}'
        values: '1x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload="redis-cart", destination_workload_namespace="shop", pod="redis-cart-0", le="250"}'
        values: '1x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload="redis-cart", destination_workload_namespace="shop", pod="redis-cart-0", le="500"}'
        values: '1x10'
      - series: 'istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload="redis-cart", destination_workload_namespace="shop", pod="redis-cart-0", le="+Inf"}'
        values: '1x10'
      # CPU: frontend pod a 0.5 (server) + 0.1 (istio-proxy), pod b 0.5 cores.
      - series: 'container_cpu_usage_seconds_total{namespace="shop", pod="frontend-7d4f-aaaaa", container="server", image="frontend:1"}'
        values: '0+15x10'
      - series: 'container_cpu_usage_seconds_total{namespace="shop", pod="frontend-7d4f-aaaaa", container="istio-proxy", image="proxyv2:1"}'
        values: '0+3x10'
      - series: 'container_cpu_usage_seconds_total{namespace="shop", pod="frontend-7d4f-bbbbb", container="server", image="frontend:1"}'
        values: '0+15x10'
      # The pod-level cgroup and the pause container would count usage twice.
      - series: 'container_cpu_usage_seconds_total{namespace="shop", pod="frontend-7d4f-aaaaa", container="", image=""}'
        values: '0+18x10'
      - series: 'container_cpu_usage_seconds_total{namespace="shop", pod="frontend-7d4f-aaaaa", container="POD", image="pause:3"}'
        values: '0+30x10'
      - series: 'container_cpu_usage_seconds_total{namespace="shop", pod="redis-cart-0", container="redis", image="redis:7"}'
        values: '0+6x10'
      # A pod without an owner is attributed to no service.
      - series: 'container_cpu_usage_seconds_total{namespace="shop", pod="debug", container="sh", image="busybox"}'
        values: '0+30x10'
      - series: 'container_memory_working_set_bytes{namespace="shop", pod="frontend-7d4f-aaaaa", container="server", image="frontend:1"}'
        values: '100000000x10'
      - series: 'container_memory_working_set_bytes{namespace="shop", pod="frontend-7d4f-aaaaa", container="", image=""}'
        values: '999999999x10'
      - series: 'container_memory_working_set_bytes{namespace="shop", pod="frontend-7d4f-bbbbb", container="server", image="frontend:1"}'
        values: '50000000x10'
      - series: 'container_memory_working_set_bytes{namespace="shop", pod="redis-cart-0", container="redis", image="redis:7"}'
        values: '20000000x10'
      # Owners, from kube-state-metrics.
      - series: 'kube_pod_owner{namespace="shop", pod="frontend-7d4f-aaaaa", owner_kind="ReplicaSet", owner_name="frontend-7d4f", owner_is_controller="true"}'
        values: '1x10'
      - series: 'kube_pod_owner{namespace="shop", pod="frontend-7d4f-bbbbb", owner_kind="ReplicaSet", owner_name="frontend-7d4f", owner_is_controller="true"}'
        values: '1x10'
      - series: 'kube_pod_owner{namespace="shop", pod="redis-cart-0", owner_kind="StatefulSet", owner_name="redis-cart", owner_is_controller="true"}'
        values: '1x10'
      - series: 'kube_replicaset_owner{namespace="shop", replicaset="frontend-7d4f", owner_kind="Deployment", owner_name="frontend", owner_is_controller="true"}'
        values: '1x10'
      # Replicas, scraped from two kube-state-metrics instances: not doubled.
      - series: 'kube_deployment_status_replicas{namespace="shop", deployment="frontend", instance="ksm-0"}'
        values: '2x10'
      - series: 'kube_deployment_status_replicas{namespace="shop", deployment="frontend", instance="ksm-1"}'
        values: '2x10'
      - series: 'kube_statefulset_status_replicas{namespace="shop", statefulset="redis-cart", instance="ksm-0"}'
        values: '1x10'
    promql_expr_test:
      - expr: service:foresight_requests:rate1m
        eval_time: 5m
        exp_samples:
          - labels: 'service:foresight_requests:rate1m{namespace="shop", service="frontend"}'
            value: 3
          - labels: 'service:foresight_requests:rate1m{namespace="shop", service="redis-cart"}'
            value: 0.5
          - labels: 'service:foresight_requests:rate1m{namespace="shop", service="cart"}'
            value: 1
      # The minute holding cart's burst peaks at the burst's rate; the next
      # minute, without one, at the mean.
      - expr: service:foresight_requests:peak_rate1m
        eval_time: 4m
        exp_samples:
          - labels: 'service:foresight_requests:peak_rate1m{namespace="shop", service="frontend"}'
            value: 3
          - labels: 'service:foresight_requests:peak_rate1m{namespace="shop", service="redis-cart"}'
            value: 0.5
          - labels: 'service:foresight_requests:peak_rate1m{namespace="shop", service="cart"}'
            value: 3
      - expr: service:foresight_requests:peak_rate1m
        eval_time: 5m
        exp_samples:
          - labels: 'service:foresight_requests:peak_rate1m{namespace="shop", service="frontend"}'
            value: 3
          - labels: 'service:foresight_requests:peak_rate1m{namespace="shop", service="redis-cart"}'
            value: 0.5
          - labels: 'service:foresight_requests:peak_rate1m{namespace="shop", service="cart"}'
            value: 1
      - expr: service:foresight_latency_seconds:mean1m
        eval_time: 5m
        exp_samples:
          - labels: 'service:foresight_latency_seconds:mean1m{namespace="shop", service="frontend"}'
            value: 0.1
      - expr: service:foresight_latency_seconds:p99_1m
        eval_time: 5m
        exp_samples:
          - labels: 'service:foresight_latency_seconds:p99_1m{namespace="shop", service="frontend"}'
            value: 0.375
      - expr: service:foresight_cpu_cores:rate1m
        eval_time: 5m
        exp_samples:
          - labels: 'service:foresight_cpu_cores:rate1m{namespace="shop", service="frontend"}'
            value: 1.1
          - labels: 'service:foresight_cpu_cores:rate1m{namespace="shop", service="redis-cart"}'
            value: 0.2
      - expr: service:foresight_memory_bytes:sum
        eval_time: 5m
        exp_samples:
          - labels: 'service:foresight_memory_bytes:sum{namespace="shop", service="frontend"}'
            value: 150000000
          - labels: 'service:foresight_memory_bytes:sum{namespace="shop", service="redis-cart"}'
            value: 20000000
      - expr: service:foresight_replicas:sum
        eval_time: 5m
        exp_samples:
          - labels: 'service:foresight_replicas:sum{namespace="shop", service="frontend"}'
            value: 2
          - labels: 'service:foresight_replicas:sum{namespace="shop", service="redis-cart"}'
            value: 1
`
