package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foresightscale/foresight/forecaster"
	"github.com/foresightscale/foresight/forecaster/config"
	"github.com/foresightscale/foresight/internal/childproc"
	"github.com/foresightscale/foresight/models/store"
	"github.com/foresightscale/foresight/models/training"
)

// Results of one training run, the result label of
// foresight_retrain_runs_total.
const (
	retrainPromoted = "promoted"
	retrainKept     = "kept"
	// retrainWaiting: the application's history is shorter than
	// retrain.minHistory; nothing was trained.
	retrainWaiting = "not_enough_history"
	retrainFailed  = "failed"
)

// retrainRetry bounds the wait after a run that trained nothing (too little
// history, a failure): an hour, or retrain.every if shorter.
const retrainRetry = time.Hour

// retrainer trains one application's model on its schedule: it runs
// `foresight train --promote` (this same binary) as a child process at the
// lowest CPU priority, so training never costs the forecast loop a cycle
// and an out-of-memory kill takes the child, not serve. The child promotes
// its model into the store only if it beats the serving one; the
// application's reloader then swaps it in.
type retrainer struct {
	app     string
	every   time.Duration
	timeout time.Duration
	exe     string
	args    []string // train's command line, without --report
	// lastRun returns when the store last recorded a decision (false:
	// none, or unknown).
	lastRun  func(context.Context) (time.Time, bool)
	hasModel func() bool
	// reload, if set, makes the application's reloader check the store now.
	reload func()
	// events, if set, records the runs' outcomes on the pod; decisions only
	// when recordDecisions (a ConfigMap store's trainer records those on
	// the ConfigMap itself).
	events          forecaster.EventRecorder
	recordDecisions bool
	metrics         *retrainMetrics
	log             *slog.Logger
	now             func() time.Time
	// oneAtATime is shared by the applications of one serve: their runs
	// take turns, so the process never holds two trainings' memory.
	oneAtATime chan struct{}
}

// newRetrainer prepares the retraining of an application with retrain set:
// the child's command line is serve's own configuration, so it reads the
// history with exactly the serving queries.
func (o *serveOptions) newRetrainer(spec config.App, listed bool, loop *forecaster.Forecaster, rl *reloader, reg prometheus.Registerer, log *slog.Logger) (*retrainer, error) {
	if o.configFile == "" {
		return nil, errors.New("retrain: needs --config (the training run reads the application's history with it)")
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("retrain: finding this executable to run `foresight train`: %w", err)
	}
	kubeconfig := o.adapter.RemoteKubeConfigFile
	st, err := openStore(spec.ModelStore, spec.Namespace, kubeconfig, store.DefaultKeep)
	if err != nil {
		return nil, fmt.Errorf("retrain: %w", err)
	}
	r := spec.Retrain
	args := []string{"train", "--config", o.configFile}
	if listed {
		args = append(args, "--app", spec.Name)
	}
	if o.prometheusURL != "" {
		args = append(args, "--prometheus-url", o.prometheusURL)
	}
	if o.namespace != "" {
		args = append(args, "--namespace", o.namespace)
	}
	args = append(args,
		"--history", time.Duration(r.History).String(),
		"--min-history", time.Duration(r.MinHistory).String(),
		"--step", time.Duration(r.Step).String(),
		"--promote", spec.ModelStore,
		// Follows services and calls added or removed since the last run;
		// without mesh metrics it trains without a call graph (said).
		"--call-graph", "discover")
	if r.Epochs > 0 {
		args = append(args, "--epochs", strconv.Itoa(r.Epochs))
	}
	if r.MaxLastValueRatio != 1 {
		args = append(args, "--max-last-value-ratio", strconv.FormatFloat(r.MaxLastValueRatio, 'g', -1, 64))
	}
	if kubeconfig != "" {
		args = append(args, "--kubeconfig", kubeconfig)
	}
	rt := &retrainer{
		app: spec.Name, every: time.Duration(r.Every), timeout: time.Duration(r.Timeout), exe: exe, args: args,
		lastRun:         func(ctx context.Context) (time.Time, bool) { return lastDecision(ctx, st, log) },
		hasModel:        loop.HasModel,
		events:          o.events,
		recordDecisions: !isConfigMapStore(st),
		metrics:         newRetrainMetrics(reg),
		log:             log.With("component", "retrain"),
		now:             time.Now,
		oneAtATime:      o.trainingTurn(),
	}
	if rl != nil {
		rt.reload = rl.requestCheck
	}
	if rt.every < time.Hour {
		rt.log.Warn("retrain.every is under an hour: each run reads the whole history and trains for minutes", "every", rt.every)
	}
	return rt, nil
}

