package models

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/foresightscale/foresight/forecaster/model"
)

// TestDemoModelIsReproducible rebuilds the shipped demo model and requires
// the same bytes: `make models` must regenerate exactly what is committed.
func TestDemoModelIsReproducible(t *testing.T) {
	dir := t.TempDir()
	report, err := BuildDemo(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{model.ONNXFile, model.ManifestFile} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join("demo", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("rebuilt %s differs from models/demo/%s: run `make models` and commit", name, name)
		}
	}
	// The fit must earn its place: better than repeating the last value on
	// the held-out part of the synthetic history.
	for target, mae := range report.MAE {
		if last := report.LastValueMAE[target]; !(mae < last) {
			t.Errorf("%s: validation MAE %v is not below last value's %v", target, mae, last)
		}
	}
}

func TestDemoModelLoads(t *testing.T) {
	m, err := model.LoadFS(Demo())
	if err != nil {
		t.Fatal(err)
	}
	if got := len(m.Manifest().Services); got != 10 {
		t.Errorf("demo model has %d services, want 10", got)
	}
}

func TestWriteRefusesABrokenModelAndKeepsTheGoodOne(t *testing.T) {
	dir := t.TempDir()
	if _, err := BuildDemo(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(filepath.Join(dir, model.ONNXFile))
	m, err := model.LoadFS(Demo())
	if err != nil {
		t.Fatal(err)
	}
	broken := *m.Manifest()
	broken.Golden.Outputs = map[string][]float64{"requests": make([]float64, 100), "cpu": make([]float64, 100)}
	if err := Write(dir, good, &broken); err == nil {
		t.Fatal("Write accepted a manifest whose golden outputs the model does not reproduce")
	}
	after, _ := os.ReadFile(filepath.Join(dir, model.ONNXFile))
	if !bytes.Equal(good, after) {
		t.Error("a refused model overwrote the good one")
	}
}
