package faults

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/api/resource"

	fmodel "github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/internal/fakeprom"
	"github.com/foresightscale/foresight/internal/testenv"
	"github.com/foresightscale/foresight/internal/testproc"
	"github.com/foresightscale/foresight/models"
)

// The configuration every process here runs with: a cycle every two seconds,
// held values served for sixteen, a Prometheus query timeout well inside the
// cycle's own (1.6 s). Shorter cycles timed out on CI's two cores while the
// control-plane tests ran beside this package, and a fault then held a
// service for the wrong reason.
const (
	interval    = 2 * time.Second
	staleAfter  = 16 * time.Second
	minReplicas = 1
	maxReplicas = 50
	namespace   = "default"
)

// baseConfig is the YAML configuration; %s is the fake's URL.
const baseConfig = `interval: 2s
staleAfter: 16s
source:
  prometheus:
    url: %s
    timeout: 1s
policy:
  capacityPerPod: 10
  maxReplicas: 50
`

// heldReasons are the reasons the contract allows on foresight_prediction_held.
var heldReasons = []string{"source_error", "timeout", "missing_data", "stale_input", "bad_forecast", "model_error"}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// needProcesses skips under -short: every test here runs the real binary.
func needProcesses(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the real foresight serve process against a fake Prometheus; skipped with -short")
	}
}

// foresightBinary builds ./cmd/foresight once per test binary, into a
// temporary directory removed by TestMain.
func foresightBinary(t *testing.T) string {
	t.Helper()
	root := testenv.RepoRoot(t)
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "foresight-faults-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "foresight")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/foresight")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/foresight: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// demoServices are the shipped model's services, from its manifest: the
// fake and the tests never name a service of their own.
func demoServices(t *testing.T) []string {
	t.Helper()
	b, err := fs.ReadFile(models.Demo(), fmodel.ManifestFile)
	if err != nil {
		t.Fatal(err)
	}
	man, err := fmodel.DecodeManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return man.Services
}

func startFake(t *testing.T, services []string) *fakeprom.Server {
	t.Helper()
	f, err := fakeprom.New(services)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "foresight.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// serveArgs is the command line of `foresight serve` on the given ports.
func serveArgs(securePort, metricsPort int, demoDir, configPath string) []string {
	return []string{"serve", "--secure-port", strconv.Itoa(securePort),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metricsPort),
		"--demo-dir", demoDir, "--demo", "--config", configPath}
}

// serveProc is one running `foresight serve`.
type serveProc struct {
	proc       *testproc.Process
	pid        int
	demoDir    string
	metricsURL string
	apiURL     string // the external metrics API of namespace "default"
	api        *http.Client
	plain      *http.Client
}

// startServe runs foresight serve with the config (the fake's URL in it) and
// waits until its listeners answer; it is stopped when t ends.
func startServe(t *testing.T, configPath string) *serveProc {
	t.Helper()
	bin := foresightBinary(t)
	securePort, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	metricsPort, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	demoDir := t.TempDir()
	p, err := testproc.Start("foresight serve", bin, serveArgs(securePort, metricsPort, demoDir, configPath)...)
	if err != nil {
		t.Fatal(err)
	}
	s := &serveProc{proc: p, demoDir: demoDir,
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d", metricsPort),
		apiURL:     fmt.Sprintf("https://127.0.0.1:%d/apis/external.metrics.k8s.io/v1beta1/namespaces/%s/foresight_predicted_replicas", securePort, namespace),
		plain:      &http.Client{Timeout: 10 * time.Second},
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("foresight serve output (last 60 lines):\n%s", tail(p.Output(), 60))
		}
	})
	if s.pid, err = pidOf(bin, demoDir); err != nil {
		t.Fatal(err)
	}
	err = p.WaitFor("the metrics listener and the demo client certificate", 60*time.Second, 100*time.Millisecond, func() error {
		if _, err := os.Stat(filepath.Join(demoDir, "client.key")); err != nil {
			return err
		}
		resp, err := s.plain.Get(s.metricsURL + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.api = demoClient(t, demoDir)
	return s
}

// pidOf finds the process running bin with demoDir on its command line (the
// demo directory is a fresh temporary one, so exactly one process matches);
// testproc does not expose the PID, and the RSS is read from /proc.
func pidOf(bin, demoDir string) (int, error) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return 0, fmt.Errorf("find the foresight process: %w", err)
		}
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil {
				continue
			}
			args := strings.Split(string(cmdline), "\x00")
			if len(args) > 0 && args[0] == bin && slices.Contains(args, demoDir) {
				return pid, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("no process %s with %s on its command line", bin, demoDir)
}

// memory returns the process's resident set now and its peak so far, in
// bytes (VmRSS and VmHWM of /proc/<pid>/status).
func memory(pid int) (rss, peak float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", name, err)
		}
		if name == "VmRSS" {
			rss = kb * 1024
		} else {
			peak = kb * 1024
		}
	}
	return rss, peak, sc.Err()
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	for i, l := range all {
		if len(l) > 2000 {
			all[i] = l[:2000] + fmt.Sprintf("… (%d bytes)", len(l))
		}
	}
	return strings.Join(all, "\n")
}