// trainingTurn is the token serve's training runs pass between them.
func (o *serveOptions) trainingTurn() chan struct{} {
	if o.retrainTurn == nil {
		o.retrainTurn = make(chan struct{}, 1)
	}
	return o.retrainTurn
}

func isConfigMapStore(st modelStore) bool {
	_, ok := st.(configMapStore)
	return ok
}

// lastDecision is when the store last recorded a champion/challenger
// decision; false when it has none or cannot say.
func lastDecision(ctx context.Context, st modelStore, log *slog.Logger) (time.Time, bool) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := st.lastDecision(ctx)
	if err != nil {
		log.Warn("retrain: cannot read when the store last trained; training now", "store", st, "err", err)
		return time.Time{}, false
	}
	if b == nil {
		return time.Time{}, false
	}
	var rec decisionRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.Time.IsZero() {
		log.Warn("retrain: the store's last decision has no time; training now", "store", st, "err", err)
		return time.Time{}, false
	}
	return rec.Time, true
}

// run trains on schedule until ctx ends: first right away when there is no
// model yet or the store's last run is older than every (a restart does
// not retrain a fresh model), then every after each run; after a run that
// trained nothing, sooner (retrainRetry).
func (r *retrainer) run(ctx context.Context) error {
	var last time.Time
	known := false
	hasModel := r.hasModel()
	if hasModel {
		last, known = r.lastRun(ctx)
	}
	next := firstRunAt(r.now(), last, known, hasModel, r.every)
	for {
		r.metrics.next.Set(float64(next.UnixMilli()) / 1000)
		if next.After(r.now()) {
			r.log.Info("next training run", "at", next.UTC().Format(time.RFC3339))
		}
		timer := time.NewTimer(max(0, next.Sub(r.now())))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		result := r.once(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := r.every
		if result == retrainWaiting || result == retrainFailed {
			wait = min(wait, retrainRetry)
		}
		next = r.now().Add(wait)
	}
}

// firstRunAt is when serve's first training run is due: now without a
// model or without a known last run, else every after the last run, and
// never later than now + every (a last run "in the future" is a clock
// gone wrong, not a reason to wait longer).
func firstRunAt(now, last time.Time, known, hasModel bool, every time.Duration) time.Time {
	if !hasModel || !known {
		return now
	}
	due := last.Add(every)
	switch {
	case due.Before(now):
		return now
	case due.After(now.Add(every)):
		return now.Add(every)
	}
	return due
}

// once runs `foresight train` once and reports what came of it; "" when
// ctx ended first.
func (r *retrainer) once(ctx context.Context) string {
	if r.oneAtATime != nil {
		select {
		case r.oneAtATime <- struct{}{}:
			defer func() { <-r.oneAtATime }()
		case <-ctx.Done():
			return ""
		}
	}
	reportFile, err := os.CreateTemp("", "foresight-retrain-*.json")
	if err != nil {
		return r.finish(retrainFailed, "", fmt.Errorf("a file for the run's report: %w", err), 0)
	}
	reportPath := reportFile.Name()
	reportFile.Close()
	defer os.Remove(reportPath)

	runCtx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, r.exe, append(r.args, "--report", reportPath)...)
	// SIGTERM first: train stops and promotes nothing; then SIGKILL.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	// The child's log goes where serve's goes; its end is kept for the
	// failure's log line and Event.
	tail := &tailWriter{max: 2048}
	cmd.Stdout = io.MultiWriter(os.Stderr, tail)
	cmd.Stderr = cmd.Stdout
	r.log.Info("training run starting", "command", cmd.Args)
	r.metrics.running.Set(1)
	start := time.Now()
	err = childproc.Run(cmd, r.log)
	r.metrics.running.Set(0)
	took := time.Since(start)
	r.metrics.duration.Set(took.Seconds())

	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return "" // serve is stopping: not a result
	case runCtx.Err() != nil:
		return r.finish(retrainFailed, "", fmt.Errorf("stopped after retrain.timeout %v (raise it, or shorten retrain.history)", r.timeout), took)
	case errors.As(err, &exit) && exit.ExitCode() == exitNotEnoughHistory:
		return r.finish(retrainWaiting, lastLine(tail.Bytes()), nil, took)
	case err != nil:
		return r.finish(retrainFailed, "", fmt.Errorf("%w: %s", err, lastLine(tail.Bytes())), took)
	}
	var report training.Report
	b, err := os.ReadFile(reportPath)
	if err == nil {
		err = json.Unmarshal(b, &report)
	}
	switch {
	case err != nil:
		return r.finish(retrainFailed, "", fmt.Errorf("reading the run's report: %w", err), took)
	case report.Decision == nil:
		return r.finish(retrainFailed, "", errors.New("the run's report has no champion/challenger decision"), took)
	case report.Decision.Promote:
		return r.finish(retrainPromoted, report.Decision.Reason, nil, took)
	default:
		return r.finish(retrainKept, report.Decision.Reason, nil, took)
	}
}

