// Package charts_test checks the Helm chart: it lints, renders for every
// combination of the values an operator chooses between, each rendering
// passes the real kube-apiserver's strict server-side validation, and its
// names, RBAC, probes and security context are the kustomize base's (one
// source of truth: a change to either that the other lacks fails here).
package charts_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/foresightscale/foresight/internal/kubetest"
	"github.com/foresightscale/foresight/internal/testenv"
)

func chartDir(t *testing.T) string { return filepath.Join(testenv.RepoRoot(t), "charts", "foresight") }

// render runs helm template with values (key=value pairs for --set).
func render(t *testing.T, bin string, set ...string) []byte {
	t.Helper()
	args := []string{"template", "foresight", chartDir(t), "--namespace", "foresight"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// valueMatrix are the choices an operator makes: which APIs, which
// certificates, a ServiceMonitor, resources.
var valueMatrix = []struct {
	name string
	set  []string
}{
	{"defaults", nil},
	{"custom metrics only, cert-manager", []string{"apis.external=false", "apis.custom=true", "certs.mode=certManager"}},
	{"both APIs, existing certificate, ServiceMonitor", []string{"apis.custom=true", "certs.mode=existing", "certs.existingSecret=my-cert",
		"certs.caBundle=" + "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==", "serviceMonitor.enabled=true", "serviceMonitor.labels.release=kube-prometheus"}},
	{"no API registered, one replica, small", []string{"apis.external=false", "replicas=1", "resources.limits.memory=128Mi",
		"prometheus.url=http://thanos-query.monitoring.svc:9090"}},
	{"KEDA scaler with mTLS, VPA recommender, dashboards, Prometheus credentials, retraining", []string{"keda.enabled=true", "keda.clientCASecret=keda-ca", "retraining.enabled=true",
		"vpaRecommender.enabled=true", "dashboards.enabled=true", "prometheus.credentialsSecret=prometheus-basic-auth",
		"config.source.prometheus.http.basic_auth.username=foresight",
		"config.source.prometheus.http.basic_auth.password_file=/etc/foresight/prometheus/password"}},
}

func TestChartLints(t *testing.T) {
	bin := testenv.Helm(t)
	for _, tc := range valueMatrix {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"lint", "--strict", chartDir(t)}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
		})
	}
	// Bad choices are refused at render time with the value named.
	for _, tc := range []struct{ set, want string }{
		{"certs.mode=selfsigned", "certs.mode"},
		{"certs.mode=existing", "certs.existingSecret"},
		{"prometheus.url=", "prometheus.url"},
	} {
		out, err := exec.Command(bin, "template", "foresight", chartDir(t), "--set", tc.set).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("--set %s: %v, output lacks %q:\n%s", tc.set, err, tc.want, out)
		}
	}
}

// object is one rendered document, generically.
type object map[string]any

func (o object) key() string {
	meta, _ := o["metadata"].(map[string]any)
	return fmt.Sprintf("%v/%v/%v", o["kind"], meta["namespace"], meta["name"])
}

func documents(t *testing.T, text []byte) map[string]object {
	t.Helper()
	out := map[string]object{}
	dec := utilyaml.NewYAMLReader(bufioReader(text))
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var o object
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatal(err)
		}
		if len(o) > 0 {
			out[o.key()] = o
		}
	}
	return out
}

// path returns the value at a dotted path of maps (and [0] for the first
// list item).
func path(o map[string]any, p string) any {
	var cur any = o
	for _, part := range strings.Split(p, ".") {
		if part == "[0]" {
			l, _ := cur.([]any)
			if len(l) == 0 {
				return nil
			}
			cur = l[0]
			continue
		}
		m, _ := cur.(map[string]any)
		cur = m[part]
	}
	return cur
}

