// Package manifests_test checks what an operator applies: every overlay and
// example renders with kustomize and passes the real apiserver's strict
// server-side validation, with the third-party CRDs (cert-manager,
// prometheus-operator) at the versions we document. The base itself is
// installed and exercised end to end in cmd/foresight's e2e test.
package manifests_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/internal/kubetest"
	"github.com/foresightscale/foresight/internal/testenv"
	"github.com/foresightscale/foresight/models"
)

func TestOverlaysAndExamplesPassServerSideValidation(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := filepath.Join(testenv.RepoRoot(t), "manifests")
	kubectl := func(t *testing.T, stdin []byte, args ...string) []byte {
		t.Helper()
		return c.MustKubectl(ctx, t, stdin, args...)
	}
	c.ApplyCRDs(ctx, t, append(kubetest.CertManagerCRDs, kubetest.ServiceMonitorCRD, kubetest.PrometheusCRD)...)
	kubectl(t, nil, "create", "namespace", "monitoring")

	for _, overlay := range []string{"standalone", "sidecar", "custom-metrics", "retraining-volume"} {
		t.Run(overlay, func(t *testing.T) {
			rendered := kubectl(t, nil, "kustomize", filepath.Join(dir, "overlays", overlay))
			if overlay == "retraining-volume" {
				// The CronJob's --promote is replaced by position: check it landed.
				for _, want := range []string{"- --promote=/var/lib/foresight/models", "- --model=auto", "- --model-store=/var/lib/foresight/models", "claimName: foresight-models"} {
					if !bytes.Contains(rendered, []byte(want)) {
						t.Errorf("rendered %s lacks %q", overlay, want)
					}
				}
				if bytes.Contains(rendered, []byte("configmap:foresight/foresight-model")) {
					t.Errorf("rendered %s still promotes into the ConfigMap store", overlay)
				}
			}
			// One field manager: the overlays are alternatives, and moving
			// from one to the other is a re-apply.
			out := kubectl(t, rendered, "apply", "--server-side", "--validate=strict", "-f", "-")
			t.Logf("%s", out)
		})
	}

	t.Run("retraining component", func(t *testing.T) {
		// The standalone overlay with the component added, as docs/training.md
		// tells an operator to do.
		tmp := t.TempDir()
		k := filepath.Join(tmp, "kustomization.yaml")
		rel := func(p string) string { // kustomize takes relative paths only
			r, err := filepath.Rel(tmp, p)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		text := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " +
			rel(filepath.Join(dir, "overlays", "standalone")) + "\ncomponents:\n  - " + rel(filepath.Join(dir, "components", "retraining")) + "\n"
		if err := os.WriteFile(k, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		rendered := kubectl(t, nil, "kustomize", "--load-restrictor=LoadRestrictionsNone", filepath.Dir(k))
		for _, want := range []string{"kind: CronJob", "--promote=configmap:foresight/foresight-model", "name: foresight-trainer"} {
			if !bytes.Contains(rendered, []byte(want)) {
				t.Errorf("rendered retraining overlay lacks %q", want)
			}
		}
		kubectl(t, rendered, "apply", "--server-side", "--validate=strict", "-f", "-")
	})

	t.Run("sidecar Prometheus patch", func(t *testing.T) {
		patch, err := os.ReadFile(filepath.Join(dir, "overlays", "sidecar", "prometheus-patch.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		// The documented command, on a minimal Prometheus…
		kubectl(t, []byte("apiVersion: monitoring.coreos.com/v1\nkind: Prometheus\nmetadata: {name: k8s, namespace: monitoring}\nspec: {}\n"),
			"apply", "--server-side", "--validate=strict", "-f", "-")
		kubectl(t, nil, "-n", "monitoring", "patch", "prometheus", "k8s", "--type=merge",
			"--patch-file="+filepath.Join(dir, "overlays", "sidecar", "prometheus-patch.yaml"))
		// …and the same spec through strict validation (patch does not
		// validate fields).
		var p map[string]any
		if err := yaml.Unmarshal(patch, &p); err != nil {
			t.Fatal(err)
		}
		p["apiVersion"], p["kind"] = "monitoring.coreos.com/v1", "Prometheus"
		p["metadata"] = map[string]any{"name": "k8s-strict", "namespace": "monitoring"}
		obj, err := yaml.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		kubectl(t, obj, "apply", "--server-side", "--validate=strict", "-f", "-")
		containers := kubectl(t, nil, "-n", "monitoring", "get", "prometheus", "k8s", "-o", "jsonpath={.spec.containers[*].name}")
		if string(containers) != "foresight" {
			t.Errorf("patched Prometheus containers = %q, want foresight", containers)
		}
	})

	t.Run("example HPAs", func(t *testing.T) {
		for _, f := range []string{"hpa-boutique.yaml", "hpa-object-boutique.yaml"} {
			path := filepath.Join(dir, "examples", f)
			kubectl(t, nil, "apply", "--server-side", "--validate=strict", "--dry-run=server", "-f", path)
		}
	})

	t.Run("Grafana dashboards ConfigMap", func(t *testing.T) {
		// In the foresight namespace the standalone overlay created.
		path := filepath.Join(dir, "components", "grafana-dashboards", "configmap.yaml")
		kubectl(t, nil, "apply", "--server-side", "--validate=strict", "--dry-run=server", "-f", path)
	})
}

// TestExampleHPAsCoverTheShippedModel: one HPA per service the built-in
// model forecasts, each reading that service's prediction.
func TestExampleHPAsCoverTheShippedModel(t *testing.T) {
	m, err := model.LoadFS(models.Demo())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "manifests", "examples", "hpa-boutique.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type hpa struct {
		Kind     string
		Metadata struct{ Name string }
		Spec     struct {
			ScaleTargetRef struct{ Kind, Name string }
			Metrics        []struct {
				Type     string
				External struct {
					Metric struct {
						Name     string
						Selector struct{ MatchLabels map[string]string }
					}
					Target struct {
						Type         string
						AverageValue string
					}
				}
			}
		}
	}
	var got []string
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	for {
		var h hpa
		if err := d.Decode(&h); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if h.Kind == "" {
			continue
		}
		name := h.Metadata.Name
		got = append(got, name)
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != name {
			t.Errorf("HPA %s scales %+v, want Deployment %s", name, h.Spec.ScaleTargetRef, name)
		}
		if len(h.Spec.Metrics) != 1 {
			t.Errorf("HPA %s has %d metrics, want 1", name, len(h.Spec.Metrics))
			continue
		}
		e := h.Spec.Metrics[0].External
		if h.Spec.Metrics[0].Type != "External" || e.Metric.Name != "foresight_predicted_replicas" ||
			e.Metric.Selector.MatchLabels["service"] != name || e.Target.Type != "AverageValue" || e.Target.AverageValue != "1" {
			t.Errorf("HPA %s metric = %+v, want External foresight_predicted_replicas{service=%s} AverageValue 1", name, h.Spec.Metrics[0], name)
		}
	}
	want := slices.Clone(m.Manifest().Services)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("example HPAs for %v, the shipped model forecasts %v", got, want)
	}
}
