package keda

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/foresightscale/foresight/adapter"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/internal/kubetest"
	"github.com/foresightscale/foresight/internal/promtest"
	"github.com/foresightscale/foresight/internal/testenv"
)

// KEDA's CRDs come from its Go module, at the version whose gRPC API this
// package implements.
const (
	kedaModule  = "github.com/kedacore/keda/v2"
	kedaVersion = "v2.21.0"
)

var kedaCRDs = []string{"scaledobjects.keda.sh", "triggerauthentications.keda.sh", "clustertriggerauthentications.keda.sh"}

// scaledObject is the part of a KEDA ScaledObject the checks read.
type scaledObject struct {
	Kind     string
	Metadata struct{ Name, Namespace string }
	Spec     struct {
		ScaleTargetRef struct{ Name string }
		Fallback       *struct {
			FailureThreshold int32
			Replicas         int32
			Behavior         string
		}
		Triggers []struct {
			Type              string
			MetricType        string
			Metadata          map[string]string
			AuthenticationRef *struct{ Name, Kind string }
		}
	}
}

func examplePath(t *testing.T) string {
	return filepath.Join(testenv.RepoRoot(t), "manifests", "examples", "keda-scaledobject.yaml")
}

// TestExampleScaledObjectsOnTheAPIServer applies the example to a real
// apiserver with KEDA's CRDs (strict validation against KEDA's schema; the
// KEDA operator itself does not run), then checks what the apiserver stored:
// the external trigger's metadata through this package's real gRPC server,
// the prometheus trigger's query with the PromQL parser. The KEDA objects in
// docs/keda.md get the same validation.
func TestExampleScaledObjectsOnTheAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kubectl := func(t *testing.T, stdin []byte, args ...string) []byte {
		t.Helper()
		return c.MustKubectl(ctx, t, stdin, args...)
	}

	bases := filepath.Join(kubetest.GoModuleDir(ctx, t, kedaModule, kedaVersion), "config", "crd", "bases")
	wait := []string{"wait", "--for=condition=Established", "--timeout=60s"}
	for _, crd := range kedaCRDs {
		group := strings.SplitN(crd, ".", 2)
		kubectl(t, nil, "apply", "--server-side", "-f", filepath.Join(bases, group[1]+"_"+group[0]+".yaml"))
		wait = append(wait, "crd/"+crd)
	}
	kubectl(t, nil, wait...)
	kubectl(t, nil, "create", "namespace", "boutique")

	t.Run("strict validation rejects an unknown field", func(t *testing.T) {
		// Without this the checks below could pass on a schema-less CRD.
		bad := []byte(`{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject","metadata":{"name":"bad","namespace":"boutique"},
			"spec":{"scaleTargetRef":{"name":"frontend"},"triggers":[{"type":"external","metadata":{"service":"frontend"},"metricsType":"AverageValue"}]}}`)
		for _, tt := range []struct {
			mode    string
			args    []string
			wantErr string
		}{
			{"client-side apply", []string{"apply", "--validate=strict", "--dry-run=server", "-f", "-"}, `unknown field "spec.triggers[0].metricsType"`},
			{"server-side apply", []string{"apply", "--server-side", "--validate=strict", "--dry-run=server", "-f", "-"}, `.spec.triggers[0].metricsType: field not declared in schema`},
		} {
			if _, err := c.Kubectl(ctx, t, bad, tt.args...); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s of a misspelled field: %v, want an error containing %q", tt.mode, err, tt.wantErr)
			}
		}
	})

	// Both apply modes, as operators use both; then for real.
	example := examplePath(t)
	kubectl(t, nil, "apply", "--validate=strict", "--dry-run=server", "-f", example)
	kubectl(t, nil, "apply", "--server-side", "--validate=strict", "--dry-run=server", "-f", example)
	kubectl(t, nil, "apply", "--server-side", "--validate=strict", "-f", example)

	var stored struct{ Items []scaledObject }
	if err := json.Unmarshal(kubectl(t, nil, "-n", "boutique", "get", "scaledobjects.keda.sh", "-o", "json"), &stored); err != nil {
		t.Fatal(err)
	}
	types := map[string]string{} // trigger type -> ScaledObject
	for _, so := range stored.Items {
		t.Run(so.Metadata.Name, func(t *testing.T) {
			if so.Spec.ScaleTargetRef.Name != so.Metadata.Name {
				t.Errorf("scales %q, want the Deployment of the same name", so.Spec.ScaleTargetRef.Name)
			}
			// currentReplicasIfHigher: a blind Foresight never scales down.
			if f := so.Spec.Fallback; f == nil || f.Behavior != "currentReplicasIfHigher" || f.Replicas < 1 {
				t.Errorf("fallback = %+v, want currentReplicasIfHigher with replicas >= 1", f)
			}
			if len(so.Spec.Triggers) != 1 {
				t.Fatalf("%d triggers, want 1 (one style per workload)", len(so.Spec.Triggers))
			}
			tr := so.Spec.Triggers[0]
			if prev, dup := types[tr.Type]; dup {
				t.Errorf("trigger type %s used by %s and %s, want one of each style", tr.Type, prev, so.Metadata.Name)
			}
			types[tr.Type] = so.Metadata.Name
			if tr.MetricType != "AverageValue" {
				t.Errorf("metricType %q, want AverageValue (the prediction is the whole Deployment's count)", tr.MetricType)
			}
			switch tr.Type {
			case "external":
				checkExternalTrigger(t, so.Metadata.Namespace, so.Metadata.Name, so.Spec.ScaleTargetRef.Name, tr.Metadata)
			case "prometheus":
				checkPrometheusTrigger(t, so.Metadata.Namespace, so.Spec.ScaleTargetRef.Name, tr.Metadata)
			default:
				t.Errorf("trigger type %q, want external or prometheus", tr.Type)
			}
		})
	}
	if len(types) != 2 {
		t.Errorf("trigger types %v, want external and prometheus", types)
	}

	t.Run("docs/keda.md", func(t *testing.T) {
		docs := kedaObjectsInDocs(t)
		if len(docs) == 0 {
			t.Fatal("no KEDA objects found in docs/keda.md")
		}
		for i, doc := range docs {
			if _, err := c.Kubectl(ctx, t, doc, "apply", "--server-side", "--validate=strict", "--dry-run=server", "-f", "-"); err != nil {
				t.Errorf("docs/keda.md KEDA block %d: %v\n%s", i+1, err, doc)
			}
		}
	})
}

