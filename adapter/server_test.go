package adapter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	cmv1beta2 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta2"
	emv1beta1 "k8s.io/metrics/pkg/apis/external_metrics/v1beta1"

	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/internal/pki"
	"github.com/foresightscale/foresight/internal/testproc"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	port, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// demoServer is one running demo-mode adapter.
type demoServer struct {
	creds       *DemoCredentials
	apiURL      string // https://127.0.0.1:<secure port>
	metricsURL  string // http://127.0.0.1:<metrics port>
	client      *http.Client
	anonymous   *http.Client // trusts the server but presents no certificate
	cancel      context.CancelFunc
	done        chan error
	stopTimeout time.Duration
}

// startDemo runs a demo-mode adapter on the given ports and waits (bounded)
// until the external metrics API answers.
func startDemo(t testing.TB, dir string, securePort, metricsPort int, store snapshot.Reader, ready func() error) *demoServer {
	t.Helper()
	a := New()
	a.Demo = true
	a.Log = quietLogger()
	if err := a.Flags().Parse([]string{
		"--secure-port=" + strconv.Itoa(securePort),
		"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(metricsPort),
		"--demo-dir=" + dir,
	}); err != nil {
		t.Fatalf("parsing flags: %v", err)
	}
	creds, err := a.SetupDemo()
	if err != nil {
		t.Fatalf("SetupDemo: %v", err)
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(NewCollector(store, time.Now))
	ctx, cancel := context.WithCancel(context.Background())
	s := &demoServer{
		creds:       creds,
		apiURL:      "https://127.0.0.1:" + strconv.Itoa(securePort),
		metricsURL:  "http://127.0.0.1:" + strconv.Itoa(metricsPort),
		cancel:      cancel,
		done:        make(chan error, 1),
		stopTimeout: 30 * time.Second,
	}
	go func() { s.done <- a.Run(ctx, store, registry, ready) }()
	t.Cleanup(func() { s.stop(t) })

	caPEM, err := os.ReadFile(creds.CAFile)
	if err != nil {
		t.Fatalf("reading CA: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("CA file %s holds no certificate", creds.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(creds.ClientCertFile, creds.ClientKeyFile)
	if err != nil {
		t.Fatalf("loading client certificate: %v", err)
	}
	newClient := func(certs []tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12},
		}}
	}
	s.client = newClient([]tls.Certificate{cert})
	s.anonymous = newClient(nil)
	t.Cleanup(s.client.CloseIdleConnections)
	t.Cleanup(s.anonymous.CloseIdleConnections)

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-s.done:
			s.done <- err // let stop see it too
			t.Fatalf("adapter stopped while starting: %v", err)
		default:
		}
		resp, err := s.client.Get(s.apiURL + "/apis/external.metrics.k8s.io/v1beta1")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("external metrics API did not answer within 30s (last: %v %v)", resp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop cancels the adapter and waits (bounded) for Run to return.
func (s *demoServer) stop(t testing.TB) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(s.stopTimeout):
		t.Fatalf("Run did not return within %v of cancel", s.stopTimeout)
	}
}

// get fetches url with client and returns status and body.
func get(t testing.TB, client *http.Client, url string) (int, []byte) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return resp.StatusCode, body
}

func liveSnapshot() *snapshot.Snapshot {
	now := time.Now()
	p := func(ns, svc string, replicas int64) snapshot.Prediction {
		return snapshot.Prediction{Namespace: ns, Service: svc, Horizon: 2 * time.Minute,
			PredictedReplicas: replicas, PredictedRequests: 42.5, PredictedCPUCores: 0.75,
			RequestsByStep: []float64{40, 42.5}, ComputedAt: now, ExpiresAt: now.Add(time.Hour)}
	}
	return &snapshot.Snapshot{CreatedAt: now, Model: "gru-v1", Step: 30 * time.Second, Predictions: []snapshot.Prediction{
		p("default", "frontend", 4), p("default", "cartservice", 2), p("shop", "frontend", 7),
	}}
}

func TestDemoServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two HTTPS API servers; skipped with -short")
	}
	dir := t.TempDir()
	securePort, metricsPort := freePort(t), freePort(t)
	store := &snapshot.Store{}
	store.Publish(liveSnapshot())
	var isReady atomic.Bool
	ready := func() error {
		if !isReady.Load() {
			return errors.New("no forecast cycle has completed yet")
		}
		return nil
	}

	s := startDemo(t, dir, securePort, metricsPort, store, ready)
	base := s.apiURL + "/apis/external.metrics.k8s.io/v1beta1"

	t.Run("discovery lists the metrics", func(t *testing.T) {
		code, body := get(t, s.client, base)
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		var list metav1.APIResourceList
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatalf("decoding discovery: %v\n%s", err, body)
		}
		var names []string
		for _, r := range list.APIResources {
			names = append(names, r.Name)
		}
		for _, want := range []string{MetricPredictedReplicas, MetricPredictedRequests, MetricPredictedCPUCores} {
			if !slices.Contains(names, want) {
				t.Errorf("discovery lists %v, missing %s", names, want)
			}
		}
	})

	items := func(t *testing.T, url string) []emv1beta1.ExternalMetricValue {
		t.Helper()
		code, body := get(t, s.client, url)
		if code != http.StatusOK {
			t.Fatalf("GET %s: status %d: %s", url, code, body)
		}
		var list emv1beta1.ExternalMetricValueList
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatalf("decoding %s: %v\n%s", url, err, body)
		}
		return list.Items
	}

	t.Run("items of the namespace", func(t *testing.T) {
		got := items(t, s.apiURL+ExternalMetricPath("default", MetricPredictedReplicas))
		if len(got) != 2 {
			t.Fatalf("got %d items, want 2 (frontend, cartservice): %+v", len(got), got)
		}
	})

	t.Run("custom metrics API: the Deployment's own metric", func(t *testing.T) {
		url := s.apiURL + "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/deployments.apps/frontend/" + MetricPredictedReplicas
		code, body := get(t, s.client, url)
		if code != http.StatusOK {
			t.Fatalf("GET %s: status %d: %s", url, code, body)
		}
		var list cmv1beta2.MetricValueList
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatalf("decoding %s: %v\n%s", url, err, body)
		}
		if len(list.Items) != 1 || list.Items[0].Value.Value() != 4 || list.Items[0].DescribedObject.Kind != "Deployment" {
			t.Errorf("got %+v, want the frontend Deployment at 4", list.Items)
		}
		missing := s.apiURL + "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/deployments.apps/checkout/" + MetricPredictedReplicas
		if code, body := get(t, s.client, missing); code != http.StatusNotFound {
			t.Errorf("a Deployment without a prediction: status %d, want 404: %s", code, body)
		}
	})

	t.Run("label selector picks one service", func(t *testing.T) {
		got := items(t, s.apiURL+ExternalMetricPath("default", MetricPredictedReplicas)+"?labelSelector=service%3Dfrontend")
		if len(got) != 1 {
			t.Fatalf("got %d items, want 1: %+v", len(got), got)
		}
		if v := got[0].Value.Value(); v != 4 || got[0].MetricLabels["service"] != "frontend" {
			t.Errorf("item %+v, want frontend with 4 replicas", got[0])
		}
		got = items(t, s.apiURL+ExternalMetricPath("default", MetricPredictedCPUCores)+"?labelSelector=service%3Dfrontend")
		if len(got) != 1 || got[0].Value.MilliValue() != 750 {
			t.Errorf("cpu items %+v, want one of 750m", got)
		}
	})

	t.Run("unknown metric is 404", func(t *testing.T) {
		code, body := get(t, s.client, s.apiURL+ExternalMetricPath("default", "foresight_predicted_bananas"))
		if code != http.StatusNotFound {
			t.Errorf("status %d, want 404: %s", code, body)
		}
	})

	t.Run("no client certificate is refused", func(t *testing.T) {
		code, body := get(t, s.anonymous, s.apiURL+ExternalMetricPath("default", MetricPredictedReplicas))
		if code != http.StatusUnauthorized && code != http.StatusForbidden {
			t.Errorf("status %d, want 401 or 403: %s", code, body)
		}
	})

	t.Run("/metrics, /healthz and /readyz", func(t *testing.T) {
		plain := &http.Client{Timeout: 10 * time.Second}
		defer plain.CloseIdleConnections()
		code, body := get(t, plain, s.metricsURL+"/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics status %d", code)
		}
		for _, want := range []string{
			`foresight_predicted_replicas{app="",horizon="120s",model="gru-v1",namespace="default",service="frontend"} 4`,
			`foresight_predicted_cpu_cores{app="",horizon="120s",model="gru-v1",namespace="shop",service="frontend"} 0.75`,
			`foresight_forecast_requests{app="",model="gru-v1",namespace="default",service="cartservice",step="2"} 42.5`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if code, _ := get(t, plain, s.metricsURL+"/healthz"); code != http.StatusOK {
			t.Errorf("/healthz status %d, want 200", code)
		}
		code, body = get(t, plain, s.metricsURL+"/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "no forecast cycle") {
			t.Errorf("/readyz before ready: %d %q, want 503 with the reason", code, body)
		}
		isReady.Store(true)
		if code, body := get(t, plain, s.metricsURL+"/readyz"); code != http.StatusOK {
			t.Errorf("/readyz when ready: %d %q, want 200", code, body)
		}
	})

	t.Run("stale predictions disappear", func(t *testing.T) {
		old := liveSnapshot()
		for i := range old.Predictions {
			old.Predictions[i].ExpiresAt = time.Now().Add(-time.Second)
		}
		store.Publish(old)
		defer store.Publish(liveSnapshot())
		if got := items(t, s.apiURL+ExternalMetricPath("default", MetricPredictedReplicas)); len(got) != 0 {
			t.Errorf("served %d stale items, want none", len(got))
		}
	})

	// Stopping frees both ports: a second adapter binds the very same ones,
	// and the kubeconfig it writes works through client-go.
	s.stop(t)
	s2 := startDemo(t, dir, securePort, metricsPort, store, nil)
	cfg, err := clientcmd.BuildConfigFromFlags("", s2.creds.Kubeconfig)
	if err != nil {
		t.Fatalf("loading the demo kubeconfig: %v", err)
	}
	if cfg.Host != s2.apiURL {
		t.Errorf("kubeconfig server %s, want %s", cfg.Host, s2.apiURL)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatalf("client from the demo kubeconfig: %v", err)
	}
	defer hc.CloseIdleConnections()
	code, body := get(t, hc, cfg.Host+ExternalMetricPath("shop", MetricPredictedReplicas))
	if code != http.StatusOK || !strings.Contains(string(body), `"service":"frontend"`) {
		t.Errorf("through the kubeconfig: %d %s", code, body)
	}
	s2.stop(t)
	// And the ports really are free again.
	for _, port := range []int{securePort, metricsPort} {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Errorf("port %d still taken after stop: %v", port, err)
			continue
		}
		l.Close()
	}
}

