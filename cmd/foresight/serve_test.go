package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/foresightscale/foresight/internal/fakeprom"
	"github.com/foresightscale/foresight/internal/testenv"
	"github.com/foresightscale/foresight/internal/testproc"
)

// These tests run the real foresight binary, as a user would.

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

func foresightBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "foresight-bin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "foresight")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func freePort(t testing.TB) int {
	t.Helper()
	port, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

type server struct {
	secure, metrics string
	securePort      int
	demoDir         string
	// proc is the process, for signals (SIGHUP).
	proc     *os.Process
	output   *strings.Builder
	outputMu *sync.Mutex
	// Stop interrupts the process and waits for it; it is safe to call more
	// than once and always runs when the test ends.
	Stop func()
}

func (s *server) log() string {
	s.outputMu.Lock()
	defer s.outputMu.Unlock()
	return s.output.String()
}

// startServe runs `foresight serve` on free loopback ports and stops it when
// the test ends.
func startServe(t *testing.T, args ...string) *server {
	t.Helper()
	securePort, metricsPort := freePort(t), freePort(t)
	demoDir := t.TempDir()
	args = append([]string{"serve", "--secure-port", fmt.Sprint(securePort), "--metrics-bind-address",
		fmt.Sprintf("127.0.0.1:%d", metricsPort), "--demo-dir", demoDir}, args...)
	s := runForesight(t, securePort, metricsPort, args)
	s.demoDir = demoDir
	return s
}

// runForesight runs the binary with exactly args, which must make it listen
// on the given loopback ports.
func runForesight(t *testing.T, securePort, metricsPort int, args []string) *server {
	t.Helper()
	s := &server{output: &strings.Builder{}, outputMu: &sync.Mutex{}, securePort: securePort}
	s.secure = fmt.Sprintf("https://127.0.0.1:%d", securePort)
	s.metrics = fmt.Sprintf("http://127.0.0.1:%d", metricsPort)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, foresightBinary(t), args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.proc = cmd.Process
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			s.outputMu.Lock()
			s.output.WriteString(sc.Text() + "\n")
			s.outputMu.Unlock()
		}
	}()
	var once sync.Once
	s.Stop = func() {
		once.Do(func() {
			cancel()
			<-done
			_ = cmd.Wait()
		})
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("foresight output:\n%s", s.log())
		}
	})
	return s
}

// waitFor polls check every 100 ms until it returns nil or 30 s pass.
func waitFor(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after 30s: %v", what, err)
}

// waitReady waits until serve's /readyz answers 200.
func waitReady(t *testing.T, s *server) {
	t.Helper()
	plain := &http.Client{Timeout: 5 * time.Second}
	waitFor(t, "readyz", func() error {
		code, body, err := get(plain, s.metrics+"/readyz")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d: %s", code, body)
		}
		return err
	})
}

