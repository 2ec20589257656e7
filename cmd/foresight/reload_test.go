package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/foresightscale/foresight/forecaster"
	"github.com/foresightscale/foresight/forecaster/config"
	"github.com/foresightscale/foresight/models"
)

// writeDemoModel writes the built-in model into dir, its manifest changed by
// edit (nil: unchanged) and its model.onnx cut to keep bytes (0: whole).
func writeDemoModel(t testing.TB, dir string, edit func(m map[string]any), keep int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	onnx, err := fs.ReadFile(models.Demo(), "model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if keep > 0 {
		onnx = onnx[:keep]
	}
	raw, err := fs.ReadFile(models.Demo(), "manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		if raw, err = json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range map[string][]byte{"model.onnx": onnx, "manifest.json": raw} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// retrained is a valid model other than the built-in one: renamed, and its
// request statistics scaled, which scales what it forecasts (the golden
// check runs in normalised units, so it still passes, as a retrained
// model's would).
func retrained(m map[string]any) {
	m["name"], m["version"] = "boutique-retrained", "2"
	st := m["normalization"].(map[string]any)["requests"].(map[string]any)
	for _, k := range []string{"mean", "std"} {
		vs := st[k].([]any)
		for i, v := range vs {
			vs[i] = v.(float64) * 1.5
		}
	}
}

// otherServices is a model of another application: every service renamed.
func otherServices(m map[string]any) {
	m["name"] = "other-app"
	rename := func(v any) any { return "billing-" + v.(string) }
	svcs := m["services"].([]any)
	for i, s := range svcs {
		svcs[i] = rename(s)
	}
	for _, e := range m["callGraph"].([]any) {
		edge := e.(map[string]any)
		edge["caller"], edge["callee"] = rename(edge["caller"]), rename(edge["callee"])
	}
}

// swapLink points link at target atomically (a new link renamed over the
// old one), as a mounted ConfigMap's ..data link or a careful CI job does.
func swapLink(t *testing.T, target, link string) {
	t.Helper()
	tmp := link + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

// reloadState is what /metrics says about the model and the cycles.
type reloadState struct {
	body                 string
	loaded, rejected     float64
	ok, degraded, failed float64
	modelInfo            []string // names in foresight_model_info
	predictedBy          map[string]int
	nonFinite            []string
}

func (s reloadState) cycles() float64 { return s.ok + s.degraded + s.failed }

func scrapeReload(t *testing.T, s *server) (reloadState, error) {
	t.Helper()
	_, body, err := get(&http.Client{Timeout: 5 * time.Second}, s.metrics+"/metrics")
	if err != nil {
		return reloadState{}, err
	}
	st := reloadState{body: body, predictedBy: map[string]int{}}
	st.loaded, _ = metricValue(body, "foresight_model_reloads_total", `result="loaded"`)
	st.rejected, _ = metricValue(body, "foresight_model_reloads_total", `result="rejected"`)
	st.ok, _ = metricValue(body, "foresight_cycles_total", `result="ok"`)
	st.degraded, _ = metricValue(body, "foresight_cycles_total", `result="degraded"`)
	st.failed, _ = metricValue(body, "foresight_cycles_total", `result="failed"`)
	for _, line := range strings.Split(body, "\n") {
		switch {
		case strings.HasPrefix(line, "foresight_model_info{"):
			_, rest, _ := strings.Cut(line, `name="`)
			name, _, _ := strings.Cut(rest, `"`)
			st.modelInfo = append(st.modelInfo, name)
		case strings.HasPrefix(line, "foresight_predicted_replicas{"):
			_, rest, _ := strings.Cut(line, `model="`)
			name, _, _ := strings.Cut(rest, `"`)
			st.predictedBy[name]++
			f := strings.Fields(line)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 1 {
				st.nonFinite = append(st.nonFinite, line)
			}
		}
	}
	return st, nil
}

// TestServeReloadsModel replaces the model directory under a running serve
// (a symlink swapped, as a mounted ConfigMap does) with (a) a good model
// (trained with another seed),
// (b) a corrupt one, (c) one for other services, then SIGHUPs it: (a) is
// served from the next cycle, (b) and (c) are rejected with the metric and
// an error line while the old model keeps serving, no cycle fails or is
// skipped, and every published value is finite and the serving model's.
func TestServeReloadsModel(t *testing.T) {
	root := t.TempDir()
	const services = 10
	writeDemoModel(t, filepath.Join(root, "v1"), nil, 0)
	// (a) is trained as a user would, briefly (2 days of the synthetic
	// workload, 2 epochs, another seed: about 6 s).
	if out, err := exec.Command(foresightBinary(t), "train", "--synthetic", "--synthetic-days", "2", "--epochs", "2", "--seed", "7",
		"--season", "none", "--name", "boutique-retrained", "--out", filepath.Join(root, "v2")).CombinedOutput(); err != nil {
		t.Fatalf("foresight train: %v\n%s", err, out)
	}
	writeDemoModel(t, filepath.Join(root, "v3"), retrained, 50000) // torn: a third of model.onnx
	writeDemoModel(t, filepath.Join(root, "v4"), otherServices, 0)
	current := filepath.Join(root, "current")
	swapLink(t, filepath.Join(root, "v1"), current)
	cfg := writeFile(t, fmt.Sprintf(`interval: 1s
staleAfter: 30s
modelReload: 1s
model: %s
policy:
  capacityPerPod: 20
`, current))
	s := startServe(t, "--demo", "--config", cfg)
	var st reloadState
	waitState := func(what string, check func(reloadState) error) {
		t.Helper()
		waitFor(t, what, func() error {
			var err error
			if st, err = scrapeReload(t, s); err != nil {
				return err
			}
			return check(st)
		})
	}
	// serving asserts that the next cycle after now publishes every service
	// from model name, and that nothing failed or is not finite.
	serving := func(name string) {
		t.Helper()
		c0 := st.cycles()
		waitState("a cycle after "+name+" serves", func(st reloadState) error {
			if st.cycles() <= c0 {
				return fmt.Errorf("no cycle after %v", c0)
			}
			return nil
		})
		if st.predictedBy[name] != services || len(st.predictedBy) != 1 {
			t.Errorf("the first cycle publishes predictions by model %v; want %d by %s", st.predictedBy, services, name)
		}
		if len(st.modelInfo) != 1 || st.modelInfo[0] != name {
			t.Errorf("foresight_model_info names %v; want [%s]", st.modelInfo, name)
		}
		if st.failed != 0 || len(st.nonFinite) > 0 {
			t.Errorf("%v failed cycles, published values not finite: %q", st.failed, st.nonFinite)
		}
	}
	start := time.Now()
	waitState("the built-in model serving from the directory", func(st reloadState) error {
		if st.predictedBy["boutique-gnn"] != services {
			return fmt.Errorf("predictions by %v", st.predictedBy)
		}
		return nil
	})
	firstCycles, firstAt := st.cycles(), time.Now()
	serving("boutique-gnn")

	// (a) A good model: loaded, and the next cycle is the new model's.
	swapLink(t, filepath.Join(root, "v2"), current)
	swapped := time.Now()
	waitState("(a) loaded", func(st reloadState) error {
		if st.loaded != 1 {
			return fmt.Errorf("loaded %v", st.loaded)
		}
		return nil
	})
	// Polled every second and scraped every 100 ms: about 1.1 s at most.
	t.Logf("(a) loaded %v after the swap", time.Since(swapped).Round(10*time.Millisecond))
	serving("boutique-retrained")
	if !strings.Contains(s.log(), `msg="model reloaded; serving it from the next cycle" app=default model=boutique-retrained`) {
		t.Error("no log line for the loaded model")
	}

	// (b) corrupt and (c) another application's: rejected, the retrained
	// model keeps serving.
	for i, tc := range []struct{ dir, why string }{
		{"v3", "model.onnx"},
		{"v4", "does not forecast 10 services the served model boutique-retrained forecasts from the data"},
	} {
		swapLink(t, filepath.Join(root, tc.dir), current)
		waitState(tc.dir+" rejected", func(st reloadState) error {
			if st.rejected != float64(i+1) {
				return fmt.Errorf("rejected %v", st.rejected)
			}
			return nil
		})
		serving("boutique-retrained")
		if st.loaded != 1 {
			t.Errorf("%s: loaded %v; want still 1", tc.dir, st.loaded)
		}
		out := s.log()
		at := strings.LastIndex(out, `msg="model reload rejected; the current model keeps serving"`)
		if at < 0 || !strings.Contains(out[at:], tc.why) {
			t.Errorf("%s: no rejection line with %q", tc.dir, tc.why)
		}
	}
	// A poll does not report the same rejected content again.
	time.Sleep(2500 * time.Millisecond)
	if st, _ = scrapeReload(t, s); st.rejected != 2 {
		t.Errorf("rejected %v after more polls of the same model; want 2", st.rejected)
	}

	// SIGHUP re-reads now, the rejected model too; the process keeps serving.
	if err := s.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitState("SIGHUP re-read", func(st reloadState) error {
		if st.rejected != 3 {
			return fmt.Errorf("rejected %v", st.rejected)
		}
		return nil
	})
	serving("boutique-retrained")
	if !strings.Contains(s.log(), `msg="SIGHUP: re-reading every application's model" apps=1`) {
		t.Error("no log line for SIGHUP")
	}

	// No cycle missed: at a 1 s interval, about one a second throughout.
	elapsed := time.Since(firstAt).Seconds()
	if ran := st.cycles() - firstCycles; ran < 0.8*elapsed-1 || st.failed != 0 {
		t.Errorf("%v cycles in %.1fs at a 1s interval, %v failed; want one a second, none failed", ran, elapsed, st.failed)
	}
	for _, line := range strings.Split(s.log(), "\n") {
		if strings.Contains(line, "model reload") || strings.Contains(line, "model reloaded") || strings.Contains(line, "SIGHUP") {
			t.Log(textCut(line))
		}
	}
	t.Logf("%v cycles (%v degraded, %v failed) in %.1fs; reloads loaded %v, rejected %v", st.cycles(), st.degraded, st.failed, time.Since(start).Seconds(), st.loaded, st.rejected)
}

// TestServeReloadOnSIGHUP: with polling off (modelReload: 0s) a changed
// directory is loaded on SIGHUP only, and SIGHUP does not end the process.
func TestServeReloadOnSIGHUP(t *testing.T) {
	root := t.TempDir()
	writeDemoModel(t, filepath.Join(root, "v1"), nil, 0)
	writeDemoModel(t, filepath.Join(root, "v2"), retrained, 0)
	current := filepath.Join(root, "current")
	swapLink(t, filepath.Join(root, "v1"), current)
	cfg := writeFile(t, fmt.Sprintf("interval: 1s\nstaleAfter: 30s\nmodelReload: 0s\nmodel: %s\n", current))
	s := startServe(t, "--demo", "--config", cfg)
	var st reloadState
	waitFor(t, "serving", func() error {
		var err error
		if st, err = scrapeReload(t, s); err != nil {
			return err
		}
		if st.predictedBy["boutique-gnn"] == 0 {
			return fmt.Errorf("predictions by %v", st.predictedBy)
		}
		return nil
	})
	swapLink(t, filepath.Join(root, "v2"), current)
	time.Sleep(3 * time.Second)
	if st, _ = scrapeReload(t, s); st.loaded != 0 || st.predictedBy["boutique-gnn"] == 0 {
		t.Fatalf("with polling off, loaded %v and predictions by %v before SIGHUP", st.loaded, st.predictedBy)
	}
	if err := s.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "loaded on SIGHUP", func() error {
		var err error
		if st, err = scrapeReload(t, s); err != nil {
			return err
		}
		if st.loaded != 1 || st.predictedBy["boutique-retrained"] == 0 {
			return fmt.Errorf("loaded %v, predictions by %v", st.loaded, st.predictedBy)
		}
		return nil
	})
	// A second SIGHUP with nothing changed loads nothing.
	if err := s.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "unchanged on the second SIGHUP", func() error {
		if !strings.Contains(s.log(), "SIGHUP: model unchanged; nothing to reload") {
			return fmt.Errorf("not logged yet")
		}
		return nil
	})
	if st, _ = scrapeReload(t, s); st.loaded != 1 || st.rejected != 0 {
		t.Errorf("after an unchanged SIGHUP: loaded %v rejected %v; want 1, 0", st.loaded, st.rejected)
	}
}

// textCut keeps a logged line short enough to read in test output.
func textCut(s string) string {
	if len(s) > 400 {
		return s[:400] + "..."
	}
	return s
}

// TestReloaderCheck drives one application's reloader poll by poll through
// what a model directory goes through on disk: each step changes the files
// and says what the poll must do.
func TestReloaderCheck(t *testing.T) {
	dir := t.TempDir()
	writeDemoModel(t, dir, nil, 0)
	cfg := config.Default()
	cfg.Model = dir
	cfg.Policy.CapacityPerPod = 20
	registry := prometheus.NewRegistry()
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))
	apps, err := (&serveOptions{demo: true}).buildApps(cfg, registry, log)
	if err != nil {
		t.Fatal(err)
	}
	r := apps[0].reloader
	if r == nil {
		t.Fatal("no reloader for an application with a model directory")
	}
	onnx := filepath.Join(dir, "model.onnx")
	whole, err := os.ReadFile(onnx)
	if err != nil {
		t.Fatal(err)
	}
	counts := func() (float64, float64) {
		body, err := testutil.CollectAndFormat(registry, expfmt.TypeTextPlain, "foresight_model_reloads_total")
		if err != nil {
			t.Fatal(err)
		}
		l, _ := metricValue(string(body), "foresight_model_reloads_total", `result="loaded"`)
		j, _ := metricValue(string(body), "foresight_model_reloads_total", `result="rejected"`)
		return l, j
	}
	for _, step := range []struct {
		name             string
		change           func()
		force            bool
		swapped          bool
		loaded, rejected float64
		model            string
	}{
		{"unchanged", func() {}, false, false, 0, 0, "boutique-gnn"},
		{"touched, same contents", func() { _ = os.Chtimes(onnx, time.Now(), time.Now().Add(time.Hour)) }, false, false, 0, 0, "boutique-gnn"},
		{"model.onnx being written in place: a torn read is rejected", func() { writeDemoModel(t, dir, retrained, len(whole)/2) }, false, false, 0, 1, "boutique-gnn"},
		{"the same torn contents are not reported again", func() {}, false, false, 0, 1, "boutique-gnn"},
		{"SIGHUP reports them again", func() {}, true, false, 0, 2, "boutique-gnn"},
		{"written to the end: loaded", func() { writeDemoModel(t, dir, retrained, 0) }, false, true, 1, 2, "boutique-retrained"},
		{"removed: rejected once", func() { _ = os.Remove(onnx) }, false, false, 1, 3, "boutique-retrained"},
		{"still removed: not again", func() {}, false, false, 1, 3, "boutique-retrained"},
		{"back as it was: nothing to load", func() { writeDemoModel(t, dir, retrained, 0) }, false, false, 1, 3, "boutique-retrained"},
		{"SIGHUP on the model served: nothing to load", func() {}, true, false, 1, 3, "boutique-retrained"},
		{"the first model again: loaded", func() { writeDemoModel(t, dir, nil, 0) }, false, true, 2, 3, "boutique-gnn"},
	} {
		step.change()
		if got := r.check(step.force); got != step.swapped {
			t.Errorf("%s: check swapped = %v, want %v", step.name, got, step.swapped)
		}
		if l, j := counts(); l != step.loaded || j != step.rejected {
			t.Errorf("%s: reloads loaded %v rejected %v; want %v, %v", step.name, l, j, step.loaded, step.rejected)
		}
		if got := apps[0].loop.Model().Name; got != step.model {
			t.Errorf("%s: serving %s, want %s", step.name, got, step.model)
		}
	}
	if t.Failed() {
		t.Log(logs.String())
	}
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// BenchmarkReloaderPoll is the cost of one poll of a model directory with
// the demo model: unchanged (read and hash both files) and changed (also
// parse, check the golden output, start a session and swap).
func BenchmarkReloaderPoll(b *testing.B) {
	for _, changed := range []bool{false, true} {
		name := "unchanged"
		if changed {
			name = "changed"
		}
		b.Run(name, func(b *testing.B) {
			dirs := []string{b.TempDir(), b.TempDir()}
			writeDemoModel(b, dirs[0], nil, 0)
			writeDemoModel(b, dirs[1], retrained, 0)
			cfg := config.Default()
			cfg.Model = dirs[0]
			cfg.Policy.CapacityPerPod = 20
			apps, err := (&serveOptions{demo: true}).buildApps(cfg, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			r := apps[0].reloader
			i := 0
			r.resolve = func() (string, error) {
				if changed {
					i++
				}
				return dirs[i%2], nil
			}
			b.ResetTimer()
			for range b.N {
				if got := r.check(false); got != changed {
					b.Fatalf("check swapped = %v", got)
				}
			}
		})
	}
}

// TestPodEvents: a rejected and a loaded model become Events on the pod
// named by POD_NAME and POD_NAMESPACE.
func TestPodEvents(t *testing.T) {
	t.Setenv("POD_NAME", "foresight-7c9d-x2")
	t.Setenv("POD_NAMESPACE", "foresight")
	client := kubefake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev, err := newPodEvents(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	ev.Event(corev1.EventTypeWarning, forecaster.EventModelRejected, "model in /models/shop rejected")
	ev.Event(corev1.EventTypeNormal, forecaster.EventModelLoaded, "model shop 2 loaded from /models/shop")
	waitFor(t, "two Events on the pod", func() error {
		list, err := client.EventsV1().Events("foresight").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(list.Items) != 2 {
			return fmt.Errorf("%d events", len(list.Items))
		}
		for _, e := range list.Items {
			if r := e.Regarding; r.Kind != "Pod" || r.Name != "foresight-7c9d-x2" || r.Namespace != "foresight" {
				return fmt.Errorf("event %s regards %+v", e.Reason, r)
			}
			if e.Action != "ReloadModel" || e.ReportingController != "foresight.io/serve" {
				return fmt.Errorf("event %s: action %q controller %q", e.Reason, e.Action, e.ReportingController)
			}
		}
		return nil
	})
}