// demoClient trusts the demo CA and presents the demo client certificate.
func demoClient(t *testing.T, dir string) *http.Client {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("demo ca.crt holds no certificate")
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
	}}
}

// heldState is one service's foresight_prediction_held series.
type heldState struct {
	value  float64
	reason string
}

// obs is what the process showed at one moment: the external metrics API,
// then /metrics, then /readyz.
type obs struct {
	at time.Time
	// ext holds the replicas the external metrics API served, by service.
	ext map[string]int64
	// replicas, held, published and age are the per-service series of
	// namespace "default" on /metrics.
	replicas  map[string]float64
	held      map[string]heldState
	published map[string]float64
	age       map[string]float64
	// sourceErrors is foresight_source_errors_total{source="prometheus"} by kind.
	sourceErrors map[string]float64
	// filled is foresight_window_imputed_samples (carried and imputed) by
	// "service/feature": the window's samples that were missing.
	filled     map[string]float64
	families   map[string]*dto.MetricFamily
	readyCode  int
	readyBody  string
	problems   []string // contract violations seen in this observation
	rss, hwmem float64
}

func (o *obs) problem(format string, args ...any) {
	o.problems = append(o.problems, fmt.Sprintf(format, args...))
}

// fresh reports whether a service is fresh: held 0 with no reason, and a
// value on both /metrics and the external metrics API.
func (o *obs) fresh(svc string) bool {
	h, ok := o.held[svc]
	_, onMetrics := o.replicas[svc]
	_, onAPI := o.ext[svc]
	return ok && h.value == 0 && h.reason == "" && onMetrics && onAPI
}

func (o *obs) summary() string {
	var b strings.Builder
	svcs := make([]string, 0, len(o.held))
	for s := range o.held {
		svcs = append(svcs, s)
	}
	slices.Sort(svcs)
	for _, s := range svcs {
		h := o.held[s]
		ext := "-"
		if v, ok := o.ext[s]; ok {
			ext = strconv.FormatInt(v, 10)
		}
		rep := "-"
		if v, ok := o.replicas[s]; ok {
			rep = strconv.FormatFloat(v, 'g', -1, 64)
		}
		pub := "?"
		if v, ok := o.published[s]; ok {
			pub = strconv.FormatFloat(v, 'g', -1, 64)
		}
		fmt.Fprintf(&b, "  %s: held=%v(%s) published=%s api=%s metrics=%s age=%.0fs\n", s, h.value, h.reason, pub, ext, rep, o.age[s])
	}
	fmt.Fprintf(&b, "  api services without a held series: %v\n", missingKeys(o.ext, o.held))
	fmt.Fprintf(&b, "  readyz %d %q; source errors %v; rss %.0f MB (peak %.0f MB)", o.readyCode, strings.TrimSpace(o.readyBody), o.sourceErrors, o.rss/1e6, o.hwmem/1e6)
	return b.String()
}

