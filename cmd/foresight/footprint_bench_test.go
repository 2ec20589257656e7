package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/kubetest"
	"github.com/foresightscale/foresight/internal/meshtest"
	"github.com/foresightscale/foresight/internal/promtest"
	"github.com/foresightscale/foresight/internal/testenv"
	"github.com/foresightscale/foresight/internal/testproc"
)

// peerVersion is the prometheus-adapter release the footprint is compared
// with: the newest the Go module proxy serves.
const peerVersion = "v0.12.0"

// Footprint load: concurrent clients for footprintLoad each (after
// footprintWarmUp), once footprintRest of idling gave the "at rest" memory
// (sampled over its last footprintSampled).
const (
	footprintClients = 8
	footprintWarmUp  = 2 * time.Second
	footprintLoad    = 10 * time.Second
	footprintRest    = 60 * time.Second
	footprintSampled = 15 * time.Second // serve's interval in the benchmark
)

// BenchmarkFootprint runs foresight serve (the release binary, a model of
// the application, a real Prometheus) and prometheus-adapter beside it, on
// the same Prometheus, with the same serving certificate and the same
// delegated authentication and authorisation (the foresight ServiceAccount
// on a real control plane), for a layered application of 10 and of 500
// services. It reports:
//   - each process's resident memory at rest (the median of samples over
//     the last forecast interval of footprintRest, and the largest), split
//     into anonymous and file-backed pages, and foresight's over the peer's;
//   - external-metric GETs per second (one service's value, the query an
//     HPA makes; footprintClients concurrent clients with the admin's
//     client certificate, over HTTP/2) directly against each adapter, and
//     through the kube-apiserver's aggregation layer (the APIService
//     pointed at one, then the other), and foresight's over the peer's;
//   - the same load through the aggregation layer to a server that answers
//     a fixed list and does nothing else: the kube-apiserver's ceiling;
//   - how much of the training code is resident in serve.
//
// Needs prometheus, the control-plane binaries and prometheus-adapter
// (hack/prometheus-adapter.sh; `make bench` builds it). Run once
// (-benchtime 1x).
func BenchmarkFootprint(b *testing.B) {
	peer := peerBinary(b)
	promtest.Binary(b, "prometheus")
	bin := releaseBinary(b)
	c := kubetest.Start(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	in := install(ctx, b, c, filepath.Join(testenv.RepoRoot(b), "manifests", "base"))
	// prometheus-adapter runs as the same ServiceAccount; it also lists
	// namespaces for its external metrics' resource mapping.
	c.MustKubectl(ctx, b, nil, "create", "clusterrolebinding", "bench-peer-view", "--clusterrole=view", "--serviceaccount=foresight:foresight")
	sa := serviceAccountArgs(ctx, b, c)
	for _, n := range []int{10, 500} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			for b.Loop() {
				measureFootprint(ctx, b, c, in, sa, bin, peer, n)
			}
		})
	}
}

// peerBinary returns prometheus-adapter's path from the tool cache,
// skipping (failing with FORESIGHT_REQUIRE_PEER set) when it is missing.
func peerBinary(b *testing.B) string {
	out, err := exec.Command("bash", filepath.Join(testenv.RepoRoot(b), "hack", "prometheus-adapter.sh"), "--print").Output()
	path := strings.TrimSpace(string(out))
	if err == nil {
		if _, err = os.Stat(path); err == nil {
			return path
		}
	}
	msg := fmt.Sprintf("prometheus-adapter %s not built (%v): run hack/prometheus-adapter.sh", peerVersion, err)
	if os.Getenv("FORESIGHT_REQUIRE_PEER") != "" {
		b.Fatal(msg)
	}
	b.Skip(msg)
	return ""
}

// footprintProc is one adapter under measurement.
type footprintProc struct {
	name string
	proc *testproc.Process // nil: in this process
	port int
	// url is an external-metric GET path (and query) for service i.
	url func(i int) string
}

