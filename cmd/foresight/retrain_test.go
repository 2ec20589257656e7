package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// recordedEvents collects the Events a retrainer records.
type recordedEvents struct {
	mu     sync.Mutex
	events []string
}

func (r *recordedEvents) Event(eventType, reason, note string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, eventType+" "+reason+": "+note)
}

// TestRetrainerOnce runs a stand-in for `foresight train`: a shell script
// given the same trailing "--report FILE" arguments ($1 and $2), so each
// way a run can end is one line of shell.
func TestRetrainerOnce(t *testing.T) {
	tests := []struct {
		name      string
		script    string
		timeout   time.Duration
		want      string
		reloaded  bool
		event     string // substring of the one Event recorded, "" for none
		logSubstr string
	}{
		{name: "promoted", script: `echo '{"decision":{"promote":true,"reason":"promoted: 0.9x"}}' > "$2"`,
			want: retrainPromoted, reloaded: true, event: "Normal ModelPromoted: app ledger: promoted: 0.9x", logSubstr: "promoted a new model"},
		{name: "kept", script: `echo '{"decision":{"promote":false,"reason":"kept: 1.2x"}}' > "$2"`,
			want: retrainKept, event: "Normal ModelKept: app ledger: kept: 1.2x", logSubstr: "kept the serving model"},
		{name: "too little history", script: `echo "foresight: not enough history: 2h of 6h" >&2; exit 3`,
			want: retrainWaiting, logSubstr: "not enough history: 2h of 6h"},
		{name: "failed", script: `echo "foresight: reading history: connection refused" >&2; exit 1`,
			want: retrainFailed, event: "Warning RetrainFailed: app ledger: exit status 1: foresight: reading history: connection refused", logSubstr: "connection refused"},
		{name: "killed", script: `kill -9 $$`, want: retrainFailed, event: "signal: killed"},
		{name: "no report", script: `exit 0`, want: retrainFailed, event: "reading the run's report"},
		{name: "report without a decision", script: `echo '{"model":"x"}' > "$2"`, want: retrainFailed, event: "no champion/challenger decision"},
		{name: "report not JSON", script: `echo '{' > "$2"`, want: retrainFailed, event: "reading the run's report"},
		{name: "timeout", script: `exec sleep 30`, timeout: 300 * time.Millisecond, want: retrainFailed, event: "stopped after retrain.timeout 300ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			events := &recordedEvents{}
			reloads := 0
			r := &retrainer{
				app: "ledger", every: time.Hour, timeout: tc.timeout, exe: "/bin/sh",
				args:   []string{"-c", tc.script, "sh"},
				reload: func() { reloads++ }, events: events, recordDecisions: true,
				metrics: newRetrainMetrics(prometheus.NewRegistry()),
				log:     slog.New(slog.NewTextHandler(&logs, nil)), now: time.Now,
			}
			if r.timeout == 0 {
				r.timeout = 10 * time.Second
			}
			if got := r.once(context.Background()); got != tc.want {
				t.Fatalf("result %q, want %q; log:\n%s", got, tc.want, logs.String())
			}
			if (reloads > 0) != tc.reloaded {
				t.Errorf("reloads %d, want reloaded=%v", reloads, tc.reloaded)
			}
			switch {
			case tc.event == "" && len(events.events) > 0:
				t.Errorf("events %q, want none", events.events)
			case tc.event != "" && (len(events.events) != 1 || !strings.Contains(events.events[0], tc.event)):
				t.Errorf("events %q, want one with %q", events.events, tc.event)
			}
			if !strings.Contains(logs.String(), tc.logSubstr) {
				t.Errorf("log lacks %q:\n%s", tc.logSubstr, logs.String())
			}
			if got := testutil.ToFloat64(r.metrics.runs.WithLabelValues(tc.want)); got != 1 {
				t.Errorf("foresight_retrain_runs_total{result=%q} = %v", tc.want, got)
			}
			if got := testutil.ToFloat64(r.metrics.running); got != 0 {
				t.Errorf("foresight_retrain_running = %v after the run", got)
			}
		})
	}
}

