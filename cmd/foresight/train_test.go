package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/promtest"
	"github.com/foresightscale/foresight/internal/testenv"
	"github.com/foresightscale/foresight/models/training"
)

func runTrain(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, errOut, err := execute(newTrainCommand(), 3*time.Minute, args...)
	return out + errOut, err
}

// TestTrainFromRealPrometheus trains (one epoch) on history read from a real
// Prometheus server with the shipped query templates, and checks the model
// directory is complete and loads.
func TestTrainFromRealPrometheus(t *testing.T) {
	csvPath := testenv.SharedData(t, "boutique/boutique.csv")
	csv, err := source.NewCSV(csvPath, source.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	from, _ := csv.Span()
	to := from.Add(6 * time.Hour)
	history, err := csv.Fetch(context.Background(), source.Query{Services: csv.Services(), Features: source.AllFeatures, Start: from, End: to, Step: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := promtest.Start(t, promtest.Options{Backfill: promtest.WriteOpenMetricsFile(t, "default", history)})
	out := filepath.Join(t.TempDir(), "model")
	log, err := runTrain(t, "--prometheus-url", srv.URL(), "--start", from.Format(time.RFC3339), "--end", to.Format(time.RFC3339),
		"--epochs", "1", "--out", out)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, log)
	}
	if _, err := model.Load(out); err != nil {
		t.Fatalf("trained model does not load: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var report training.Report
	if err := json.Unmarshal(b, &report); err != nil {
		t.Fatal(err)
	}
	if report.Source != srv.URL() || report.Epochs != 1 || report.Test == nil || len(report.Test.MAEByHorizon) != 10 {
		t.Errorf("report = %+v", report)
	}
}

func TestTrainRefusesBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no out", []string{"--synthetic"}, "--out"},
		{"no source", []string{"--out", t.TempDir()}, "exactly one of"},
		{"two sources", []string{"--out", t.TempDir(), "--synthetic", "--data", "x.csv"}, "exactly one of"},
		{"prometheus without range", []string{"--out", t.TempDir(), "--prometheus-url", "http://127.0.0.1:1"}, "--start and --end"},
		{"bad time", []string{"--out", t.TempDir(), "--synthetic", "--start", "yesterday"}, "--start"},
		{"missing csv", []string{"--out", t.TempDir(), "--data", filepath.Join(t.TempDir(), "absent.csv")}, "absent.csv"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runTrain(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}
