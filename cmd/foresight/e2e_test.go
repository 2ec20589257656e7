package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/foresightscale/foresight/internal/kubetest"
	"github.com/foresightscale/foresight/internal/pki"
	"github.com/foresightscale/foresight/internal/testenv"
)

// The end-to-end tests install what an operator installs (manifests/) on a
// real control plane, run the real binary with the Deployment's own
// arguments, and let the stock HPA controller do the scaling.

const (
	hpaControllerUser = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
	// appNamespace is where the shipped config says the model's services
	// live, so where the example HPAs go.
	appNamespace = "default"
)

var apiServicesGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// TestManifestsOnRealControlPlane is the operator's path, end to end:
//
//  1. manifests/base (plus `foresight certs`) applied with server-side
//     validation;
//  2. foresight serve started with the Deployment's arguments as the
//     foresight ServiceAccount, registered through the APIService, the
//     aggregator verifying its certificate against the caBundle;
//  3. predictions read through the apiserver with kubectl;
//  4. the shipped example HPA scaling a Deployment to the prediction and
//     following a step in load up and down;
//  5. unauthenticated and unauthorised callers refused, the HPA controller
//     allowed only by the shipped ClusterRole;
//  6. Foresight stopped: the HPA holds its replicas; restarted: it recovers.
func TestManifestsOnRealControlPlane(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	repo := testenv.RepoRoot(t)

	// A hardened cluster: the HPA controller's built-in role cannot read
	// external metrics, so only the shipped ClusterRole can let it.
	trimBuiltInHPARole(ctx, t, c)
	waitForAccess(ctx, t, c, hpaControllerUser, false)

	// 1. Install, then re-apply the base (an upgrade): the caBundle stays.
	in := install(ctx, t, c, filepath.Join(repo, "manifests", "base"))
	base, certs, securePort, metricsPort := in.base, in.certs, in.securePort, in.metricsPort
	applyObjects(ctx, t, c, base)
	keepsCABundle(ctx, t, c, certs)
	waitForAccess(ctx, t, c, hpaControllerUser, true)

	// 2. Run Foresight as its pod would.
	stepAt := time.Now().Add(75 * time.Second).Truncate(30 * time.Second).Add(30 * time.Second)
	const highRows = 3 // 90 s of four times the load
	args := podArgs(t, base, certs, securePort, metricsPort, writeStepCSV(t, stepAt, highRows))
	args = append(args, serviceAccountArgs(ctx, t, c)...)
	s := runForesight(t, securePort, metricsPort, args)
	waitForAPIService(ctx, t, c, true, 90*time.Second)

	// 3. Read through the aggregation layer with the real kubectl.
	raw, err := c.Kubectl(ctx, t, nil, "get", "--raw", "/apis/external.metrics.k8s.io/v1beta1")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"foresight_predicted_replicas", "foresight_predicted_requests", "foresight_predicted_cpu_cores"} {
		if !strings.Contains(string(raw), `"`+m+`"`) {
			t.Errorf("metric list through the apiserver lacks %s:\n%s", m, raw)
		}
	}
	first := predictedReplicas(ctx, t, c, "frontend")
	t.Logf("kubectl get --raw through the apiserver: foresight_predicted_replicas{service=frontend} = %d", first)

	// 5. Security, directly against Foresight: delegated to the apiserver.
	t.Run("refuses unauthenticated and unauthorised callers", func(t *testing.T) {
		refusesStrangers(ctx, t, c, s)
	})

	// 4. The shipped example HPA follows the forecast.
	hpa := exampleHPA(t, repo, "frontend")
	createDeployment(ctx, t, c, "frontend")
	rec := recordHPA(ctx, t, c, hpa.Name, "frontend") // for the simulator cross-check
	if _, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(appNamespace).Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bounds := func(p int32) int32 { return min(max(p, *hpa.Spec.MinReplicas), hpa.Spec.MaxReplicas) }
	f := &follower{c: c, service: "frontend", bounds: bounds}
	f.watch(ctx, t, time.Until(stepAt), nil)
	if !f.settled() {
		t.Fatalf("before the step: Deployment at %d replicas, prediction %d", f.replicas, f.predicted)
	}
	low := f.predicted
	// Only what happens from the step on counts.
	f.peak, f.followedUp, f.followedDown = low, false, false
	t.Logf("before the step: Deployment settled at the prediction, %d replicas", low)
	// While the load is high: the forecast rises and the Deployment follows.
	fallAt := stepAt.Add(highRows * 30 * time.Second)
	f.watch(ctx, t, time.Until(fallAt), nil)
	if f.peak <= low || !f.followedUp {
		f.report(t)
		t.Fatalf("while the load quadrupled: prediction peaked at %d (before: %d), Deployment followed up: %v", f.peak, low, f.followedUp)
	}
	// After the load falls back: the forecast drops below its level at
	// the fall and the Deployment follows it down.
	atFall := f.predicted
	f.followedDown = false
	f.watch(ctx, t, 3*time.Minute, func() bool {
		return f.predicted < atFall && f.followedDown && f.settled() && time.Since(f.changedAt) > 15*time.Second
	})
	f.report(t)
	if f.predicted >= atFall || !f.followedDown || !f.settled() {
		t.Fatalf("after the load fell: prediction %d (at the fall %d), Deployment at %d, followed down: %v", f.predicted, atFall, f.replicas, f.followedDown)
	}
	// The simulator's HPA, replaying what the controller saw, decides alike.
	crosscheckHPA(t, rec, hpa)

	// 6. Resilience.
	held := f.replicas
	s.Stop()
	waitForAPIService(ctx, t, c, false, 90*time.Second)
	for range 5 { // five HPA sync periods
		time.Sleep(5 * time.Second)
		if r := deploymentReplicas(ctx, t, c, "frontend"); r != held {
			t.Fatalf("with Foresight down the Deployment went from %d to %d replicas; the HPA must hold", held, r)
		}
	}
	waitForHPACondition(ctx, t, c, "frontend", autoscalingv2.ScalingActive, corev1.ConditionFalse)
	t.Logf("Foresight stopped: APIService unavailable, the HPA kept %d replicas", held)
	restarted := time.Now()
	runForesight(t, securePort, metricsPort, args)
	waitForAPIService(ctx, t, c, true, 90*time.Second)
	waitForHPACondition(ctx, t, c, "frontend", autoscalingv2.ScalingActive, corev1.ConditionTrue)
	f.watch(ctx, t, time.Minute, f.settled)
	if !f.settled() {
		t.Fatalf("after the restart: prediction %d, Deployment at %d", f.predicted, f.replicas)
	}
	t.Logf("Foresight restarted: the HPA acts on it again after %v, Deployment at the prediction (%d)", time.Since(restarted).Round(time.Second), f.replicas)
}

