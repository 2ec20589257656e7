package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/meshtest"
	"github.com/foresightscale/foresight/internal/widecsv"
	"github.com/foresightscale/foresight/models/store"
	"github.com/foresightscale/foresight/models/training"
)

// youngHistoryCSV writes a day of 1-minute rows of a layered six-service
// application (not Online Boutique) whose samples begin only hours before
// the end, as a fresh install's Prometheus holds them, and returns its path
// and the time its data begins.
func youngHistoryCSV(t *testing.T, hours int) (string, time.Time) {
	t.Helper()
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(24 * time.Hour)
	from := end.Add(-time.Duration(hours) * time.Hour)
	data := layeredHistory(t, meshtest.Layered(6, 3, 6), source.AllFeatures, from, end, time.Minute)
	path := filepath.Join(t.TempDir(), "young-shop.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Rows from start: the hours before from are empty cells.
	if err := widecsv.Write(f, data, start, end, time.Minute); err != nil {
		t.Fatal(err)
	}
	return path, from
}

// mainArgsEnv carries the arguments of main() to the test binary run as
// foresight itself, so the exit status is the real process's.
const mainArgsEnv = "FORESIGHT_TEST_MAIN_ARGS"

// TestTrainExitStatusNotEnoughHistory runs `foresight train --min-history`
// as a process on two hours of data: it exits with status 3, says why, and
// writes nothing: no --out, no --report, nothing in the --promote store.
func TestTrainExitStatusNotEnoughHistory(t *testing.T) {
	if args := os.Getenv(mainArgsEnv); args != "" {
		os.Args = append([]string{"foresight"}, strings.Split(args, "\n")...)
		main()
		return
	}
	csvPath, _ := youngHistoryCSV(t, 2)
	dir := t.TempDir()
	out, report, storeDir := filepath.Join(dir, "model"), filepath.Join(dir, "report.json"), filepath.Join(dir, "store")
	args := []string{"train", "--data", csvPath, "--min-history", "3h", "--epochs", "1", "--season", "none",
		"--out", out, "--report", report, "--promote", storeDir}
	cmd := exec.Command(os.Args[0], "-test.run=^TestTrainExitStatusNotEnoughHistory$")
	cmd.Env = append(os.Environ(), mainArgsEnv+"="+strings.Join(args, "\n"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitNotEnoughHistory {
		t.Fatalf("exit: %v, want status %d\n%s", err, exitNotEnoughHistory, &stderr)
	}
	if want := "foresight: not enough history: young-shop.csv has 2h0m0s of history (from 2024-03-01T22:00:00Z to 2024-03-02T00:00:00Z), training needs at least 3h0m0s"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, &stderr)
	}
	for _, path := range []string{out, report, filepath.Join(storeDir, store.DecisionsFile)} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want nothing written", path, err)
		}
	}
	st, err := store.Open(storeDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if vs, err := st.Versions(); err != nil || len(vs) != 0 {
		t.Errorf("store holds %d versions (%v), want none", len(vs), err)
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"not enough history", fmt.Errorf("training shop: %w", training.ErrNotEnoughHistory), 3},
		{"other error", errors.New("--out or --promote is required"), 1},
		{"interrupted", context.Canceled, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitStatus(tc.err); got != tc.want {
				t.Errorf("exitStatus(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

// TestTrainReport: --report writes the run's report, the young history's
// trimmed start and (with --promote) the decision included, with or
// without --out; --min-history below the history's length trains.
func TestTrainReport(t *testing.T) {
	csvPath, from := youngHistoryCSV(t, 6)
	tests := []struct {
		name    string
		promote bool
		out     bool
	}{
		{"with --out", false, true},
		{"with --promote only", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			reportPath := filepath.Join(dir, "runs", "last.json")
			if err := os.Mkdir(filepath.Dir(reportPath), 0o755); err != nil {
				t.Fatal(err)
			}
			args := []string{"--data", csvPath, "--min-history", "5h", "--epochs", "1", "--season", "none", "--report", reportPath}
			if tc.out {
				args = append(args, "--out", filepath.Join(dir, "model"))
			}
			if tc.promote {
				args = append(args, "--promote", filepath.Join(dir, "store"))
			}
			log, err := runTrain(t, args...)
			if err != nil {
				t.Fatalf("train: %v\n%s", err, log)
			}
			if !strings.Contains(log, "history from 2024-03-01T18:00:00Z: no request-rate or CPU sample between 2024-03-01T00:00:00Z and then") {
				t.Errorf("train does not say where the history starts:\n%s", log)
			}
			b, err := os.ReadFile(reportPath)
			if err != nil {
				t.Fatal(err)
			}
			var r training.Report
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("--report: %v\n%s", err, b)
			}
			if !r.Start.Equal(from) || r.Epochs != 1 || r.Test == nil {
				t.Errorf("report from %v, %d epochs, test %v; want from %v, 1 epoch, a held-out evaluation", r.Start, r.Epochs, r.Test, from)
			}
			if (r.Decision != nil) != tc.promote {
				t.Errorf("report decision %+v, want one: %v", r.Decision, tc.promote)
			}
			if tc.out {
				inOut, err := os.ReadFile(filepath.Join(dir, "model", "report.json"))
				if err != nil || !bytes.Equal(inOut, b) {
					t.Errorf("--report differs from --out's report.json (%v)", err)
				}
			}
			if _, err := os.Stat(reportPath + ".tmp"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temporary file left: %v", err)
			}
		})
	}
}