// checkExternalTrigger sends the stored metadata, as KEDA passes it, to a
// real Server and expects the prediction back.
func checkExternalTrigger(t *testing.T, namespace, name, service string, metadata map[string]string) {
	t.Helper()
	host, port, err := net.SplitHostPort(metadata["scalerAddress"])
	if err != nil || host != "foresight.foresight.svc" || port != "9443" {
		t.Errorf("scalerAddress %q, want foresight.foresight.svc:9443 (%v)", metadata["scalerAddress"], err)
	}
	if metadata[KeyService] != service {
		t.Errorf("metadata service %q, want the scaled Deployment %q", metadata[KeyService], service)
	}

	store := &snapshot.Store{}
	store.Publish(snap(
		pred(namespace, service, func(p *snapshot.Prediction) { p.PredictedReplicas = 5 }),
		pred("staging", service, func(p *snapshot.Prediction) { p.PredictedReplicas = 50 }),
	))
	s, _ := newServer(t, store, Options{})
	addr, _ := serve(t, s, nil)
	client := pb.NewExternalScalerClient(dial(t, addr, nil))
	ctx := callCtx(t)
	ref := &pb.ScaledObjectRef{Name: name, Namespace: namespace, ScalerMetadata: metadata}

	spec, err := client.GetMetricSpec(ctx, ref)
	if err != nil {
		t.Fatalf("GetMetricSpec with the example's metadata: %v", err)
	}
	if len(spec.MetricSpecs) != 1 || spec.MetricSpecs[0].TargetSizeFloat != 1 {
		t.Fatalf("GetMetricSpec = %v, want one metric with target 1", spec.MetricSpecs)
	}
	metrics, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: spec.MetricSpecs[0].MetricName})
	if err != nil {
		t.Fatalf("GetMetrics: %v", err)
	}
	if len(metrics.MetricValues) != 1 || metrics.MetricValues[0].MetricValueFloat != 5 {
		t.Errorf("GetMetrics = %v, want 5 replicas for %s/%s", metrics.MetricValues, namespace, service)
	}
	active, err := client.IsActive(ctx, ref)
	if err != nil || !active.Result {
		t.Errorf("IsActive = %v, %v, want true", active, err)
	}
}

// checkPrometheusTrigger: the query reads foresight_predicted_replicas of
// exactly the scaled service, with AverageValue semantics and no silent 0.
func checkPrometheusTrigger(t *testing.T, namespace, service string, metadata map[string]string) {
	t.Helper()
	if metadata["threshold"] != "1" {
		t.Errorf("threshold %q, want 1", metadata["threshold"])
	}
	if metadata["ignoreNullValues"] != "false" {
		t.Errorf("ignoreNullValues %q, want false: an empty result must be an error, not 0", metadata["ignoreNullValues"])
	}
	if _, err := url.ParseRequestURI(metadata["serverAddress"]); err != nil {
		t.Errorf("serverAddress %q: %v", metadata["serverAddress"], err)
	}
	want := map[string]string{model.MetricNameLabel: adapter.MetricPredictedReplicas, "namespace": namespace, "service": service}
	if got := selectedSeries(t, metadata["query"]); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("query %q selects %v, want %v", metadata["query"], got, want)
	}
}

