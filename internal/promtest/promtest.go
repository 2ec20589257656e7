// Package promtest runs a real Prometheus server (and promtool) for tests, on
// loopback, with optional backfilled history and rule files.
//
// Tests skip when the binaries are missing, unless FORESIGHT_REQUIRE_PROMETHEUS
// is set (CI sets it to 1 after `hack/prometheus.sh ensure`), in which case a
// missing binary fails the test.
package promtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/internal/testproc"
)

// EnvRequire names the environment variable that turns a missing
// prometheus or promtool binary into a test failure instead of a skip.
const EnvRequire = "FORESIGHT_REQUIRE_PROMETHEUS"

// Defaults for Options.
const (
	DefaultReadyTimeout       = 30 * time.Second
	DefaultEvaluationInterval = 30 * time.Second
	DefaultScrapeInterval     = 15 * time.Second
)

// ScrapeJob is the job label of the series scraped from Options.ScrapeTargets.
const ScrapeJob = "promtest"

// promtoolTimeout bounds one promtool run.
const promtoolTimeout = 2 * time.Minute

// Options configures Start.
type Options struct {
	// RulesFile, when set, is loaded as a Prometheus rule file.
	RulesFile string
	// EvaluationInterval of the rules (0 means DefaultEvaluationInterval).
	EvaluationInterval time.Duration
	// Backfill, when set, is an OpenMetrics file turned into TSDB blocks
	// (promtool tsdb create-blocks-from openmetrics) before the server starts.
	Backfill string
	// ReadyTimeout bounds the wait for /-/ready (0 means DefaultReadyTimeout).
	ReadyTimeout time.Duration
	// ScrapeTargets, when set, are loopback host:port addresses whose
	// /metrics Prometheus scrapes (job ScrapeJob) every ScrapeInterval.
	// honor_labels is on, as in Foresight's ServiceMonitor: scraped series
	// keep their own namespace and service labels.
	ScrapeTargets []string
	// ScrapeInterval of the targets (0 means DefaultScrapeInterval).
	ScrapeInterval time.Duration
}

// Server is a running Prometheus. The test's cleanup stops it.
type Server struct {
	url string
}

// URL is the server's base URL, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.url }

// required reports whether a missing binary must fail the test.
func required() bool {
	v := strings.TrimSpace(os.Getenv(EnvRequire))
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b // an unparsable value is treated as "required": better loud than silent
}

// Binary returns the path of a Prometheus binary (prometheus or promtool),
// skipping the test when it is absent, or failing it when EnvRequire is set.
func Binary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found on PATH (%v); install it with `hack/prometheus.sh ensure`", name, err)
	if required() {
		t.Fatalf("%s; %s is set, so a missing binary is a failure", msg, EnvRequire)
	}
	t.Skipf("%s; skipping (set %s=1 to make this a failure)", msg, EnvRequire)
	return ""
}

// Promtool runs promtool with args and returns its combined output; err is
// non-nil when it exits non-zero. Skips or fails like Binary when promtool is missing.
func Promtool(t testing.TB, args ...string) (string, error) {
	t.Helper()
	bin := Binary(t, "promtool")
	ctx, cancel := context.WithTimeout(context.Background(), promtoolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("promtool %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// Start starts Prometheus on a free loopback port and waits until it is
// ready. The test's cleanup stops it and waits for it to exit.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Binary(t, "prometheus")
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	if opts.EvaluationInterval == 0 {
		opts.EvaluationInterval = DefaultEvaluationInterval
	}
	if opts.ScrapeInterval == 0 {
		opts.ScrapeInterval = DefaultScrapeInterval
	}
	for _, target := range opts.ScrapeTargets {
		if err := checkLoopback(target); err != nil {
			t.Fatalf("promtest: scrape target: %v", err)
		}
	}

	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		t.Fatalf("promtest: %v", err)
	}
	if opts.Backfill != "" {
		// Blocks written before start-up are loaded when the server opens its TSDB.
		if out, err := Promtool(t, "tsdb", "create-blocks-from", "openmetrics", "--quiet", opts.Backfill, dataDir); err != nil {
			t.Fatalf("promtest: backfill %s: %v\n%s", opts.Backfill, err, out)
		}
	}
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(configYAML(opts)), 0o644); err != nil {
		t.Fatalf("promtest: write config: %v", err)
	}

	// Picking a free port and handing it over races with other processes;
	// retry the rare loser a few times.
	const attempts = 3
	for attempt := 1; ; attempt++ {
		s, err := start(t, bin, configFile, dataDir, opts.ReadyTimeout)
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == attempts {
			t.Fatalf("promtest: %v", err)
		}
	}
}