func measureFootprint(ctx context.Context, b *testing.B, c *kubetest.Cluster, in installed, sa []string, bin, peer string, n int) {
	graph := meshtest.Layered(n, 3, int64(n))
	services := graph.Services
	dir := b.TempDir()

	// A model of this application, trained for one epoch: its size, not
	// its accuracy, is what counts here.
	train := trainCommand(bin, trainHistory(b, n), 1)
	if out, err := train.CombinedOutput(); err != nil {
		b.Fatalf("foresight train: %v\n%s", err, out)
	}
	modelDir := filepath.Join(filepath.Dir(train.Args[len(train.Args)-1]), "model")

	now := time.Now().Truncate(time.Minute)
	history := layeredHistoryEndingAt(b, graph, source.AllFeatures, now.Add(30*time.Minute), 2*time.Hour+30*time.Minute, time.Minute)
	prom := promtest.Start(b, promtest.Options{Backfill: promtest.WriteOpenMetricsFile(b, "default", history)})

	config := filepath.Join(dir, "config.yaml")
	must(b, os.WriteFile(config, []byte(fmt.Sprintf("namespace: default\ninterval: 15s\nmodel: %s\nsource:\n  prometheus:\n    url: %s\npolicy:\n  capacityPerPod: 50\n",
		modelDir, prom.URL())), 0o600))
	fsPort, metricsPort := freePort(b), freePort(b)
	args := append(deploymentArgs(b, in.base, in.certs, fsPort, metricsPort, config), sa...)
	fs := startBenchProcess(b, "foresight", bin, args...)

	peerPort := freePort(b)
	rules := filepath.Join(dir, "peer-rules.yaml")
	must(b, os.WriteFile(rules, []byte(peerRules), 0o600))
	cert, key := flagValue(b, args, "--tls-cert-file"), flagValue(b, args, "--tls-private-key-file")
	pa := startBenchProcess(b, "prometheus-adapter", peer, append([]string{"--secure-port=" + strconv.Itoa(peerPort), "--bind-address=127.0.0.1",
		"--tls-cert-file=" + cert, "--tls-private-key-file=" + key, "--prometheus-url=" + prom.URL(), "--config=" + rules,
		"--cert-dir=" + filepath.Join(dir, "peer-certs")}, kubeconfigArgs(sa)...)...)

	procs := []footprintProc{
		{name: "foresight", proc: fs, port: fsPort, url: metricURL("foresight_predicted_replicas", services)},
		{name: "peer", proc: pa, port: peerPort, url: metricURL("foresight_requests", services)},
	}
	direct := directClient(b, c, in)
	for _, p := range procs {
		base := fmt.Sprintf("https://127.0.0.1:%d", p.port)
		waitServing(ctx, b, p, direct, base)
	}
	// At rest: sampled over the last footprintSampled of footprintRest
	// (a forecast cycle's interval), so one sample taken during a cycle
	// does not decide; the median sample is reported, and the largest.
	time.Sleep(footprintRest - footprintSampled)
	samples := map[string][]map[string]int64{}
	for end := time.Now().Add(footprintSampled); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		for _, p := range procs {
			status, err := procStatus(p.proc.PID())
			must(b, err)
			samples[p.name] = append(samples[p.name], status)
		}
	}
	rest := map[string]map[string]int64{}
	for name, ss := range samples {
		slices.SortFunc(ss, func(a, b map[string]int64) int { return int(a["VmRSS"] - b["VmRSS"]) })
		rest[name] = ss[len(ss)/2]
		b.ReportMetric(float64(ss[len(ss)-1]["VmRSS"])/(1<<20), name+"-RSS-max-MiB")
	}

	training, resident := trainingCodeResidency(b, bin, fs.PID())
	b.ReportMetric(float64(training)/1024, "training-code-KiB")
	b.ReportMetric(float64(resident)/1024, "training-code-resident-KiB")

	const mib = 1 << 20
	for _, p := range procs {
		b.ReportMetric(float64(rest[p.name]["VmRSS"])/mib, p.name+"-RSS-MiB")
		b.ReportMetric(float64(rest[p.name]["RssAnon"])/mib, p.name+"-anon-MiB")
		b.ReportMetric(float64(rest[p.name]["RssFile"])/mib, p.name+"-file-MiB")
	}
	b.ReportMetric(float64(rest["foresight"]["VmRSS"])/float64(rest["peer"]["VmRSS"]), "RSS/peer")

	// Directly, then through the aggregation layer.
	rates := map[string]float64{}
	for _, p := range procs {
		rates[p.name+"-direct"] = getRate(ctx, b, direct, fmt.Sprintf("https://127.0.0.1:%d", p.port), p.url, n)
	}
	agg := aggregatorClient(b, c)
	ceiling := footprintProc{name: "ceiling", port: startCeiling(b, cert, key), url: procs[0].url}
	for _, p := range append(procs, ceiling) {
		pointAPIService(ctx, b, c, p.port)
		waitServing(ctx, b, p, agg, c.URL)
		rates[p.name+"-apiserver"] = getRate(ctx, b, agg, c.URL, p.url, n)
	}
	pointAPIService(ctx, b, c, fsPort)
	for _, k := range []string{"foresight-direct", "peer-direct", "foresight-apiserver", "peer-apiserver"} {
		b.ReportMetric(rates[k], k+"-GET/s")
	}
	b.ReportMetric(rates["foresight-direct"]/rates["peer-direct"], "direct-GET/peer")
	b.ReportMetric(rates["foresight-apiserver"]/rates["peer-apiserver"], "apiserver-GET/peer")
	b.ReportMetric(rates["ceiling-apiserver"], "ceiling-apiserver-GET/s")
	b.ReportMetric(rates["ceiling-apiserver"]/rates["peer-apiserver"], "ceiling-apiserver-GET/peer")
	for _, p := range procs {
		status, err := procStatus(p.proc.PID())
		must(b, err)
		b.ReportMetric(float64(status["VmRSS"])/mib, p.name+"-RSS-after-load-MiB")
	}
}