func TestDemoCommands(t *testing.T) {
	d := &DemoCredentials{
		CAFile: "/s/ca.crt", ClientCertFile: "/s/client.crt", ClientKeyFile: "/s/my dir/client.key",
		Kubeconfig: "/s/kubeconfig", ServerURL: "https://127.0.0.1:6443",
	}
	if got, want := d.KubectlCommand("default", MetricPredictedReplicas),
		"kubectl --kubeconfig /s/kubeconfig get --raw /apis/external.metrics.k8s.io/v1beta1/namespaces/default/foresight_predicted_replicas"; got != want {
		t.Errorf("kubectl command\n got %s\nwant %s", got, want)
	}
	if got, want := d.CurlCommand("default", MetricPredictedReplicas),
		"curl --cacert /s/ca.crt --cert /s/client.crt --key '/s/my dir/client.key' https://127.0.0.1:6443/apis/external.metrics.k8s.io/v1beta1/namespaces/default/foresight_predicted_replicas"; got != want {
		t.Errorf("curl command\n got %s\nwant %s", got, want)
	}
	if got := shellQuote("it's"); got != `'it'\''s'` {
		t.Errorf("shellQuote(it's) = %s", got)
	}
}

func TestDemoCredentialsCertificates(t *testing.T) {
	dir := t.TempDir()
	creds, err := writeDemoCredentials(dir, net.IPv4(127, 0, 0, 1), 6443, time.Now())
	if err != nil {
		t.Fatalf("writeDemoCredentials: %v", err)
	}
	ca, err := os.ReadFile(creds.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	leaf := func(certFile, keyFile string) *x509.Certificate {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatalf("%s/%s do not form a key pair: %v", certFile, keyFile, err)
		}
		return pair.Leaf
	}
	serving := leaf(creds.ServingCertFile, creds.ServingKeyFile)
	if _, err := serving.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("serving certificate not valid for 127.0.0.1: %v", err)
	}
	if _, err := serving.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err != nil {
		t.Errorf("serving certificate not valid for localhost: %v", err)
	}
	client := leaf(creds.ClientCertFile, creds.ClientKeyFile)
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate not valid for client auth: %v", err)
	}
	if client.Subject.CommonName != DemoUser || !slices.Equal(client.Subject.Organization, []string{"system:masters"}) {
		t.Errorf("client subject %v, want CN=%s O=system:masters", client.Subject, DemoUser)
	}
	for _, f := range []string{creds.ServingKeyFile, creds.ClientKeyFile, creds.Kubeconfig} {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s is readable by others (%v)", f, perm)
		}
	}
	unreachable, err := clientcmd.BuildConfigFromFlags("", creds.UnreachableKubeconfig)
	if err != nil {
		t.Fatalf("unreachable kubeconfig does not parse: %v", err)
	}
	if unreachable.Host != unreachableServer {
		t.Errorf("unreachable kubeconfig points at %s", unreachable.Host)
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // never pick up a real cluster
	registry := prometheus.NewRegistry()
	securePort := freePort(t)
	metricsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	lister := filepath.Join(t.TempDir(), "lister.kubeconfig")
	if err := pki.WriteKubeconfig(lister, DemoUser, unreachableServer, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		reader   snapshot.Reader
		registry *prometheus.Registry
		args     []string
		want     string
	}{
		{name: "no reader", registry: registry, want: "snapshot reader"},
		{name: "no registry", reader: &snapshot.Store{}, want: "registry"},
		{name: "secure port 0", reader: &snapshot.Store{}, registry: registry, args: []string{"--secure-port=0"}, want: "--secure-port 0"},
		{name: "bad metrics address", reader: &snapshot.Store{}, registry: registry,
			args: []string{"--metrics-bind-address=127.0.0.1:notaport"}, want: "listening for /metrics"},
		// Outside a cluster, production mode needs --lister-kubeconfig.
		{name: "production mode without a cluster", reader: &snapshot.Store{}, registry: registry,
			args: []string{"--secure-port=" + strconv.Itoa(securePort), "--metrics-bind-address=" + metricsAddr}, want: "in-cluster"},
		{name: "unreadable lister kubeconfig", reader: &snapshot.Store{}, registry: registry,
			args: []string{"--secure-port=" + strconv.Itoa(securePort), "--metrics-bind-address=" + metricsAddr,
				"--lister-kubeconfig=" + filepath.Join(t.TempDir(), "missing")}, want: "missing"},
		// Fails after the secure port is bound: Run must release it.
		{name: "unreadable authentication kubeconfig", reader: &snapshot.Store{}, registry: registry,
			args: []string{"--secure-port=" + strconv.Itoa(securePort), "--metrics-bind-address=" + metricsAddr,
				"--lister-kubeconfig=" + lister, "--authentication-kubeconfig=" + filepath.Join(t.TempDir(), "missing")},
			want: "delegated authentication kubeconfig"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := New()
			a.Log = quietLogger()
			if err := a.Flags().Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := a.Run(ctx, tt.reader, tt.registry, nil)
			t.Logf("Run: %v", err)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run error %v, want one mentioning %q", err, tt.want)
			}
			// A failed start leaves no port bound.
			for _, addr := range []string{"127.0.0.1:" + strconv.Itoa(securePort), metricsAddr} {
				l, err := net.Listen("tcp", addr)
				if err != nil {
					t.Errorf("%s still bound after a failed start: %v", addr, err)
					continue
				}
				l.Close()
			}
		})
	}
}

// BenchmarkGetExternalMetricHTTPS measures one selector GET through the
// demo-mode server: TLS, authentication, authorization, the provider and
// JSON encoding (a kept-alive connection, as the HPA controller uses).
func BenchmarkGetExternalMetricHTTPS(b *testing.B) {
	store := &snapshot.Store{}
	store.Publish(liveSnapshot())
	s := startDemo(b, b.TempDir(), freePort(b), freePort(b), store, nil)
	url := s.apiURL + ExternalMetricPath("default", MetricPredictedReplicas) + "?labelSelector=service%3Dfrontend"
	b.ReportAllocs()
	for b.Loop() {
		resp, err := s.client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d, err %v", resp.StatusCode, err)
		}
	}
}