// follower watches the published prediction and the Deployment together and
// measures how long the Deployment takes to reach each new prediction.
type follower struct {
	c       *kubetest.Cluster
	service string
	bounds  func(int32) int32

	predicted, replicas, peak int32
	changedAt                 time.Time
	pending                   bool
	up                        bool
	followedUp, followedDown  bool
	latencies                 []string
	samples                   []time.Duration
}

func (f *follower) settled() bool { return f.predicted > 0 && f.replicas == f.bounds(f.predicted) }

// watch polls every 250 ms for at most d, until done (if not nil) is true.
func (f *follower) watch(ctx context.Context, t *testing.T, d time.Duration, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		p := predictedReplicas(ctx, t, f.c, f.service)
		now := time.Now()
		if p != f.predicted {
			if f.pending {
				f.latencies = append(f.latencies, fmt.Sprintf("%d→%d superseded after %v", f.replicas, f.predicted, now.Sub(f.changedAt).Round(time.Millisecond)))
			}
			f.up = p > f.predicted
			f.predicted, f.changedAt, f.pending = p, now, f.predicted != 0
			f.peak = max(f.peak, p)
		}
		f.replicas = deploymentReplicas(ctx, t, f.c, f.service)
		if f.pending && f.settled() {
			lat := time.Since(f.changedAt)
			f.pending = false
			f.samples = append(f.samples, lat)
			f.latencies = append(f.latencies, fmt.Sprintf("→%d in %v", f.replicas, lat.Round(time.Millisecond)))
			if f.up {
				f.followedUp = true
			} else {
				f.followedDown = true
			}
		}
		if done != nil && done() {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (f *follower) report(t *testing.T) {
	t.Helper()
	t.Logf("forecast change → Deployment at the new count: %s", strings.Join(f.latencies, "; "))
	if len(f.samples) > 0 {
		s := slices.Clone(f.samples)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		t.Logf("forecast-to-replicas latency over %d changes: median %v, max %v (HPA sync period 5s)",
			len(s), s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
	}
}

// trimBuiltInHPARole removes external metrics from the HPA controller's
// bootstrap role and stops the apiserver from restoring it, as some
// hardened distributions do.
func trimBuiltInHPARole(ctx context.Context, t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	roles := c.Client.RbacV1().ClusterRoles()
	role, err := roles.Get(ctx, "system:controller:horizontal-pod-autoscaler", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kept := role.Rules[:0]
	for _, r := range role.Rules {
		if !slices.Contains(r.APIGroups, "external.metrics.k8s.io") {
			kept = append(kept, r)
		}
	}
	if len(kept) == len(role.Rules) {
		t.Fatalf("the built-in HPA role has no external metrics rule to remove: %+v", role.Rules)
	}
	role.Rules = kept
	role.Annotations["rbac.authorization.kubernetes.io/autoupdate"] = "false"
	if _, err := roles.Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitForAccess waits until the apiserver's RBAC says user may (or may not)
// list external metrics in the application namespace.
func waitForAccess(ctx context.Context, t *testing.T, c *kubetest.Cluster, user string, want bool) {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: appNamespace, Verb: "list", Group: "external.metrics.k8s.io", Resource: "foresight_predicted_replicas",
		},
	}}
	var got *authorizationv1.SubjectAccessReview
	for range 60 {
		var err error
		if got, err = c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed == want {
			t.Logf("%s may list external metrics: %v (%s)", user, want, got.Status.Reason)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s may list external metrics: %v, want %v (%s)", user, got.Status.Allowed, want, got.Status.Reason)
}

func decodeObjects(t testing.TB, stream []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 4096)
	for {
		var m map[string]any
		if err := d.Decode(&m); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatalf("decoding manifests: %v\n%s", err, stream)
		}
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

func findObject(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %q in the manifests", kind, name)
	return nil
}

// adaptForLoopback points the Service at Foresight on this machine: an
// ExternalName Service to localhost and the APIService on Foresight's port
// (the aggregator dials <externalName>:<port> and still checks the
// certificate against foresight.foresight.svc).
func adaptForLoopback(t testing.TB, objs []*unstructured.Unstructured, port int) {
	t.Helper()
	for _, o := range objs {
		switch o.GetKind() {
		case "Service":
			must(t, unstructured.SetNestedField(o.Object, "ExternalName", "spec", "type"))
			must(t, unstructured.SetNestedField(o.Object, "localhost", "spec", "externalName"))
			unstructured.RemoveNestedField(o.Object, "spec", "selector")
		case "APIService":
			must(t, unstructured.SetNestedField(o.Object, int64(port), "spec", "service", "port"))
			if skip, _, _ := unstructured.NestedBool(o.Object, "spec", "insecureSkipTLSVerify"); skip {
				t.Fatal("the shipped APIService skips TLS verification")
			}
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// applyObjects applies with the real kubectl with strict server-side field
// validation: an unknown or misspelt field fails the test.
func applyObjects(ctx context.Context, t testing.TB, c *kubetest.Cluster, objs []*unstructured.Unstructured, args ...string) {
	t.Helper()
	var stream bytes.Buffer
	for _, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		stream.WriteString("---\n")
		stream.Write(b)
	}
	out, err := c.Kubectl(ctx, t, stream.Bytes(), append([]string{"apply", "--validate=strict", "-f", "-"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl apply %v:\n%s", args, out)
}

// keepsCABundle checks the APIService still trusts the CA of the certs
// output after the base was applied again.
func keepsCABundle(ctx context.Context, t *testing.T, c *kubetest.Cluster, certs []*unstructured.Unstructured) {
	t.Helper()
	want, _, _ := unstructured.NestedString(findObject(t, certs, "APIService", metricsAPIs["external"].name).Object, "spec", "caBundle")
	dyn, err := dynamic.NewForConfig(c.Config)
	must(t, err)
	o, err := dyn.Resource(apiServicesGVR).Get(ctx, metricsAPIs["external"].name, metav1.GetOptions{})
	must(t, err)
	if got, _, _ := unstructured.NestedString(o.Object, "spec", "caBundle"); got == "" || got != want {
		t.Fatalf("re-applying the base changed the APIService's caBundle (%d bytes, want %d)", len(got), len(want))
	}
}

// installed is Foresight installed as an operator installs it, on loopback.
type installed struct {
	base, certs             []*unstructured.Unstructured
	securePort, metricsPort int
}

// install renders the kustomization at dir and `foresight certs` (with
// certsArgs), moves them to loopback ports, and applies them as
// docs/install.md says: the manifests with kubectl apply, the certificate
// server-side with a field manager of its own, so that re-applying the
// manifests (an upgrade) keeps the caBundle.
func install(ctx context.Context, t testing.TB, c *kubetest.Cluster, dir string, certsArgs ...string) installed {
	t.Helper()
	in := installed{securePort: freePort(t), metricsPort: freePort(t)}
	rendered, err := c.Kubectl(ctx, t, nil, "kustomize", dir)
	must(t, err)
	in.base = decodeObjects(t, rendered)
	certsOut, err := exec.CommandContext(ctx, foresightBinary(t), append([]string{"certs", "--namespace", "foresight"}, certsArgs...)...).Output()
	if err != nil {
		t.Fatalf("foresight certs: %v", err)
	}
	in.certs = decodeObjects(t, certsOut)
	for _, objs := range [][]*unstructured.Unstructured{in.base, in.certs} {
		adaptForLoopback(t, objs, in.securePort)
	}
	applyObjects(ctx, t, c, in.base)
	applyObjects(ctx, t, c, in.certs, "--server-side", "--field-manager=foresight-certs")
	return in
}

// serviceAccountArgs are the serve flags that make Foresight act as its
// ServiceAccount, as in its pod, and listen on loopback.
func serviceAccountArgs(ctx context.Context, t testing.TB, c *kubetest.Cluster) []string {
	t.Helper()
	kubeconfig, _, err := c.ServiceAccountKubeconfig(ctx, "foresight", "foresight")
	must(t, err)
	return []string{"--bind-address=127.0.0.1",
		"--authentication-kubeconfig=" + kubeconfig, "--authorization-kubeconfig=" + kubeconfig, "--lister-kubeconfig=" + kubeconfig}
}

// podArgs returns the Deployment's container arguments with the pod's
// paths and ports replaced by local ones: the mounted ConfigMap and Secret
// become files, the listeners move to loopback. The config is the shipped
// one with a CSV step-load source, a 5 s cycle and a frontend pod capacity
// that makes the step visible in replicas.
func podArgs(t *testing.T, base, certs []*unstructured.Unstructured, securePort, metricsPort int, csvPath string) []string {
	t.Helper()
	dir := t.TempDir()
	cm := findObject(t, base, "ConfigMap", "foresight-config")
	text, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
	var cfg map[string]any
	must(t, yaml.Unmarshal([]byte(text), &cfg))
	cfg["interval"] = "5s"
	policy, _ := cfg["policy"].(map[string]any)
	if policy == nil {
		t.Fatalf("the shipped config has no policy section:\n%s", text)
	}
	policy["services"] = map[string]any{"frontend": map[string]any{"capacityPerPod": 20}}
	cfgYAML, err := yaml.Marshal(cfg)
	must(t, err)
	cfgPath := filepath.Join(dir, "config.yaml")
	must(t, os.WriteFile(cfgPath, cfgYAML, 0o600))
	return append(deploymentArgs(t, base, certs, securePort, metricsPort, cfgPath), "--csv="+csvPath)
}

// deploymentArgs returns the shipped Deployment's arguments with the
// mounted config and Secret replaced by local files and the listeners
// moved to loopback.
func deploymentArgs(t testing.TB, base, certs []*unstructured.Unstructured, securePort, metricsPort int, cfgPath string) []string {
	t.Helper()
	dir := t.TempDir()
	deploy := findObject(t, base, "Deployment", "foresight")
	var d appsv1.Deployment
	must(t, runtime.DefaultUnstructuredConverter.FromUnstructured(deploy.Object, &d))
	i := slices.IndexFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == "foresight" })
	if i < 0 {
		t.Fatal("no foresight container in the Deployment")
	}
	args := slices.Clone(d.Spec.Template.Spec.Containers[i].Args)
	secret := findObject(t, certs, "Secret", "foresight-serving-cert")
	files := map[string]string{}
	for _, key := range []string{"tls.crt", "tls.key"} {
		enc, _, _ := unstructured.NestedString(secret.Object, "data", key)
		pem, err := base64.StdEncoding.DecodeString(enc)
		must(t, err)
		files[key] = filepath.Join(dir, key)
		must(t, os.WriteFile(files[key], pem, 0o600))
	}

	replace := map[string]string{
		"--config":               cfgPath,
		"--secure-port":          strconv.Itoa(securePort),
		"--tls-cert-file":        files["tls.crt"],
		"--tls-private-key-file": files["tls.key"],
		"--metrics-bind-address": fmt.Sprintf("127.0.0.1:%d", metricsPort),
	}
	for i, a := range args {
		name, _, ok := strings.Cut(a, "=")
		if v, known := replace[name]; ok && known {
			args[i] = name + "=" + v
			delete(replace, name)
		}
	}
	if len(replace) > 0 {
		t.Fatalf("the Deployment's args %v lack %v", args, replace)
	}
	return args
}

// writeStepCSV writes a replay file (30 s rows, cycling every two hours on
// the wall clock) whose load is low except for highRows rows from stepAt,
// when every service receives four times its usual request rate.
func writeStepCSV(t *testing.T, stepAt time.Time, highRows int) string {
	t.Helper()
	const rows, interval = 240, 30 * time.Second
	cycle := int64(rows * interval)
	firstHigh := int((stepAt.UnixNano() % cycle) / int64(interval))
	var b strings.Builder
	writeCSVHeader(&b, demoServices)
	start := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	for r := range rows {
		factor := 1.0
		if (r-firstHigh+rows)%rows < highRows {
			factor = 4
		}
		fmt.Fprintf(&b, "%d,%s", r, start.Add(time.Duration(r)*interval).Format("2006-01-02T15:04:05"))
		for n := range demoServices {
			req := factor * (30 + 2*float64(n) + 2*math.Sin(2*math.Pi*float64(r)/20+float64(n)))
			fmt.Fprintf(&b, ",%.4f,0.4,%.4f,0.05,2", 0.1+req/200, req)
		}
		b.WriteString("\n")
	}
	return writeFile(t, b.String())
}

// exampleHPA returns the HPA for service from manifests/examples.
func exampleHPA(t *testing.T, repo, service string) *autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repo, "manifests", "examples", "hpa-boutique.yaml"))
	must(t, err)
	o := findObject(t, decodeObjects(t, raw), "HorizontalPodAutoscaler", service)
	var hpa autoscalingv2.HorizontalPodAutoscaler
	must(t, runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &hpa))
	if hpa.Namespace != appNamespace {
		t.Fatalf("example HPA %s is in namespace %q, the shipped config serves %q", service, hpa.Namespace, appNamespace)
	}
	return &hpa
}

func createDeployment(ctx context.Context, t *testing.T, c *kubetest.Cluster, name string) {
	t.Helper()
	createDeploymentIn(ctx, t, c, appNamespace, name)
}

// createDeploymentIn creates a one-replica Deployment in namespace. Its
// container is named "app": service names may hold dots, which container
// names may not.
func createDeploymentIn(ctx context.Context, t *testing.T, c *kubetest.Cluster, namespace, name string) {
	t.Helper()
	labels := map[string]string{"app": name}
	one := int32(1)
	if _, err := c.Client.AppsV1().Deployments(namespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/" + name + ":1"}}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func deploymentReplicas(ctx context.Context, t *testing.T, c *kubetest.Cluster, name string) int32 {
	t.Helper()
	return deploymentReplicasIn(ctx, t, c, appNamespace, name)
}

func deploymentReplicasIn(ctx context.Context, t *testing.T, c *kubetest.Cluster, namespace, name string) int32 {
	t.Helper()
	d, err := c.Client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas
}

func predictedReplicas(ctx context.Context, t *testing.T, c *kubetest.Cluster, service string) int32 {
	t.Helper()
	return predictedReplicasIn(ctx, t, c, appNamespace, service)
}

// predictedReplicasIn reads foresight_predicted_replicas for service in
// namespace through the apiserver, as the HPA controller does; it retries
// briefly because the aggregator may be between discovery refreshes.
func predictedReplicasIn(ctx context.Context, t *testing.T, c *kubetest.Cluster, namespace, service string) int32 {
	t.Helper()
	path := "/apis/external.metrics.k8s.io/v1beta1/namespaces/" + namespace + "/foresight_predicted_replicas?labelSelector=" + url.QueryEscape("service="+service)
	var last error
	for range 20 {
		raw, err := c.Client.Discovery().RESTClient().Get().AbsPath("/").RequestURI(path).DoRaw(ctx)
		if err == nil {
			var list metricList
			if err = json.Unmarshal(raw, &list); err == nil {
				if len(list.Items) != 1 || list.Items[0].MetricLabels["service"] != service {
					err = fmt.Errorf("unexpected answer %s", raw)
				} else {
					v, perr := strconv.ParseInt(list.Items[0].Value, 10, 32)
					if perr == nil && v > 0 {
						return int32(v)
					}
					err = fmt.Errorf("value %q is not a positive replica count: %v", list.Items[0].Value, perr)
				}
			}
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("reading the prediction for %s/%s through the apiserver: %v", namespace, service, last)
	return 0
}

func waitForAPIService(ctx context.Context, t *testing.T, c *kubetest.Cluster, available bool, within time.Duration) {
	t.Helper()
	waitForAPIServiceNamed(ctx, t, c, metricsAPIs["external"].name, available, within)
}

func waitForAPIServiceNamed(ctx context.Context, t *testing.T, c *kubetest.Cluster, name string, available bool, within time.Duration) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(c.Config)
	must(t, err)
	want := "False"
	if available {
		want = "True"
	}
	var status, message string
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		o, err := dyn.Resource(apiServicesGVR).Get(ctx, name, metav1.GetOptions{})
		must(t, err)
		conditions, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
		for _, cond := range conditions {
			m, _ := cond.(map[string]any)
			if m["type"] == "Available" {
				status, _ = m["status"].(string)
				message, _ = m["message"].(string)
			}
		}
		if status == want {
			t.Logf("APIService Available=%s %s", status, message)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("APIService Available=%q after %v, want %s: %s", status, within, want, message)
}

func waitForHPACondition(ctx context.Context, t *testing.T, c *kubetest.Cluster, name string, ct autoscalingv2.HorizontalPodAutoscalerConditionType, want corev1.ConditionStatus) {
	t.Helper()
	var seen string
	for range 120 {
		hpa, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(appNamespace).Get(ctx, name, metav1.GetOptions{})
		must(t, err)
		for _, cond := range hpa.Status.Conditions {
			if cond.Type == ct {
				seen = fmt.Sprintf("%s=%s %s: %s", cond.Type, cond.Status, cond.Reason, cond.Message)
				if cond.Status == want {
					t.Logf("HPA %s", seen)
					return
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("HPA condition %s never became %s; last: %s", ct, want, seen)
}

// refusesStrangers talks to Foresight directly: no credentials, and a
// ServiceAccount without RBAC for external.metrics.k8s.io, are refused by
// Foresight's delegated authentication and authorization.
func refusesStrangers(ctx context.Context, t *testing.T, c *kubetest.Cluster, s *server) {
	if _, err := c.Client.CoreV1().ServiceAccounts(appNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, token, err := c.ServiceAccountKubeconfig(ctx, appNamespace, "nobody")
	must(t, err)
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec: only the status code matters here
	metric := s.secure + "/apis/external.metrics.k8s.io/v1beta1/namespaces/" + appNamespace + "/foresight_predicted_replicas"
	status := func(token string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, metric, nil)
		if err != nil {
			return 0, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := insecure.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// The admin (system:masters) reads the metric twice: the second answer
	// comes from the response cache, which must refuse the same strangers.
	adminTLS, err := rest.TLSConfigFor(c.Config)
	must(t, err)
	adminTLS = adminTLS.Clone()
	adminTLS.InsecureSkipVerify = true // #nosec: the admin's certificate is what is under test
	admin := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: adminTLS}}
	for range 2 {
		if code, body, err := get(admin, metric); err != nil || code != http.StatusOK {
			t.Fatalf("admin: status %d, %v: %s", code, err, body)
		}
	}
	_, body, err := get(&http.Client{Timeout: 5 * time.Second}, s.metrics+"/metrics")
	must(t, err)
	if hits, _ := metricValue(body, "foresight_api_response_cache_requests_total", `result="hit"`); hits < 1 {
		t.Errorf("the admin's second GET was not answered from the response cache (hits %v)", hits)
	}
	if code, err := status(token); err != nil || code != http.StatusForbidden {
		t.Errorf("service account without RBAC: status %d, %v; want 403", code, err)
	}
	if code, err := status(""); err != nil || (code != http.StatusUnauthorized && code != http.StatusForbidden) {
		t.Errorf("no credentials: status %d, %v; want 401 or 403", code, err)
	}
	// A certificate that names the admin's user and group but no CA the
	// cluster trusts signed.
	forger, err := pki.NewCA("forger", time.Now())
	must(t, err)
	certPEM, keyPEM, err := forger.Sign(x509.Certificate{Subject: pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, time.Now())
	must(t, err)
	forged, err := tls.X509KeyPair(certPEM, keyPEM)
	must(t, err)
	forgedClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, Certificates: []tls.Certificate{forged}}}} // #nosec: only the status code matters here
	if code, body, err := get(forgedClient, metric); err != nil || (code != http.StatusUnauthorized && code != http.StatusForbidden) {
		t.Errorf("a forged admin certificate: status %d, %v; want 401 or 403: %s", code, err, body)
	}
}