// startCeiling serves, with the adapters' certificate, one fixed
// external-metric list to any request, costing next to nothing: through
// the aggregation layer it measures what the kube-apiserver alone allows,
// the ceiling of any adapter's rate there.
func startCeiling(b *testing.B, certFile, keyFile string) int {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	must(b, err)
	body := []byte(`{"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1","metadata":{},` +
		`"items":[{"metricName":"foresight_predicted_replicas","metricLabels":{"service":"s"},"timestamp":"2026-01-01T00:00:00Z","value":"1"}]}`)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	must(b, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// trainingPackages hold the code only train, backtest and simulate run,
// with the plotting they pull in.
var trainingPackages = []string{
	"github.com/foresightscale/foresight/models/training.",
	"github.com/foresightscale/foresight/forecaster/backtest.",
	"github.com/foresightscale/foresight/forecaster/simulator",
	"gonum.org/v1/plot",
	"codeberg.org/go-fonts/",
	"codeberg.org/go-pdf/",
}

// trainingCodeResidency returns how many bytes of functions of
// trainingPackages the binary holds, and how many of them are resident in
// process pid (pages present, from /proc/PID/pagemap). The release binary
// has no symbols, so a twin built alike but keeping them names the
// addresses; its sections must sit where the release binary's do.
func trainingCodeResidency(b *testing.B, release string, pid int) (size, resident int64) {
	twin := filepath.Join(b.TempDir(), "foresight-symbols")
	cmd := exec.Command("go", "build", "-trimpath", "-o", twin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	rel, err := elf.Open(release)
	must(b, err)
	defer rel.Close()
	sym, err := elf.Open(twin)
	must(b, err)
	defer sym.Close()
	for _, name := range []string{".text", ".rodata"} {
		r, s := rel.Section(name), sym.Section(name)
		if r == nil || s == nil || r.Addr != s.Addr || r.Size != s.Size {
			b.Fatalf("the symbol twin's %s is not where the release binary's is: %+v vs %+v", name, s, r)
		}
	}
	symbols, err := sym.Symbols()
	must(b, err)
	pages := map[uint64]bool{}
	for _, s := range symbols {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Size == 0 || !slices.ContainsFunc(trainingPackages, func(p string) bool { return strings.HasPrefix(s.Name, p) }) {
			continue
		}
		size += int64(s.Size)
		for page := s.Value &^ 4095; page < s.Value+s.Size; page += 4096 {
			pages[page] = false
		}
	}
	pagemap, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	must(b, err)
	defer pagemap.Close()
	var entry [8]byte
	for page := range pages {
		_, err := pagemap.ReadAt(entry[:], int64(page/4096*8))
		must(b, err)
		if entry[7]&0x80 != 0 { // bit 63 of the little-endian entry: present
			resident += 4096
		}
	}
	return size, resident
}

// peerRules exposes the recorded request rate as the external metric
// foresight_requests, summed per service: the one value an HPA asks for.
const peerRules = `externalRules:
- seriesQuery: 'service:foresight_requests:rate1m{namespace!="",service!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
  name:
    matches: "^service:foresight_requests:rate1m$"
    as: foresight_requests
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (service)'
`

func metricURL(metric string, services []string) func(int) string {
	return func(i int) string {
		return "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/" + metric + "?labelSelector=" +
			url.QueryEscape("service="+services[i%len(services)])
	}
}

func startBenchProcess(b *testing.B, name, bin string, args ...string) *testproc.Process {
	p, err := testproc.Start(name, bin, args...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		p.Stop()
		if b.Failed() {
			b.Logf("%s output:\n%s", name, p.Output())
		}
	})
	return p
}

// kubeconfigArgs keeps the --*-kubeconfig flags of args.
func kubeconfigArgs(args []string) []string {
	var kept []string
	for _, a := range args {
		if name, _, _ := strings.Cut(a, "="); strings.HasSuffix(name, "-kubeconfig") {
			kept = append(kept, a)
		}
	}
	return kept
}

func flagValue(b *testing.B, args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	b.Fatalf("no %s in %v", name, args)
	return ""
}

// directClient presents the admin's client certificate (the cluster CA,
// which both adapters trust through the apiserver's
// extension-apiserver-authentication) and trusts the adapters' serving CA.
func directClient(b *testing.B, c *kubetest.Cluster, in installed) *http.Client {
	tlsCfg, err := rest.TLSConfigFor(c.Config)
	must(b, err)
	caBundle, _, _ := unstructured.NestedString(findObject(b, in.certs, "APIService", metricsAPIs["external"].name).Object, "spec", "caBundle")
	pem, err := base64.StdEncoding.DecodeString(caBundle)
	must(b, err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		b.Fatal("the APIService's caBundle holds no certificate")
	}
	tlsCfg = tlsCfg.Clone()
	tlsCfg.RootCAs, tlsCfg.ServerName = pool, "foresight.foresight.svc"
	return loadClient(tlsCfg)
}

// aggregatorClient is the admin, as kubectl, against the kube-apiserver.
func aggregatorClient(b *testing.B, c *kubetest.Cluster) *http.Client {
	tlsCfg, err := rest.TLSConfigFor(c.Config)
	must(b, err)
	return loadClient(tlsCfg)
}

func loadClient(tlsCfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: footprintClients,
	}}
}