func missingKeys[V1, V2 any](a map[string]V1, b map[string]V2) []string {
	var out []string
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// observe reads the process's state. A transport error is returned; any
// contract violation in what was read is kept in obs.problems.
func (s *serveProc) observe(services []string) (*obs, error) {
	o := &obs{at: time.Now()}
	var err error
	if o.ext, err = s.external(""); err != nil {
		return nil, err
	}
	if err := s.scrape(o); err != nil {
		return nil, err
	}
	resp, err := s.plain.Get(s.metricsURL + "/readyz")
	if err != nil {
		return nil, fmt.Errorf("GET /readyz: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	o.readyCode, o.readyBody = resp.StatusCode, string(body)
	o.rss, o.hwmem, _ = memory(s.pid)
	o.checkInvariants(services)
	return o, nil
}

// externalList is the external metrics API's answer.
type externalList struct {
	Items []struct {
		MetricName   string            `json:"metricName"`
		MetricLabels map[string]string `json:"metricLabels"`
		Value        string            `json:"value"`
	} `json:"items"`
}

// external GETs foresight_predicted_replicas (with an optional label
// selector) and returns the replicas by service; a non-200 answer, a
// duplicate service or an invalid value is an error.
func (s *serveProc) external(selector string) (map[string]int64, error) {
	u := s.apiURL
	if selector != "" {
		u += "?labelSelector=" + url.QueryEscape(selector)
	}
	resp, err := s.api.Get(u)
	if err != nil {
		return nil, fmt.Errorf("GET external metric: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET external metric: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET external metric: status %d: %.300s", resp.StatusCode, body)
	}
	return parseExternal(body)
}

func parseExternal(body []byte) (map[string]int64, error) {
	var list externalList
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("external metric answer: %w: %.300s", err, body)
	}
	out := make(map[string]int64, len(list.Items))
	for _, it := range list.Items {
		svc := it.MetricLabels["service"]
		if _, dup := out[svc]; dup {
			return nil, fmt.Errorf("external metric: two items for service %q (the HPA would sum them)", svc)
		}
		n, err := replicasValue(it.Value)
		if err != nil {
			return nil, fmt.Errorf("external metric: service %q: %w", svc, err)
		}
		out[svc] = n
	}
	return out, nil
}

// replicasValue parses a served replica count: an integer quantity within
// [minReplicas, maxReplicas].
func replicasValue(s string) (int64, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return 0, fmt.Errorf("value %q: %w", s, err)
	}
	milli := q.MilliValue()
	if milli%1000 != 0 || milli < minReplicas*1000 || milli > maxReplicas*1000 {
		return 0, fmt.Errorf("value %q is not an integer replica count in [%d,%d]", s, minReplicas, maxReplicas)
	}
	return milli / 1000, nil
}

func (s *serveProc) scrape(o *obs) error {
	resp, err := s.plain.Get(s.metricsURL + "/metrics")
	if err != nil {
		return fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /metrics: status %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	o.families, err = parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return fmt.Errorf("parse /metrics: %w", err)
	}
	o.replicas = map[string]float64{}
	o.held = map[string]heldState{}
	o.published = map[string]float64{}
	o.age = map[string]float64{}
	o.sourceErrors = map[string]float64{}
	o.filled = map[string]float64{}
	each := func(name string, fn func(l map[string]string, v float64)) {
		mf := o.families[name]
		if mf == nil {
			return
		}
		for _, m := range mf.Metric {
			l := map[string]string{}
			for _, lp := range m.Label {
				l[lp.GetName()] = lp.GetValue()
			}
			var v float64
			switch {
			case m.Gauge != nil:
				v = m.Gauge.GetValue()
			case m.Counter != nil:
				v = m.Counter.GetValue()
			case m.Untyped != nil:
				v = m.Untyped.GetValue()
			}
			fn(l, v)
		}
	}
	perService := func(name string, into map[string]float64) {
		each(name, func(l map[string]string, v float64) {
			if l["namespace"] != namespace {
				return
			}
			if _, dup := into[l["service"]]; dup {
				o.problem("%s: two series for service %q", name, l["service"])
			}
			into[l["service"]] = v
		})
	}
	perService("foresight_predicted_replicas", o.replicas)
	perService("foresight_prediction_published", o.published)
	perService("foresight_prediction_age_seconds", o.age)
	each("foresight_prediction_held", func(l map[string]string, v float64) {
		if l["namespace"] != namespace {
			return
		}
		if _, dup := o.held[l["service"]]; dup {
			o.problem("foresight_prediction_held: two series for service %q", l["service"])
		}
		o.held[l["service"]] = heldState{v, l["reason"]}
	})
	each("foresight_source_errors_total", func(l map[string]string, v float64) {
		if l["source"] == "prometheus" {
			o.sourceErrors[l["kind"]] = v
		}
	})
	each("foresight_window_imputed_samples", func(l map[string]string, v float64) {
		o.filled[l["service"]+"/"+l["feature"]] += v
	})
	for _, name := range []string{"foresight_predicted_requests", "foresight_predicted_cpu_cores", "foresight_forecast_requests",
		"foresight_observed_requests", "foresight_observed_cpu_cores", "foresight_observed_replicas"} {
		each(name, func(l map[string]string, v float64) {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				o.problem("%s%v = %v: NaN, infinite or negative", name, l, v)
			}
		})
	}
	return nil
}

