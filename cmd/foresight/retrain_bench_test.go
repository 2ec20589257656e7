package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/meshtest"
	"github.com/foresightscale/foresight/internal/promtest"
)

// BenchmarkServeWhileRetraining runs the release binary's serve with
// model: auto and retrain on a real Prometheus holding a day at 30-second
// steps of a layered 50-service application, and samples, every 100 ms
// until its first training run ends, serve's resident memory and its
// training child's: what a container running both must allow. It reports
// serve's and the child's peaks while the child runs, the peak of their
// sum, and serve's RSS a few cycles after it swapped the learnt model in.
func BenchmarkServeWhileRetraining(b *testing.B) {
	promtest.Binary(b, "prometheus")
	bin := releaseBinary(b)
	const n = 50
	now := time.Now().Truncate(30 * time.Second)
	history := layeredHistoryEndingAt(b, meshtest.Layered(n, 3, n), source.AllFeatures, now.Add(30*time.Minute), 24*time.Hour+30*time.Minute, 30*time.Second)
	prom := promtest.Start(b, promtest.Options{Backfill: promtest.WriteOpenMetricsFile(b, "default", history)})
	dir := b.TempDir()
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte("namespace: default\ninterval: 5s\nmodel: auto\nmodelStore: "+filepath.Join(dir, "store")+"\n"+
		"retrain: {every: 24h, history: 24h, minHistory: 1h, epochs: 3}\nsource:\n  prometheus:\n    url: "+prom.URL()+"\npolicy:\n  capacityPerPod: 50\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		securePort, metricsPort := freePort(b), freePort(b)
		var out bytes.Buffer
		cmd := exec.Command(bin, "serve", "--demo", "--config", config, "--secure-port", strconv.Itoa(securePort),
			"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metricsPort), "--demo-dir", filepath.Join(dir, "demo"))
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		pid := cmd.Process.Pid
		var servePeak, childPeak, sumPeak int64
		var trained bool
		for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			serveRSS := rssKiB(pid)
			var childRSS int64
			for _, c := range childPIDs(pid) {
				childRSS += rssKiB(c)
			}
			if childRSS > 0 {
				servePeak, childPeak, sumPeak = max(servePeak, serveRSS), max(childPeak, childRSS), max(sumPeak, serveRSS+childRSS)
			}
			if trained = retrainEnded(metricsPort); trained {
				break
			}
		}
		time.Sleep(3 * time.Second) // a few cycles on the learnt model
		after := rssKiB(pid)
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if !trained || childPeak == 0 {
			b.Fatalf("the training run did not end, or no child was seen (trained %v):\n%s", trained, out.String())
		}
		b.ReportMetric(float64(servePeak)/1024, "serve-RSS-training-MiB")
		b.ReportMetric(float64(after)/1024, "serve-RSS-after-MiB")
		b.ReportMetric(float64(childPeak)/1024, "child-RSS-peak-MiB")
		b.ReportMetric(float64(sumPeak)/1024, "serve+child-peak-MiB")
	}
}

// retrainEnded reports whether serve's first training run has ended.
func retrainEnded(metricsPort int) bool {
	_, body, err := get(&http.Client{Timeout: time.Second}, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "foresight_retrain_runs_total{") && !strings.HasSuffix(line, " 0") {
			return true
		}
	}
	return false
}

// rssKiB is a process's resident set (VmRSS) in KiB, 0 when it is gone.
func rssKiB(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kib
		}
	}
	return 0
}

// childPIDs are the children of every thread of pid (childproc forks from
// a thread of its own).
func childPIDs(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}