// waitServing waits until base answers p's metric for the first service
// with one value.
func waitServing(ctx context.Context, b *testing.B, p footprintProc, client *http.Client, base string) {
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if p.proc != nil {
			if exited, err := p.proc.Exited(); exited {
				b.Fatalf("%s exited: %v", p.name, err)
			}
		}
		code, body, err := get(client, base+p.url(0))
		if err == nil && code == http.StatusOK {
			var list metricList
			if json.Unmarshal([]byte(body), &list) == nil && len(list.Items) == 1 {
				return
			}
		}
		last = fmt.Sprintf("%d %v %.300s", code, err, body)
		time.Sleep(time.Second)
	}
	b.Fatalf("%s does not serve %s at %s: %s", p.name, p.url(0), base, last)
}

// getRate runs footprintClients concurrent clients for footprintWarmUp
// (not counted: connections, caches) then for footprintLoad, each cycling
// through the n services, and returns the good GETs per second. Any other
// answer fails the benchmark.
func getRate(ctx context.Context, b *testing.B, client *http.Client, base string, path func(int) string, n int) float64 {
	runLoad(ctx, b, client, base, path, n, footprintWarmUp)
	return runLoad(ctx, b, client, base, path, n, footprintLoad)
}

func runLoad(ctx context.Context, b *testing.B, client *http.Client, base string, path func(int) string, n int, d time.Duration) float64 {
	var ok atomic.Int64
	var failure atomic.Value
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range footprintClients {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i += footprintClients {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path(i%n), nil)
				if err != nil {
					failure.Store(err.Error())
					return
				}
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failure.Store(err.Error())
					}
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failure.Store(fmt.Sprintf("GET %s: %s", path(i%n), resp.Status))
					return
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if f := failure.Load(); f != nil {
		b.Fatalf("load against %s: %v", base, f)
	}
	return float64(ok.Load()) / time.Since(start).Seconds()
}

// pointAPIService makes the external metrics APIService send its requests
// to port (both adapters hold the same serving certificate).
func pointAPIService(ctx context.Context, b *testing.B, c *kubetest.Cluster, port int) {
	dyn, err := dynamic.NewForConfig(c.Config)
	must(b, err)
	patch := fmt.Sprintf(`{"spec":{"service":{"port":%d}}}`, port)
	_, err = dyn.Resource(apiServicesGVR).Patch(ctx, metricsAPIs["external"].name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	must(b, err)
}