func get(client *http.Client, u string) (int, string, error) {
	resp, err := client.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// demoClient trusts the demo CA and presents the demo client certificate,
// exactly what the printed curl line does.
func demoClient(t testing.TB, dir string, withCert bool) *http.Client {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if withCert {
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

type metricList struct {
	Items []struct {
		MetricName   string            `json:"metricName"`
		MetricLabels map[string]string `json:"metricLabels"`
		Value        string            `json:"value"`
	} `json:"items"`
}

func TestServeDemoEndToEnd(t *testing.T) {
	s := startServe(t)
	plain := &http.Client{Timeout: 5 * time.Second}
	waitReady(t, s)
	// The printed help must hold a kubectl line and a curl line that work:
	// the curl line's files are what demoClient uses.
	out := s.log()
	for _, want := range []string{"kubectl --kubeconfig " + filepath.Join(s.demoDir, "kubeconfig") + " get --raw /apis/external.metrics.k8s.io/v1beta1/namespaces/default/foresight_predicted_replicas",
		"curl --cacert " + filepath.Join(s.demoDir, "ca.crt"), "Foresight demo: synthetic Online Boutique workload, built-in model."} {
		if !strings.Contains(out, want) {
			t.Errorf("startup output lacks %q", want)
		}
	}
	kubeconfig, err := os.ReadFile(filepath.Join(s.demoDir, "kubeconfig"))
	if err != nil || !strings.Contains(string(kubeconfig), s.secure) {
		t.Errorf("kubeconfig does not point at %s: %v\n%s", s.secure, err, kubeconfig)
	}

	client := demoClient(t, s.demoDir, true)
	base := s.secure + "/apis/external.metrics.k8s.io/v1beta1"
	tests := []struct {
		name      string
		path      string
		wantCode  int
		wantItems int // -1: not a metric list
		wantBody  string
	}{
		{"discovery lists the metrics", "", 200, -1, "foresight_predicted_replicas"},
		{"all services", "/namespaces/default/foresight_predicted_replicas", 200, 10, ""},
		{"label selector", "/namespaces/default/foresight_predicted_replicas?labelSelector=" + url.QueryEscape("service=frontend"), 200, 1, ""},
		{"requests", "/namespaces/default/foresight_predicted_requests", 200, 10, ""},
		{"cpu", "/namespaces/default/foresight_predicted_cpu_cores?labelSelector=" + url.QueryEscape("service in (cartservice,adservice)"), 200, 2, ""},
		{"other namespace is empty", "/namespaces/other/foresight_predicted_replicas", 200, 0, ""},
		{"unknown metric", "/namespaces/default/foresight_nonsense", 404, -1, "foresight_nonsense"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body, err := get(client, base+tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("GET %s = %d %s; want %d containing %q", tc.path, code, body, tc.wantCode, tc.wantBody)
			}
			if tc.wantItems < 0 {
				return
			}
			var list metricList
			if err := json.Unmarshal([]byte(body), &list); err != nil {
				t.Fatal(err)
			}
			if len(list.Items) != tc.wantItems {
				t.Fatalf("%d items, want %d: %s", len(list.Items), tc.wantItems, body)
			}
			for _, it := range list.Items {
				if it.MetricLabels["service"] == "" || it.Value == "" || strings.HasPrefix(it.Value, "-") || it.Value == "0" && it.MetricName == "foresight_predicted_replicas" {
					t.Errorf("bad item %+v", it)
				}
			}
		})
	}

	t.Run("no client certificate is refused", func(t *testing.T) {
		code, _, err := get(demoClient(t, s.demoDir, false), base+"/namespaces/default/foresight_predicted_replicas")
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusUnauthorized && code != http.StatusForbidden {
			t.Errorf("status %d, want 401 or 403", code)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		_, body, err := get(plain, s.metrics+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`foresight_predicted_replicas{app="default",horizon="120s",model="boutique-gnn",namespace="default",service="frontend"}`,
			`foresight_predicted_requests{`, `foresight_predicted_cpu_cores{`, `foresight_forecast_requests{`,
			`foresight_cycle_duration_seconds_count`, `foresight_inference_duration_seconds_count`,
			`foresight_last_success_timestamp_seconds`, `foresight_model_info{`, `foresight_cycles_total{app="default",result="ok"}`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

func TestServeUnreachablePrometheusPublishesNothing(t *testing.T) {
	// Port 1 on loopback: nothing listens, so every fetch is refused at once.
	s := startServe(t, "--prometheus-url", "http://127.0.0.1:1", "--demo", "--config", writeFile(t, "policy:\n  capacityPerPod: 50\ninterval: 1s\n"))
	plain := &http.Client{Timeout: 5 * time.Second}
	waitFor(t, "a counted source error", func() error {
		_, body, err := get(plain, s.metrics+"/metrics")
		if err == nil && !strings.Contains(body, `foresight_source_errors_total{app="default",kind="unreachable",source="prometheus"}`) {
			err = fmt.Errorf("no unreachable error counted yet")
		}
		return err
	})
	code, body, err := get(plain, s.metrics+"/readyz")
	if err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("readyz = %d %q, %v; want 503 while no cycle succeeded", code, body, err)
	}
	code, body, err = get(demoClient(t, s.demoDir, true), s.secure+"/apis/external.metrics.k8s.io/v1beta1/namespaces/default/foresight_predicted_replicas")
	if err != nil || code != http.StatusOK || strings.Contains(body, `"value"`) {
		t.Errorf("external metric = %d %s, %v; want an empty list (the HPA holds)", code, body, err)
	}
	_, metrics, _ := get(plain, s.metrics+"/metrics")
	if strings.Contains(metrics, "foresight_predicted_replicas{") {
		t.Error("/metrics publishes predictions although no cycle succeeded")
	}
	// --demo with a real source: the banner says so, not the synthetic workload.
	if out := s.log(); !strings.Contains(out, "Foresight demo: Prometheus at http://127.0.0.1:1, built-in model.") || strings.Contains(out, "Online Boutique") {
		t.Errorf("the demo banner does not say the source actually used:\n%s", out)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestServeRefusesBadInput: a broken model or config stops the process at
// start with an error naming the problem, before anything is served.
func TestServeRefusesBadInput(t *testing.T) {
	brokenModel := t.TempDir()
	if err := os.WriteFile(filepath.Join(brokenModel, "model.onnx"), []byte("not a model"), 0o600); err != nil {
		t.Fatal(err)
	}
	manifest, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "models", "demo", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(brokenModel, "manifest.json"), manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"broken model file", []string{"--model", brokenModel}, "model.onnx"},
		{"missing model dir", []string{"--model", filepath.Join(t.TempDir(), "absent")}, "absent: no such directory"},
		{"unknown config key", []string{"--config", writeFile(t, "polcy: {}\n")}, "polcy"},
		{"bad policy", []string{"--config", writeFile(t, "policy:\n  minReplicas: 0\n")}, "policy.minReplicas"},
		{"lead time beyond the model's horizon", []string{"--config", writeFile(t, "policy:\n  leadTime: 1h\n")}, "policy.leadTime 1h: beyond what the model forecasts"},
		{"two sources", []string{"--prometheus-url", "http://127.0.0.1:9", "--csv", "x.csv"}, "mutually exclusive"},
		{"missing csv", []string{"--csv", filepath.Join(t.TempDir(), "absent.csv")}, "absent.csv"},
		{"no source outside demo mode", []string{"--demo=false"}, "no metrics source"},
		{"VPA recommender without a cluster", []string{"--vpa-recommender", "foresight"}, "--vpa-recommender needs a cluster"},
		{"pod metrics without a cluster", []string{"--pod-metrics"}, "--pod-metrics needs a cluster"},
		{"budget on an unknown service", []string{"--config", writeFile(t, "budgets:\n  - {name: shop, totalCPU: 2, services: {nosuch: {cpuRequest: 0.5}}}\n")}, "budgets[0].services.nosuch"},
		{"budget on a quota without a cluster", []string{"--config", writeFile(t, "budgets:\n  - {name: shop, resourceQuota: {namespace: a, name: b}, services: {frontend: {cpuRequest: 0.5}}}\n")}, "needs a cluster"},
		{"a list of namespaces", []string{"--namespace", "a,b"}, "list them as applications under apps: in --config"},
		{"--namespace beside apps", []string{"--namespace", "a", "--config", writeFile(t, "apps:\n  - {name: a, namespace: a}\n")}, "--namespace: not used with apps"},
		{"--model beside apps", []string{"--model", brokenModel, "--config", writeFile(t, "apps:\n  - {name: a, namespace: a}\n")}, "--model, --model-store: not used with apps"},
		{"model auto without a store", []string{"--model", "auto", "--prometheus-url", "http://127.0.0.1:9"}, "modelStore: required with model: auto"},
		{"model auto on the demo workload", []string{"--model", "auto", "--model-store", t.TempDir()}, "model: auto learns from the application's Prometheus history"},
		{"model auto with budgets", []string{"--model", "auto", "--model-store", t.TempDir(), "--prometheus-url", "http://127.0.0.1:9", "--config", writeFile(t, "budgets:\n  - {name: shop, totalCPU: 2, services: {ledger: {cpuRequest: 0.5}}}\n")}, "budgets: not supported with model: auto"},
		{"model auto with a bad ConfigMap store", []string{"--model", "auto", "--model-store", "configmap:Bad_NS/x", "--prometheus-url", "http://127.0.0.1:9"}, "modelStore: \"configmap:Bad_NS/x\": namespace"},
		{"retrain without model auto", []string{"--prometheus-url", "http://127.0.0.1:9", "--config", writeFile(t, "retrain: {every: 24h}\n")}, "retrain: needs model: auto"},
		{"one application's broken model", []string{"--config", writeFile(t, "apps:\n  - {name: a, namespace: a}\n  - {name: b, namespace: b, model: "+brokenModel+"}\n")}, "app b (apps[1]): model: "},
		{"budgets beside apps", []string{"--config", writeFile(t, "budgets:\n  - {name: shop, totalCPU: 2, services: {frontend: {cpuRequest: 0.5}}}\napps:\n  - {name: a, namespace: a}\n")}, "budgets: not used with apps"},
		{"one application's budget on an unknown service", []string{"--config", writeFile(t, "apps:\n  - {name: a, namespace: a}\n  - {name: b, namespace: b, budgets: [{name: shop, totalCPU: 2, services: {nosuch: {cpuRequest: 0.5}}}]}\n")}, "app b (apps[1]): configuration: apps[1].budgets[0].services.nosuch: not a service of the model"},
		{"one application's lead time beyond its model's horizon", []string{"--config", writeFile(t, "apps:\n  - {name: a, namespace: a}\n  - {name: b, namespace: b, policy: {leadTime: 1h}}\n")}, "app b (apps[1]): forecaster: policy.leadTime 1h: beyond"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			args := append([]string{"serve", "--secure-port", fmt.Sprint(freePort(t)), "--metrics-bind-address",
				fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--demo-dir", t.TempDir()}, tc.args...)
			out, err := exec.CommandContext(ctx, foresightBinary(t), args...).CombinedOutput()
			if err == nil {
				t.Fatalf("foresight serve %v succeeded; want a start-up error\n%s", tc.args, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("error output does not name %q:\n%s", tc.want, out)
			}
		})
	}
}

// hangingProxy forwards range queries to backend, except those whose query
// names namespace slowNS: it holds them until the client gives up (or the
// test ends), like a Prometheus stuck on one application's expensive
// queries while answering the others.
func hangingProxy(t *testing.T, backend, slowNS string) string {
	t.Helper()
	target, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var held atomic.Int64
	stop := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The client POSTs its form: read it, and put it back for the proxy.
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		if query := form.Get("query") + r.URL.Query().Get("query"); strings.Contains(query, `namespace="`+slowNS+`"`) {
			held.Add(1)
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		close(stop)
		_ = srv.Close()
		if held.Load() == 0 {
			t.Errorf("no query of namespace %s reached the proxy: the test did not test a hanging backend", slowNS)
		}
	})
	return "http://" + ln.Addr().String()
}

// metricValue returns the value of the /metrics series whose line starts
// with name{ and contains every label pair in labels; ok is false when there
// is none.
func metricValue(body, name string, labels ...string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(line, l)
		}
		if !all {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil
	}
	return 0, false
}

// TestServeTwoAppsIsolated: two applications in two namespaces in one
// process, sharing one Prometheus. Application A's queries hang beyond its
// timeout on every cycle; B keeps publishing fresh predictions on /metrics
// and through the external metrics API in its namespace, on time, and
// /metrics tells the two apart by app.
func TestServeTwoAppsIsolated(t *testing.T) {
	m, err := loadModel("")
	if err != nil {
		t.Fatal(err)
	}
	services := m.Manifest().Services
	fake, err := fakeprom.New(services)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	promURL := hangingProxy(t, fake.URL(), "team-a")
	cfg := writeFile(t, fmt.Sprintf(`interval: 2s
staleAfter: 16s
source:
  prometheus:
    url: %s
    timeout: 1s
policy:
  capacityPerPod: 10
apps:
  - name: shop-a
    namespace: team-a
  - name: shop-b
    namespace: team-b
    budgets: [{name: shop, totalCPU: 100, services: {%s: {cpuRequest: 0.5}}}]
`, promURL, services[0]))
	start := time.Now()
	s := startServe(t, "--demo", "--config", cfg)
	plain := &http.Client{Timeout: 5 * time.Second}
	var metrics string
	// B publishes every service; A, whose first cycle ends at its timeout,
	// is there too, labelled, saying it serves nothing.
	waitFor(t, "app B's predictions and app A's unpublished services on /metrics", func() error {
		_, body, err := get(plain, s.metrics+"/metrics")
		if err != nil {
			return err
		}
		metrics = body
		if n := strings.Count(body, `foresight_predicted_replicas{app="shop-b",horizon="120s",model=`); n != len(services) {
			return fmt.Errorf("%d of %d services of app shop-b published in team-b", n, len(services))
		}
		if n := strings.Count(body, `foresight_prediction_published{app="shop-a",namespace="team-a",`); n != len(services) {
			return fmt.Errorf("%d of %d services of app shop-a listed as unpublished", n, len(services))
		}
		return nil
	})
	t.Logf("app B published all %d services %.1fs after start (including the build)", len(services), time.Since(start).Seconds())
	for _, want := range []string{`foresight_model_info{app="shop-a",`, `foresight_model_info{app="shop-b",`, `foresight_budget_replicas{app="shop-b",budget="shop",`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, `foresight_predicted_replicas{app="shop-a"`) {
		t.Error("app A publishes predictions although its backend hangs")
	}

	// Over the next cycles B stays on time while A keeps failing: B's good
	// cycles advance at the interval, not at A's timeout.
	okB0, _ := metricValue(metrics, "foresight_cycles_total", `app="shop-b"`, `result="ok"`)
	const watch = 10 * time.Second
	time.Sleep(watch)
	_, metrics, err = get(plain, s.metrics+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	okB1, _ := metricValue(metrics, "foresight_cycles_total", `app="shop-b"`, `result="ok"`)
	failedA, _ := metricValue(metrics, "foresight_cycles_total", `app="shop-a"`, `result="failed"`)
	okA, _ := metricValue(metrics, "foresight_cycles_total", `app="shop-a"`, `result="ok"`)
	t.Logf("in %v: app B %v good cycles; app A %v failed, %v good in all", watch, okB1-okB0, failedA, okA)
	// At a 2 s interval B runs 5 cycles in 10 s; waiting behind each of A's
	// 1.6 s timeouts it would run at most 3.
	if okB1-okB0 < 4 {
		t.Errorf("app B ran %v good cycles in %v at a 2 s interval; want at least 4 (delayed by app A?)", okB1-okB0, watch)
	}
	if failedA < 2 || okA != 0 {
		t.Errorf("app A: %v failed and %v good cycles; want its hanging backend to fail every cycle", failedA, okA)
	}
	if age, ok := metricValue(metrics, "foresight_prediction_age_seconds", `app="shop-b"`, `service="`+services[0]+`"`); !ok || age > 60 {
		// The fake's newest sample is within a step (30 s) of now.
		t.Errorf("app B's prediction age = %v (found %v); want fresh input", age, ok)
	}

	// The status page shows both: B's services fresh, A's unpublished with
	// the reason, and A's last cycle failing with its error.
	code, page, err := get(plain, s.metrics+"/")
	if err != nil || code != http.StatusOK {
		t.Fatalf("status page: %d %v", code, err)
	}
	sections := strings.Split(page, `<section class="app"`)
	if len(sections) != 3 || !strings.Contains(sections[1], `data-app="shop-a"`) || !strings.Contains(sections[2], `data-app="shop-b"`) {
		t.Fatalf("status page sections: want shop-a then shop-b:\n%s", page)
	}
	if n := strings.Count(sections[1], `<td class="unpublished">unpublished: `); n != len(services) || !strings.Contains(sections[1], "cycle-error") {
		t.Errorf("status page, shop-a: %d of %d services unpublished, cycle error shown %v", n, len(services), strings.Contains(sections[1], "cycle-error"))
	}
	if n := strings.Count(sections[2], `<td class="fresh">fresh</td>`); n != len(services) {
		t.Errorf("status page, shop-b: %d of %d services fresh", n, len(services))
	}

	client := demoClient(t, s.demoDir, true)
	base := s.secure + "/apis/external.metrics.k8s.io/v1beta1/namespaces/"
	for _, tc := range []struct {
		namespace string
		want      int
	}{{"team-b", len(services)}, {"team-a", 0}} {
		code, body, err := get(client, base+tc.namespace+"/foresight_predicted_replicas")
		if err != nil || code != http.StatusOK {
			t.Fatalf("external metrics in %s: %d %v %s", tc.namespace, code, err, body)
		}
		var list metricList
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != tc.want {
			t.Errorf("external metrics in %s: %d items, want %d: %s", tc.namespace, len(list.Items), tc.want, body)
		}
	}
	if code, body, err := get(plain, s.metrics+"/readyz"); err != nil || code != http.StatusOK {
		t.Errorf("/readyz = %d %q %v; want ready while app B serves fresh forecasts", code, body, err)
	}
	out := s.log()
	for _, want := range []string{"app=shop-a namespace=team-a model=", "app=shop-b namespace=team-b model=", "app shop-a (namespace team-a): Prometheus at " + promURL} {
		if !strings.Contains(out, want) {
			t.Errorf("start-up output lacks %q", want)
		}
	}
}