var errPortTaken = errors.New("listen address already in use")

func configYAML(opts Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  evaluation_interval: %s\n", formatDuration(opts.EvaluationInterval))
	if opts.RulesFile != "" {
		abs, err := filepath.Abs(opts.RulesFile)
		if err != nil {
			abs = opts.RulesFile
		}
		fmt.Fprintf(&b, "rule_files:\n  - %s\n", strconv.Quote(abs))
	}
	if len(opts.ScrapeTargets) > 0 {
		// Prometheus refuses a scrape timeout longer than the interval.
		timeout := min(opts.ScrapeInterval, 10*time.Second)
		fmt.Fprintf(&b, "scrape_configs:\n  - job_name: %s\n    honor_labels: true\n    scrape_interval: %s\n    scrape_timeout: %s\n    static_configs:\n      - targets:\n",
			ScrapeJob, formatDuration(opts.ScrapeInterval), formatDuration(timeout))
		for _, target := range opts.ScrapeTargets {
			fmt.Fprintf(&b, "          - %s\n", strconv.Quote(target))
		}
	}
	return b.String()
}

// checkLoopback accepts host:port with a loopback IP or localhost: tests
// never reach beyond the machine.
func checkLoopback(target string) error {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", target, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: bad port: %w", target, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q is not a loopback address", target)
	}
	return nil
}

// formatDuration writes a duration in Prometheus' syntax (whole milliseconds).
func formatDuration(d time.Duration) string {
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

func start(t testing.TB, bin, configFile, dataDir string, readyTimeout time.Duration) (*Server, error) {
	port, err := testproc.FreePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p, err := testproc.Start("prometheus", bin,
		"--config.file="+configFile,
		"--storage.tsdb.path="+dataDir,
		// The backfilled history is years old. Retention counts back from
		// the newest data, so the default 15d keeps it only until fresh
		// samples (rule results) reach a block; 100y keeps it for good.
		"--storage.tsdb.retention.time=100y",
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	if err != nil {
		return nil, err
	}
	url := "http://" + addr
	client := &http.Client{Timeout: time.Second}
	if err := p.WaitFor("/-/ready", readyTimeout, 100*time.Millisecond, func() error {
		resp, err := client.Get(url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready answered %s", resp.Status)
		}
		return nil
	}); err != nil {
		p.Stop()
		out := p.Output()
		if strings.Contains(out, "address already in use") {
			return nil, fmt.Errorf("%s: %w", addr, errPortTaken)
		}
		return nil, fmt.Errorf("prometheus on %s: %w\noutput:\n%s", addr, err, out)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.Output())
		}
	})
	return &Server{url: url}, nil
}

// queryTimeout bounds one Query.
const queryTimeout = 10 * time.Second

// Query runs an instant PromQL query evaluated at at and returns the
// samples' values as Prometheus formats them ("0.5", "NaN"). A failed
// request or query fails the test.
func (s *Server) Query(t testing.TB, expr string, at time.Time) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	u := s.url + "/api/v1/query?" + url.Values{"query": {expr}, "time": {at.Format(time.RFC3339Nano)}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("query %q: %v", expr, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("query %q: decoding the answer: %v", expr, err)
	}
	if body.Status != "success" {
		t.Fatalf("query %q: %s: %s", expr, body.Status, body.Error)
	}
	out := make([]string, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		out = append(out, fmt.Sprint(r.Value[1]))
	}
	return out
}
