package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/kubetest"
	"github.com/foresightscale/foresight/internal/meshtest"
	"github.com/foresightscale/foresight/internal/promtest"
	"github.com/foresightscale/foresight/internal/testenv"
	"github.com/foresightscale/foresight/models/store"
)

// TestRetrainJobPromotesIntoTheConfigMapStore runs the retraining CronJob's
// command the way its Job would: the component's RBAC applied on the real
// control plane, the container's arguments from cronjob.yaml, the
// ServiceAccount foresight-trainer's token, and a real Prometheus holding
// twelve hours of a synthetic six-service application up to now.
// The first run finds an empty store and promotes a rough model; a running
// serve reads it; a properly trained challenger is promoted and serve swaps
// it in; a run on an eighth of the history, one epoch, is backtested against
// that champion and kept out; the trainer cannot write ConfigMaps outside
// the store's names. The history ends now, so its load differs from run to
// run: the kept challenger is the clearly weaker one (1.25× the champion's
// error in two runs, against 1.04× for one trained on a quarter).
func TestRetrainJobPromotesIntoTheConfigMapStore(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	component := filepath.Join(testenv.RepoRoot(t), "manifests", "components", "retraining")
	kubectl := func(stdin []byte, args ...string) []byte {
		t.Helper()
		return c.MustKubectl(ctx, t, stdin, args...)
	}
	// The base as an operator installs it, then the component's objects.
	in := install(ctx, t, c, filepath.Join(testenv.RepoRoot(t), "manifests", "base"))
	kubectl(nil, "apply", "--server-side", "--validate=strict", "-f", filepath.Join(component, "rbac.yaml"), "-f", filepath.Join(component, "cronjob.yaml"))
	kubeconfig, _, err := c.ServiceAccountKubeconfig(ctx, "foresight", "foresight-trainer")
	must(t, err)

	// The Job's arguments, with its config file replaced by one that reads
	// the test's Prometheus.
	b, err := os.ReadFile(filepath.Join(component, "cronjob.yaml"))
	must(t, err)
	var cj struct {
		Spec struct {
			JobTemplate struct {
				Spec struct {
					Template struct {
						Spec struct {
							Containers []struct{ Args []string } `json:"containers"`
						} `json:"spec"`
					} `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		} `json:"spec"`
	}
	must(t, yaml.Unmarshal(b, &cj))
	jobArgs := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args

	end := time.Now().Add(-time.Minute).Truncate(30 * time.Second)
	history := layeredHistoryEndingAt(t, meshtest.Layered(6, 3, 6), source.AllFeatures, end, 12*time.Hour, 30*time.Second)
	srv := promtest.Start(t, promtest.Options{Backfill: promtest.WriteOpenMetricsFile(t, "default", history)})
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	must(t, os.WriteFile(cfgPath, []byte("namespace: default\nsource:\n  prometheus:\n    url: "+srv.URL()+"\n"), 0o600))

	args := func(history string, epochs string) []string {
		var out []string
		for _, a := range jobArgs[1:] { // [0] is the subcommand
			switch {
			case strings.HasPrefix(a, "--config="):
				a = "--config=" + cfgPath
			case strings.HasPrefix(a, "--history="):
				a = "--history=" + history
			}
			out = append(out, a)
		}
		// Shortened: a few epochs, not the default 40.
		return append(out, "--kubeconfig="+kubeconfig, "--epochs="+epochs)
	}
	if jobArgs[0] != "train" || !strings.Contains(strings.Join(jobArgs, " "), "--promote=configmap:foresight/foresight-model") {
		t.Fatalf("the CronJob's arguments changed: %v", jobArgs)
	}

	// A first, rough model (one epoch): the store is empty, and an operator
	// bootstrapping it may accept a model a little worse than last value.
	log, err := runTrain(t, append(args("12h", "1"), "--max-last-value-ratio=1.2")...)
	if err != nil {
		t.Fatalf("first retrain: %v\n%s", err, log)
	}
	if !strings.Contains(log, "promoted: no champion to beat") {
		t.Fatalf("first retrain did not promote:\n%s", log)
	}
	cm, err := c.Client.CoreV1().ConfigMaps("foresight").Get(ctx, "foresight-model", metav1.GetOptions{})
	must(t, err)
	version := cm.Annotations[store.VersionAnnotation]
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, model.ONNXFile), cm.BinaryData[model.ONNXFile], 0o600))
	must(t, os.WriteFile(filepath.Join(dir, model.ManifestFile), []byte(cm.Data[model.ManifestFile]), 0o600))
	if _, err := model.Load(dir); err != nil || version == "" || cm.Data["report.json"] == "" {
		t.Fatalf("the store's model (version %q) does not load: %v", version, err)
	}

	// serve, as its ServiceAccount, reads the model from the store.
	serveCfg := filepath.Join(t.TempDir(), "serve.yaml")
	must(t, os.WriteFile(serveCfg, []byte("namespace: default\ninterval: 5s\nmodelReload: 1s\nmodel: configmap:foresight/foresight-model\n"+
		"source:\n  prometheus:\n    url: "+srv.URL()+"\npolicy:\n  capacityPerPod: 50\n"), 0o600))
	s := runForesight(t, in.securePort, in.metricsPort, append(deploymentArgs(t, in.base, in.certs, in.securePort, in.metricsPort, serveCfg), serviceAccountArgs(ctx, t, c)...))
	reloads := func() string {
		_, body, err := get(&http.Client{Timeout: 5 * time.Second}, s.metrics+"/metrics")
		if err != nil {
			return ""
		}
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "foresight_model_reloads_total{") && strings.Contains(line, `result="loaded"`) {
				return line
			}
		}
		return "none"
	}
	for deadline := time.Now().Add(time.Minute); reloads() == "" && time.Now().Before(deadline); time.Sleep(time.Second) {
	}
	if got := reloads(); got != "none" && !strings.HasSuffix(got, " 0") {
		t.Fatalf("serve reloaded before any promotion: %s\n%s", got, s.log())
	}

	// A challenger trained properly (the Job's rules): promoted, and the
	// running serve swaps it in.
	time.Sleep(time.Second) // a new version name
	log, err = runTrain(t, args("12h", "6")...)
	if err != nil {
		t.Fatalf("second retrain: %v\n%s", err, log)
	}
	if !strings.Contains(log, "promoted: mean MAE") {
		t.Fatalf("a challenger trained for 6 epochs did not beat the 1-epoch champion:\n%s", log)
	}
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if got = reloads(); strings.HasSuffix(got, " 1") {
			break
		}
	}
	if !strings.HasSuffix(got, " 1") {
		t.Fatalf("serve did not pick up the promoted model: %s\n%s", got, s.log())
	}
	t.Logf("serve loaded the promoted model: %s", got)
	cm, err = c.Client.CoreV1().ConfigMaps("foresight").Get(ctx, "foresight-model", metav1.GetOptions{})
	must(t, err)
	version = cm.Annotations[store.VersionAnnotation]
	_, body, err := get(&http.Client{Timeout: 5 * time.Second}, s.metrics+"/metrics")
	must(t, err)
	for _, want := range []string{`foresight_model_heldout_mae_ratio{app="default",step="1"}`, `foresight_model_heldout_to_champion_ratio{app="default"}`, `foresight_model_trained_timestamp_seconds{app="default"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s after the promoted model loaded", want)
		}
	}

	// A challenger trained on an eighth of the history, one epoch, against
	// that properly trained champion: kept.
	log, err = runTrain(t, args("90m", "1")...)
	if err != nil {
		t.Fatalf("third retrain: %v\n%s", err, log)
	}
	if !strings.Contains(log, "kept: ") {
		t.Fatalf("a challenger trained on 90 min, one epoch, was not kept out:\n%s", log)
	}
	cm, err = c.Client.CoreV1().ConfigMaps("foresight").Get(ctx, "foresight-model", metav1.GetOptions{})
	must(t, err)
	if cm.Annotations[store.VersionAnnotation] != version {
		t.Errorf("the store's version changed to %s after a kept challenger", cm.Annotations[store.VersionAnnotation])
	}
	if d := cm.Annotations[store.DecisionAnnotation]; !strings.Contains(d, `"promote":false`) {
		t.Errorf("the store's last decision %q: want the kept challenger", d)
	}
	evs, err := c.Client.EventsV1().Events("foresight").List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=foresight-model"})
	must(t, err)
	var reasons []string
	for _, e := range evs.Items {
		reasons = append(reasons, e.Reason)
	}
	if !slices.Contains(reasons, "ModelPromoted") || !slices.Contains(reasons, "ModelKept") {
		t.Errorf("Events on foresight-model: %v; want ModelPromoted and ModelKept", reasons)
	}

	// Least privilege: the trainer may not touch serve's configuration.
	out, _ := c.Kubectl(ctx, t, nil, "--kubeconfig="+kubeconfig, "auth", "can-i", "update", "configmap/foresight-config", "-n", "foresight")
	if strings.TrimSpace(string(out)) != "no" {
		t.Errorf("the trainer may update foresight-config: %q", out)
	}
}