// checkInvariants records every violation of what must hold at any moment,
// whatever the fake answers.
func (o *obs) checkInvariants(services []string) {
	for svc, v := range o.replicas {
		if math.IsNaN(v) || math.IsInf(v, 0) || v != math.Trunc(v) || v < minReplicas || v > maxReplicas {
			o.problem("foresight_predicted_replicas{service=%q} = %v: not an integer in [%d,%d]", svc, v, minReplicas, maxReplicas)
		}
	}
	for svc := range o.ext {
		if !slices.Contains(services, svc) {
			o.problem("external metrics API serves unknown service %q", svc)
		}
	}
	for svc, h := range o.held {
		switch {
		case h.value == 0 && h.reason != "":
			o.problem("foresight_prediction_held{service=%q} = 0 with reason %q; want reason \"\" while fresh", svc, h.reason)
		case h.value == 1 && !slices.Contains(heldReasons, h.reason):
			o.problem("foresight_prediction_held{service=%q} = 1 with reason %q; want one of %v", svc, h.reason, heldReasons)
		case h.value != 0 && h.value != 1:
			o.problem("foresight_prediction_held{service=%q} = %v; want 0 or 1", svc, h.value)
		}
	}
	for svc, v := range o.published {
		switch {
		case v != 0 && v != 1:
			o.problem("foresight_prediction_published{service=%q} = %v; want 0 or 1", svc, v)
		case v == 0 && (hasKey(o.replicas, svc) || hasKey(o.ext, svc)):
			o.problem("foresight_prediction_published{service=%q} = 0 but a value is served", svc)
		case v == 1 && !hasKey(o.replicas, svc):
			o.problem("foresight_prediction_published{service=%q} = 1 but /metrics has no foresight_predicted_replicas for it", svc)
		}
	}
	for svc, v := range o.age {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			o.problem("foresight_prediction_age_seconds{service=%q} = %v", svc, v)
		}
	}
	if o.readyCode != http.StatusOK && o.readyCode != http.StatusServiceUnavailable {
		o.problem("/readyz answered %d", o.readyCode)
	}
	if o.readyCode == http.StatusServiceUnavailable && strings.TrimSpace(o.readyBody) == "" {
		o.problem("/readyz is 503 without saying why")
	}
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

// env is a fake Prometheus and the serve process reading it.
type env struct {
	services []string
	fake     *fakeprom.Server
	serve    *serveProc
	config   string
	// reported dedupes problems so that one violation seen on every poll
	// is reported once per test.
	reported map[string]bool
}

func newEnv(t *testing.T, fake *fakeprom.Server, services []string) *env {
	t.Helper()
	e := &env{services: services, fake: fake, config: writeConfig(t, fmt.Sprintf(baseConfig, fake.URL())), reported: map[string]bool{}}
	e.serve = startServe(t, e.config)
	return e
}

// alive fails the test when the process has exited.
func (e *env) alive(t *testing.T) {
	t.Helper()
	if exited, err := e.serve.proc.Exited(); exited {
		t.Fatalf("foresight serve exited (%v) with faults %v; last output:\n%s", err, e.fake.Faults(), tail(e.serve.proc.Output(), 40))
	}
}

// observe reads the state, reports new contract violations on t, and fails
// the test if the process died.
func (e *env) observe(t *testing.T) (*obs, error) {
	t.Helper()
	e.alive(t)
	o, err := e.serve.observe(e.services)
	if err != nil {
		e.alive(t)
		return nil, err
	}
	for _, p := range o.problems {
		if !e.reported[t.Name()+p] {
			e.reported[t.Name()+p] = true
			t.Errorf("at %s: %s", o.at.Format("15:04:05.000"), p)
		}
	}
	return o, nil
}

// pollEvery is how often the tests look at the process.
const pollEvery = 200 * time.Millisecond

// waitUntil observes until cond holds, calling each (if set) on every
// observation, and fails the test after timeout.
func (e *env) waitUntil(t *testing.T, what string, timeout time.Duration, cond func(*obs) error, each func(*obs)) *obs {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *obs
	var lastErr error
	for {
		o, err := e.observe(t)
		if err == nil {
			last = o
			if each != nil {
				each(o)
			}
			if err = cond(o); err == nil {
				return o
			}
		}
		lastErr = err
		if time.Now().After(deadline) {
			state := "no observation"
			if last != nil {
				state = last.summary()
			}
			t.Fatalf("%s: not reached within %v: %v\nlast state:\n%s", what, timeout, lastErr, state)
		}
		time.Sleep(pollEvery)
	}
}

// allFresh is the healthy state: every service fresh and served.
func (e *env) allFresh(o *obs) error {
	var stale []string
	for _, svc := range e.services {
		if !o.fresh(svc) {
			stale = append(stale, svc)
		}
	}
	if len(stale) > 0 {
		return fmt.Errorf("not fresh: %v", stale)
	}
	if o.readyCode != http.StatusOK {
		return fmt.Errorf("/readyz %d", o.readyCode)
	}
	return nil
}

// restore makes the fake healthy again (and listening).
func (e *env) restore(t *testing.T) {
	t.Helper()
	e.fake.Healthy()
	if err := e.fake.Up(); err != nil {
		t.Error(err)
	}
}

// ensureRunning restarts the process if an earlier case killed it, so one
// crash does not fail every later case.
func (e *env) ensureRunning(t *testing.T, parent *testing.T) {
	t.Helper()
	if exited, err := e.serve.proc.Exited(); exited {
		t.Logf("foresight serve had exited (%v); starting a new one", err)
		e.serve = startServe(parent, e.config)
	}
}

var errNotYet = errors.New("not yet")

// ctxSleep sleeps d or until ctx is done.
func ctxSleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
