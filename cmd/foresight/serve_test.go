package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foresightscale/foresight/internal/testenv"
)

// These tests run the real foresight binary, as a user would.

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

func foresightBinary(t *testing.T) string {
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type server struct {
	secure, metrics string
	securePort      int
	demoDir         string
	output          *strings.Builder
	outputMu        *sync.Mutex
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
	waitFor(t, "readyz", func() error {
		code, body, err := get(plain, s.metrics+"/readyz")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d: %s", code, body)
		}
		return err
	})
	// The printed help must hold a kubectl line and a curl line that work:
	// the curl line's files are what demoClient uses.
	out := s.log()
	for _, want := range []string{"kubectl --kubeconfig " + filepath.Join(s.demoDir, "kubeconfig") + " get --raw /apis/external.metrics.k8s.io/v1beta1/namespaces/default/foresight_predicted_replicas",
		"curl --cacert " + filepath.Join(s.demoDir, "ca.crt")} {
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
			`foresight_predicted_replicas{app="default",horizon="120s",namespace="default",service="frontend"}`,
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
		{"missing model dir", []string{"--model", filepath.Join(t.TempDir(), "absent")}, "read model.onnx"},
		{"unknown config key", []string{"--config", writeFile(t, "polcy: {}\n")}, "polcy"},
		{"bad policy", []string{"--config", writeFile(t, "policy:\n  minReplicas: 0\n")}, "policy.minReplicas"},
		{"policy for unknown service", []string{"--config", writeFile(t, "policy:\n  services:\n    nosuch: {capacityPerPod: 3}\n")}, "policy.services.nosuch"},
		{"two sources", []string{"--prometheus-url", "http://127.0.0.1:9", "--csv", "x.csv"}, "mutually exclusive"},
		{"missing csv", []string{"--csv", filepath.Join(t.TempDir(), "absent.csv")}, "absent.csv"},
		{"no source outside demo mode", []string{"--demo=false"}, "no metrics source"},
		{"VPA recommender without a cluster", []string{"--vpa-recommender", "foresight"}, "--vpa-recommender needs a cluster"},
		{"pod metrics without a cluster", []string{"--pod-metrics"}, "--pod-metrics needs a cluster"},
		{"budget on an unknown service", []string{"--config", writeFile(t, "budgets:\n  - {name: shop, totalCPU: 2, services: {nosuch: {cpuRequest: 0.5}}}\n")}, "budgets[0].services.nosuch"},
		{"budget on a quota without a cluster", []string{"--config", writeFile(t, "budgets:\n  - {name: shop, resourceQuota: {namespace: a, name: b}, services: {frontend: {cpuRequest: 0.5}}}\n")}, "needs a cluster"},
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
