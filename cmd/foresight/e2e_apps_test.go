package main

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/internal/kubetest"
	"github.com/foresightscale/foresight/internal/meshtest"
	"github.com/foresightscale/foresight/internal/promtest"
	"github.com/foresightscale/foresight/internal/testenv"
	"github.com/foresightscale/foresight/models/training"
)

// e2eApp is one application of TestAnyApplicationsEndToEnd.
type e2eApp struct {
	name, namespace string
	flavour         meshtest.Flavour
	graph           topology.Graph // what discovery must find
	live            topology.Graph // what runs, with services added later
	gen             *synthetic.Generator
	firstSeen       map[string]time.Time
	modelDir        string
	callGraph       string
}

// TestAnyApplicationsEndToEnd is issue 13's acceptance test, on the real
// Prometheus and the real control plane: two applications that are not
// Online Boutique, Istio's Bookinfo with Istio-shaped series and a
// 40-service application three calls deep with Linkerd-shaped series, whose
// history is backfilled into Prometheus. For each, `foresight topology`
// recovers the call graph exactly and `foresight train --config` trains a
// model that beats last value at every horizon on the held-out part; one
// `foresight serve` then publishes both applications in their namespaces,
// a stock HPA in the second scales a Deployment to its prediction, and a
// service added to the second application after its model was trained is
// served by the fallback and reported.
func TestAnyApplicationsEndToEnd(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	repo := testenv.RepoRoot(t)
	dir := t.TempDir()

	const step = time.Minute
	now := time.Now().Truncate(step)
	histStart, histEnd := now.Add(-12*time.Hour), now.Add(30*time.Minute)
	trainEnd := now.Add(-40 * time.Minute)
	const late = "ts-late.service"
	lateFrom := now.Add(-20 * time.Minute)

	apps := []*e2eApp{
		{name: "bookinfo", namespace: "bookinfo", flavour: meshtest.Istio, graph: meshtest.Bookinfo()},
		{name: "shop", namespace: "shop", flavour: meshtest.Linkerd, graph: meshtest.Layered(40, 3, 7),
			firstSeen: map[string]time.Time{late: lateFrom}},
	}
	var mesh []meshtest.Options
	for i, a := range apps {
		a.live = topology.Graph{Services: slices.Clone(a.graph.Services), Edges: slices.Clone(a.graph.Edges)}
		if a.firstSeen != nil {
			a.live.Services = append(a.live.Services, late)
			a.live.Edges = append(a.live.Edges, topology.Edge{Caller: a.graph.Roots()[0], Callee: late, FanOut: 0.5})
		}
		sc := synthetic.DefaultConfig()
		sc.Services, sc.Seed = nil, uint64(11+i)
		gen, err := synthetic.New(sc, a.live)
		must(t, err)
		a.gen = gen
		mesh = append(mesh, meshtest.Options{Flavour: a.flavour, Namespace: a.namespace, Generator: gen, Graph: a.live,
			Start: histStart, End: histEnd, Step: step, FirstSeen: a.firstSeen})
	}
	prom := promtest.Start(t, promtest.Options{Backfill: meshtest.WriteOpenMetricsFile(t, mesh[0], mesh[1:]...)})

	// The root of the second application gets a pod capacity that needs a
	// few replicas now, so the HPA has something to do.
	shop := apps[1]
	root := shop.graph.Roots()[0]
	rootState, _ := shop.gen.At(now).Service(root)
	rootCapacity := math.Round(rootState.Requests/4*100) / 100
	cfgPath := filepath.Join(dir, "config.yaml")
	writeAppsConfig(t, cfgPath, prom.URL(), apps, root, rootCapacity)

	for _, a := range apps {
		t.Run("topology "+a.name, func(t *testing.T) { discoverAndCheck(t, a, prom.URL(), trainEnd, dir) })
	}
	for _, a := range apps {
		t.Run("train "+a.name, func(t *testing.T) {
			trainAndCheck(t, a, cfgPath, prom.URL(), histStart, trainEnd)
		})
	}
	if t.Failed() {
		t.FailNow()
	}

	// One foresight serve for both, installed as an operator installs it.
	for _, a := range apps {
		_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: a.namespace}}, metav1.CreateOptions{})
		must(t, err)
	}
	in := install(ctx, t, c, filepath.Join(repo, "manifests", "base"))
	args := append(deploymentArgs(t, in.base, in.certs, in.securePort, in.metricsPort, cfgPath), serviceAccountArgs(ctx, t, c)...)
	s := runForesight(t, in.securePort, in.metricsPort, args)
	waitForAPIService(ctx, t, c, true, 90*time.Second)

	// Both applications are published, each in its own namespace.
	for _, a := range apps {
		r := predictedReplicasIn(ctx, t, c, a.namespace, a.graph.Roots()[0])
		t.Logf("%s: foresight_predicted_replicas{service=%s} in namespace %s = %d", a.name, a.graph.Roots()[0], a.namespace, r)
	}

	// A stock HPA in the second namespace scales a Deployment to the prediction.
	hpa := exampleHPA(t, repo, "frontend")
	hpa.Name, hpa.Namespace = root, shop.namespace
	hpa.Spec.ScaleTargetRef.Name = root
	hpa.Spec.Metrics[0].External.Metric.Selector.MatchLabels = map[string]string{"service": root}
	createDeploymentIn(ctx, t, c, shop.namespace, root)
	_, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(shop.namespace).Create(ctx, hpa, metav1.CreateOptions{})
	must(t, err)
	var predicted, replicas int32
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		predicted = predictedReplicasIn(ctx, t, c, shop.namespace, root)
		if replicas = deploymentReplicasIn(ctx, t, c, shop.namespace, root); predicted > 1 && replicas == predicted {
			break
		}
	}
	if predicted <= 1 || replicas != predicted {
		t.Fatalf("Deployment %s/%s at %d replicas, prediction %d: want the HPA to reach a prediction above 1", shop.namespace, root, replicas, predicted)
	}
	t.Logf("the stock HPA scaled %s/%s from 1 to the prediction, %d replicas", shop.namespace, root, replicas)

	// The service added after training is served by the fallback, and said.
	lateReplicas := predictedReplicasIn(ctx, t, c, shop.namespace, late)
	_, body, err := get(&http.Client{Timeout: 5 * time.Second}, s.metrics+"/metrics")
	must(t, err)
	for _, want := range []string{
		`foresight_predicted_replicas{app="shop",horizon="120s",model="fallback",namespace="shop",service="` + late + `"}`,
		`foresight_service_coverage{app="shop",coverage="fallback",service="` + late + `"} 1`,
		`foresight_service_coverage{app="bookinfo",coverage="model",service="productpage"} 1`,
		`foresight_predicted_replicas{app="bookinfo",horizon="120s",model="bookinfo-gnn",namespace="bookinfo",service="reviews"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.Contains(line, `service="`+root+`"`) && (strings.HasPrefix(line, "foresight_predicted_requests{") || strings.HasPrefix(line, "foresight_observed_requests{")) {
			t.Logf("%s (capacity %v req/s per pod)", line, rootCapacity)
		}
	}
	if log := s.log(); !strings.Contains(log, "not in the model") || !strings.Contains(log, late) {
		t.Errorf("the unmodelled service was not reported in the log:\n%s", log)
	}
	t.Logf("%s, added after training, is served by the fallback: %d replicas", late, lateReplicas)
}

// writeAppsConfig writes serve's (and train's) configuration: one shared
// Prometheus, one application per namespace with its mesh's queries.
func writeAppsConfig(t *testing.T, path, promURL string, apps []*e2eApp, root string, rootCapacity float64) {
	t.Helper()
	var list []map[string]any
	for _, a := range apps {
		a.modelDir = filepath.Join(filepath.Dir(path), a.name+"-model")
		queries := map[string]string{}
		for f, q := range meshtest.Queries(a.flavour) {
			queries[string(f)] = q
		}
		app := map[string]any{"name": a.name, "namespace": a.namespace, "model": a.modelDir, "queries": queries}
		if a.firstSeen != nil {
			app["policy"] = map[string]any{"capacityPerPod": 50, "services": map[string]any{root: map[string]any{"capacityPerPod": rootCapacity}}}
		}
		list = append(list, app)
	}
	cfg := map[string]any{
		"interval": "15s",
		"source":   map[string]any{"prometheus": map[string]any{"url": promURL}},
		"policy":   map[string]any{"capacityPerPod": 50},
		"apps":     list,
	}
	b, err := yaml.Marshal(cfg)
	must(t, err)
	must(t, os.WriteFile(path, b, 0o600))
}

// discoverAndCheck runs `foresight topology` on the application's namespace
// and requires exactly its call graph, fan-outs within 5 %.
func discoverAndCheck(t *testing.T, a *e2eApp, promURL string, at time.Time, dir string) {
	a.callGraph = filepath.Join(dir, a.name+"-callgraph.csv")
	_, stderr, err := execute(newTopologyCommand(), time.Minute, "--prometheus-url", promURL, "--namespace", a.namespace,
		"--at", at.Format(time.RFC3339), "--window", "1h", "--format", "csv", "--out", a.callGraph)
	if err != nil {
		t.Fatalf("foresight topology: %v\n%s", err, stderr)
	}
	f, err := os.Open(a.callGraph)
	must(t, err)
	defer f.Close()
	got, err := topology.ParseCallGraphCSV(f, nil)
	must(t, err)
	key := func(e topology.Edge) string { return e.Caller + "→" + e.Callee }
	want := map[string]float64{}
	for _, e := range a.graph.Edges {
		want[key(e)] = e.FanOut
	}
	if len(got.Edges) != len(want) {
		t.Errorf("discovered %d edges, want %d", len(got.Edges), len(want))
	}
	for _, e := range got.Edges {
		fan, ok := want[key(e)]
		switch {
		case !ok:
			t.Errorf("discovered an edge that does not exist: %s", key(e))
		case math.Abs(e.FanOut-fan) > 0.05*fan:
			t.Errorf("%s: fan-out %v, want %v", key(e), e.FanOut, fan)
		}
	}
	t.Logf("%s (%s): %d services, %d edges recovered; %s", a.name, a.flavour, len(got.Services), len(got.Edges), strings.TrimSpace(stderr))
}

// trainAndCheck trains the application's model from Prometheus with the
// shared configuration and requires its held-out request-rate MAE at or
// below last value's at every horizon.
func trainAndCheck(t *testing.T, a *e2eApp, cfgPath, promURL string, start, end time.Time) {
	started := time.Now()
	// The Istio application discovers its call graph while training (as a
	// scheduled retrain does), the other reads the file topology wrote.
	graphArg := a.callGraph
	if a.flavour == meshtest.Istio {
		graphArg = "discover:istio"
	}
	_, stderr, err := execute(newTrainCommand(), 5*time.Minute, "--prometheus-url", promURL, "--config", cfgPath, "--app", a.name,
		"--start", start.Format(time.RFC3339), "--end", end.Format(time.RFC3339), "--step", "1m",
		"--call-graph", graphArg, "--epochs", "10", "--out", a.modelDir)
	if err != nil {
		t.Fatalf("foresight train: %v\n%s", err, stderr)
	}
	b, err := os.ReadFile(filepath.Join(a.modelDir, "report.json"))
	must(t, err)
	var r training.Report
	must(t, json.Unmarshal(b, &r))
	if r.Data == nil || len(r.Data.Services) != len(a.graph.Services) || r.Data.Edges != len(a.graph.Edges) {
		t.Fatalf("trained on %+v, want %d services and %d edges", r.Data, len(a.graph.Services), len(a.graph.Edges))
	}
	if r.Test == nil {
		t.Fatal("no held-out evaluation in report.json")
	}
	ratios := make([]string, len(r.Test.MAEByHorizon))
	for h, mae := range r.Test.MAEByHorizon {
		last := r.Test.LastValueMAEByHorizon[h]
		ratios[h] = strconv.FormatFloat(mae/last, 'f', 3, 64)
		if mae > last {
			t.Errorf("step %d: held-out MAE %.4g above last value's %.4g", h+1, mae, last)
		}
	}
	t.Logf("%s: trained in %v (%d epochs, %d windows); held-out MAE / last value by horizon: %s",
		a.name, time.Since(started).Round(time.Second), r.Epochs, r.Windows.Train, strings.Join(ratios, " "))
}