// A ConfigMap store's trainer records its decisions on the ConfigMap: the
// pod gets only failures.
func TestRetrainerRecordsDecisionsOnce(t *testing.T) {
	events := &recordedEvents{}
	r := &retrainer{app: "ledger", every: time.Hour, timeout: 10 * time.Second, exe: "/bin/sh",
		args:   []string{"-c", `echo '{"decision":{"promote":true,"reason":"p"}}' > "$2"`, "sh"},
		events: events, metrics: newRetrainMetrics(prometheus.NewRegistry()), log: slog.New(slog.DiscardHandler), now: time.Now}
	if got := r.once(context.Background()); got != retrainPromoted || len(events.events) != 0 {
		t.Errorf("result %q, events %q", got, events.events)
	}
}

func TestFirstRunAt(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	const every = 24 * time.Hour
	tests := []struct {
		name            string
		last            time.Time
		known, hasModel bool
		want            time.Time
	}{
		{name: "no model yet", last: now.Add(-time.Minute), known: true, hasModel: false, want: now},
		{name: "last run unknown", hasModel: true, want: now},
		{name: "last run long ago", last: now.Add(-48 * time.Hour), known: true, hasModel: true, want: now},
		{name: "last run an hour ago", last: now.Add(-time.Hour), known: true, hasModel: true, want: now.Add(23 * time.Hour)},
		{name: "last run in the future", last: now.Add(72 * time.Hour), known: true, hasModel: true, want: now.Add(every)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := firstRunAt(now, tc.last, tc.known, tc.hasModel, every); !got.Equal(tc.want) {
				t.Errorf("firstRunAt = %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzFirstRunAt: the first run is never before now nor more than every
// after it.
func FuzzFirstRunAt(f *testing.F) {
	f.Add(int64(-3600), true, true, int64(86400))
	f.Add(int64(1<<62), true, true, int64(60))
	f.Add(int64(-1<<62), true, true, int64(60))
	f.Fuzz(func(t *testing.T, lastOffset int64, known, hasModel bool, everySeconds int64) {
		if everySeconds < 60 || everySeconds > 90*86400 {
			return // retrain.every's bounds
		}
		now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
		every := time.Duration(everySeconds) * time.Second
		last := now.Add(time.Duration(lastOffset))
		got := firstRunAt(now, last, known, hasModel, every)
		if got.Before(now) || got.After(now.Add(every)) {
			t.Fatalf("firstRunAt(%v, %v, %v, %v) = %v", last, known, hasModel, every, got)
		}
	})
}

func TestLastLine(t *testing.T) {
	for in, want := range map[string]string{
		"":                         "",
		"one":                      "one",
		"a\nforesight: boom\n\n":   "foresight: boom",
		"  spaced  \n  last  \r\n": "last",
	} {
		if got := lastLine([]byte(in)); got != want {
			t.Errorf("lastLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTailWriterKeepsTheEnd(t *testing.T) {
	w := &tailWriter{max: 8}
	for _, s := range []string{"0123", "456789", "ab"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatal(n, err)
		}
	}
	if got := string(w.Bytes()); got != "456789ab" {
		t.Errorf("tail %q", got)
	}
}

// Two applications' runs never overlap: the second waits for the first.
func TestRetrainersTakeTurns(t *testing.T) {
	turn := make(chan struct{}, 1)
	dir := t.TempDir()
	// Each run appends "start" and "end" around a pause to one file.
	script := `echo start >> ` + dir + `/log; sleep 0.3; echo end >> ` + dir + `/log; echo '{"decision":{"promote":false,"reason":"k"}}' > "$2"`
	newR := func() *retrainer {
		return &retrainer{app: "a", every: time.Hour, timeout: 10 * time.Second, exe: "/bin/sh", args: []string{"-c", script, "sh"},
			metrics: newRetrainMetrics(prometheus.NewRegistry()), log: slog.New(slog.DiscardHandler), now: time.Now, oneAtATime: turn}
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); newR().once(context.Background()) }()
	}
	wg.Wait()
	b, err := os.ReadFile(dir + "/log")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(b)); strings.Join(got, " ") != "start end start end" {
		t.Errorf("runs interleaved: %v", got)
	}
	// A run waiting for its turn gives up when serve stops.
	turn <- struct{}{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := newR().once(ctx); got != "" {
		t.Errorf("a run waiting for its turn returned %q after its context ended", got)
	}
}