// finish logs, counts and records a run's result, and has a promoted model
// loaded now.
func (r *retrainer) finish(result, reason string, err error, took time.Duration) string {
	r.metrics.runs.WithLabelValues(result).Inc()
	attrs := []any{"result", result, "took", took.Round(time.Second)}
	switch result {
	case retrainPromoted:
		r.log.Info("training run promoted a new model", append(attrs, "reason", reason)...)
		if r.reload != nil {
			r.reload()
		}
		r.event("Normal", "ModelPromoted", reason, r.recordDecisions)
	case retrainKept:
		r.log.Info("training run kept the serving model", append(attrs, "reason", reason)...)
		r.event("Normal", "ModelKept", reason, r.recordDecisions)
	case retrainWaiting:
		r.log.Info("training run: not enough history yet; the fallback keeps forecasting", append(attrs, "detail", reason, "retryIn", min(r.every, retrainRetry))...)
	default:
		r.log.Error("training run failed; the serving model (or the fallback) keeps serving", append(attrs, "err", err, "retryIn", min(r.every, retrainRetry))...)
		r.event("Warning", "RetrainFailed", err.Error(), true)
	}
	return result
}

func (r *retrainer) event(eventType, reason, note string, record bool) {
	if r.events == nil || !record {
		return
	}
	if len(note) > 1000 {
		note = note[:1000] + "..." // the API's limit on an Event's note is 1 kB
	}
	r.events.Event(eventType, reason, fmt.Sprintf("app %s: %s", r.app, note))
}

// retrainMetrics are one application's retraining series.
type retrainMetrics struct {
	runs     *prometheus.CounterVec
	running  prometheus.Gauge
	duration prometheus.Gauge
	next     prometheus.Gauge
}

func newRetrainMetrics(reg prometheus.Registerer) *retrainMetrics {
	m := &retrainMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "foresight_retrain_runs_total",
			Help: "Training runs serve started (retrain), by result: promoted, kept, not_enough_history, failed."}, []string{"result"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "foresight_retrain_running",
			Help: "1 while a training run (a child process) is in progress."}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{Name: "foresight_retrain_last_duration_seconds",
			Help: "How long the last training run took."}),
		next: prometheus.NewGauge(prometheus.GaugeOpts{Name: "foresight_retrain_next_run_timestamp_seconds",
			Help: "When the next training run is due (Unix time)."}),
	}
	reg.MustRegister(m.runs, m.running, m.duration, m.next)
	for _, result := range []string{retrainPromoted, retrainKept, retrainWaiting, retrainFailed} {
		m.runs.WithLabelValues(result) // every result at 0 from the start, for rate()
	}
	return m
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailWriter) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.buf)
}

// lastLine is the last non-empty line of b: a failed `foresight train`
// ends with its error.
func lastLine(b []byte) string {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return string(bytes.TrimSpace(lines[len(lines)-1]))
}