// selectedSeries returns the equality matchers of the query's only selector.
func selectedSeries(t *testing.T, query string) map[string]string {
	t.Helper()
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(query)
	if err != nil {
		t.Fatalf("query %q: %v", query, err)
	}
	var selectors []*parser.VectorSelector
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			selectors = append(selectors, vs)
		}
		return nil
	})
	if len(selectors) != 1 {
		t.Fatalf("query %q has %d selectors, want 1", query, len(selectors))
	}
	out := map[string]string{}
	for _, m := range selectors[0].LabelMatchers {
		if m.Type != labels.MatchEqual {
			t.Errorf("query %q: matcher %v, want only equality matchers", query, m)
		}
		out[m.Name] = m.Value
	}
	return out
}

// kedaObjectsInDocs returns the ```yaml blocks of docs/keda.md that hold
// keda.sh objects.
func kedaObjectsInDocs(t *testing.T) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "keda.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(raw, -1) {
		if bytes.Contains(m[1], []byte("apiVersion: keda.sh/")) {
			out = append(out, m[1])
		}
	}
	return out
}

// exampleScaledObjects parses the example file locally.
func exampleScaledObjects(t *testing.T) []scaledObject {
	t.Helper()
	f, err := os.Open(examplePath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []scaledObject
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var so scaledObject
		if err := yaml.Unmarshal(doc, &so); err != nil {
			t.Fatal(err)
		}
		if so.Kind == "ScaledObject" {
			out = append(out, so)
		}
	}
}

// TestPrometheusTriggerReadsForesightSeries runs the example's prometheus
// query on a real Prometheus holding what Foresight's /metrics collector
// exports (as two Foresight replicas would be scraped): it must return the
// scaled service's prediction and nothing once the prediction is gone.
func TestPrometheusTriggerReadsForesightSeries(t *testing.T) {
	var query, namespace, service string
	for _, so := range exampleScaledObjects(t) {
		for _, tr := range so.Spec.Triggers {
			if tr.Type == "prometheus" {
				query, namespace, service = tr.Metadata["query"], so.Metadata.Namespace, so.Spec.ScaleTargetRef.Name
			}
		}
	}
	if query == "" {
		t.Fatal("no prometheus trigger in the example")
	}

	store := &snapshot.Store{}
	store.Publish(snap(
		pred(namespace, service, func(p *snapshot.Prediction) { p.PredictedReplicas = 4 }),
		pred(namespace, "checkoutservice", func(p *snapshot.Prediction) { p.PredictedReplicas = 9 }),
		pred("staging", service, func(p *snapshot.Prediction) { p.PredictedReplicas = 7 }),
	))
	reg := prometheus.NewRegistry()
	reg.MustRegister(adapter.NewCollector(store, fixedNow))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var om strings.Builder
	om.WriteString("# TYPE " + adapter.MetricPredictedReplicas + " gauge\n")
	lines := 0
	for _, f := range families {
		if f.GetName() != adapter.MetricPredictedReplicas {
			continue
		}
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			for _, instance := range []string{"10.0.0.1:8080", "10.0.0.2:8080"} {
				all := append([]string{`job="foresight"`, fmt.Sprintf("instance=%q", instance)}, ls...)
				sort.Strings(all)
				fmt.Fprintf(&om, "%s{%s} %v %d\n", adapter.MetricPredictedReplicas, strings.Join(all, ","), m.GetGauge().GetValue(), now.Unix())
				lines++
			}
		}
	}
	om.WriteString("# EOF\n")
	if lines != 6 {
		t.Fatalf("collector exported %d series for two replicas, want 6:\n%s", lines, om.String())
	}
	backfill := filepath.Join(t.TempDir(), "foresight.om")
	if err := os.WriteFile(backfill, []byte(om.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := promtest.Start(t, promtest.Options{Backfill: backfill})

	if got := srv.Query(t, query, now.Add(15*time.Second)); len(got) != 1 || got[0] != "4" {
		t.Errorf("query %q = %v, want one value 4", query, got)
	}
	// Past Prometheus' 5 minute lookback the series is gone, as when
	// Foresight stops exporting an expired prediction: the result is empty,
	// which KEDA with ignoreNullValues "false" reports as an error.
	if got := srv.Query(t, query, now.Add(6*time.Minute)); len(got) != 0 {
		t.Errorf("query %q after the series ended = %v, want no result", query, got)
	}
}