// TestChartMatchesKustomizeBase: every object of the kustomize base exists
// in the chart's default rendering under the same kind, namespace and name
// (the base's Namespace object aside: Helm installs into a namespace), and
// the fields that must not drift are equal.
func TestChartMatchesKustomizeBase(t *testing.T) {
	bin := testenv.Helm(t)
	kubectl := kubetest.Binary(t, "kubectl")
	base, err := exec.Command(kubectl, "kustomize", filepath.Join(testenv.RepoRoot(t), "manifests", "base")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	want := documents(t, base)
	got := documents(t, render(t, bin))
	fields := map[string][]string{
		"Deployment": {"spec.selector", "spec.strategy", "spec.template.metadata.labels", "spec.template.spec.serviceAccountName",
			"spec.template.spec.securityContext", "spec.template.spec.affinity", "spec.template.spec.volumes",
			"spec.template.spec.containers.[0].args", "spec.template.spec.containers.[0].env", "spec.template.spec.containers.[0].ports",
			"spec.template.spec.containers.[0].readinessProbe", "spec.template.spec.containers.[0].livenessProbe",
			"spec.template.spec.containers.[0].resources", "spec.template.spec.containers.[0].securityContext",
			"spec.template.spec.containers.[0].volumeMounts", "spec.replicas"},
		"Service":             {"spec"},
		"PodDisruptionBudget": {"spec"},
		"ServiceAccount":      {"metadata.name"},
		"ClusterRole":         {"rules"},
		"Role":                {"rules"},
		"ClusterRoleBinding":  {"roleRef", "subjects"},
		"RoleBinding":         {"roleRef", "subjects"},
		"APIService":          {"spec.group", "spec.version", "spec.groupPriorityMinimum", "spec.versionPriority", "spec.service", "spec.insecureSkipTLSVerify"},
	}
	for key, w := range want {
		kind := w["kind"].(string)
		if kind == "Namespace" {
			continue
		}
		g, ok := got[key]
		if !ok {
			t.Errorf("the chart has no %s", key)
			continue
		}
		if kind == "ConfigMap" {
			var wc, gc map[string]any
			configOf := func(o object) []byte {
				data, _ := o["data"].(map[string]any)
				text, _ := data["config.yaml"].(string)
				return []byte(text)
			}
			if yaml.Unmarshal(configOf(w), &wc) != nil || yaml.Unmarshal(configOf(g), &gc) != nil || len(wc) == 0 || !reflect.DeepEqual(wc, gc) {
				t.Errorf("%s: the chart's default configuration differs from the base's:\nchart: %v\nbase:  %v", key, gc, wc)
			}
			continue
		}
		list, ok := fields[kind]
		if !ok {
			t.Errorf("%s: no fields to compare for kind %s: add them here", key, kind)
		}
		for _, f := range list {
			if gv, wv := path(g, f), path(w, f); !reflect.DeepEqual(gv, wv) {
				gy, _ := yaml.Marshal(gv)
				wy, _ := yaml.Marshal(wv)
				t.Errorf("%s %s differs:\nchart:\n%s\nbase:\n%s", key, f, gy, wy)
			}
		}
	}
	if img := path(got["Deployment/foresight/foresight"], "spec.template.spec.containers.[0].image"); img != path(want["Deployment/foresight/foresight"], "spec.template.spec.containers.[0].image") {
		t.Errorf("the chart's image %v differs from the base's", img)
	}
}

// TestChartPassesServerSideValidation applies every rendering of the value
// matrix to a real kube-apiserver with strict server-side validation (dry
// run), with the cert-manager and prometheus-operator CRDs the choices use.
func TestChartPassesServerSideValidation(t *testing.T) {
	bin := testenv.Helm(t)
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c.ApplyCRDs(ctx, t, append(kubetest.CertManagerCRDs, kubetest.ServiceMonitorCRD)...)
	c.MustKubectl(ctx, t, nil, "create", "namespace", "foresight")
	for _, tc := range valueMatrix {
		t.Run(tc.name, func(t *testing.T) {
			c.MustKubectl(ctx, t, render(t, bin, tc.set...), "apply", "--server-side", "--validate=strict", "--dry-run=server", "-f", "-")
		})
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// TestChartMatchesKustomizeComponents: the chart's optional parts are the
// kustomize components': the VPA recommender's and the trainer's RBAC, the
// retraining CronJob, and the dashboards ConfigMap's data, with the KEDA
// and VPA flags the docs give.
func TestChartMatchesKustomizeComponents(t *testing.T) {
	bin := testenv.Helm(t)
	repo := testenv.RepoRoot(t)
	got := documents(t, render(t, bin, "vpaRecommender.enabled=true", "dashboards.enabled=true", "keda.enabled=true", "retraining.enabled=true"))
	read := func(rel string) map[string]object {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(repo, rel))
		if err != nil {
			t.Fatal(err)
		}
		return documents(t, b)
	}
	rbac := read("manifests/components/vpa-recommender/rbac.yaml")
	maps.Copy(rbac, read("manifests/components/retraining/rbac.yaml"))
	for key, w := range rbac {
		g, ok := got[key]
		if !ok {
			t.Errorf("the chart with vpaRecommender.enabled has no %s", key)
			continue
		}
		for _, f := range []string{"rules", "roleRef", "subjects", "kind"} {
			if !reflect.DeepEqual(g[f], w[f]) {
				t.Errorf("%s %s: chart %v, component %v", key, f, g[f], w[f])
			}
		}
	}
	cronKey := "CronJob/foresight/foresight-retrain"
	cron := read("manifests/components/retraining/cronjob.yaml")[cronKey]
	if g := got[cronKey]; g == nil {
		t.Errorf("the chart with retraining.enabled has no %s", cronKey)
	} else {
		g, w := map[string]any(g), map[string]any(cron)
		for _, f := range []string{"spec.schedule", "spec.concurrencyPolicy", "spec.jobTemplate.spec.backoffLimit", "spec.jobTemplate.spec.template.metadata.labels",
			"spec.jobTemplate.spec.template.spec.serviceAccountName", "spec.jobTemplate.spec.template.spec.securityContext",
			"spec.jobTemplate.spec.template.spec.containers.[0].args", "spec.jobTemplate.spec.template.spec.containers.[0].resources",
			"spec.jobTemplate.spec.template.spec.containers.[0].securityContext", "spec.jobTemplate.spec.template.spec.volumes"} {
			if gv, wv := path(g, f), path(w, f); !reflect.DeepEqual(gv, wv) {
				t.Errorf("%s %s: chart %v, component %v", cronKey, f, gv, wv)
			}
		}
	}
	var cfg map[string]any
	data, _ := got["ConfigMap/foresight/foresight-config"]["data"].(map[string]any)
	text, _ := data["config.yaml"].(string)
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil || cfg["model"] != "auto" || cfg["modelStore"] != "configmap:foresight/foresight-model" {
		t.Errorf("with retraining.enabled, serve's configuration %v lacks model: auto and the ConfigMap store (%v)", cfg, err)
	}
	for key, w := range read("manifests/components/grafana-dashboards/configmap.yaml") {
		g, ok := got[key]
		if !ok || !reflect.DeepEqual(g["data"], w["data"]) || len(w["data"].(map[string]any)) == 0 {
			t.Errorf("the chart's %s differs from the component's (present %v)", key, ok)
		}
	}
	args := fmt.Sprint(path(got["Deployment/foresight/foresight"], "spec.template.spec.containers.[0].args"))
	for _, want := range []string{"--vpa-recommender=foresight", "--keda-scaler-address=:9443", "--keda-tls-cert-file=/var/run/serving-cert/tls.crt"} {
		if !strings.Contains(args, want) {
			t.Errorf("the Deployment's args %s lack %s", args, want)
		}
	}
}
