package models

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/foresightscale/foresight/forecaster/model"
)

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
	good, err := fs.ReadFile(Demo(), model.ONNXFile)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.LoadFS(Demo())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := Write(dir, good, m.Manifest()); err != nil {
		t.Fatal(err)
	}
	broken := *m.Manifest()
	broken.Golden.Outputs = map[string][]float64{}
	for name, v := range m.Manifest().Golden.Outputs {
		broken.Golden.Outputs[name] = make([]float64, len(v)) // all zeros: not what the model computes
	}
	if err := Write(dir, good, &broken); err == nil {
		t.Fatal("Write accepted a manifest whose golden outputs the model does not reproduce")
	}
	if err := Write(dir, good[:len(good)/2], m.Manifest()); err == nil {
		t.Fatal("Write accepted a truncated model")
	}
	after, _ := os.ReadFile(filepath.Join(dir, model.ONNXFile))
	if !bytes.Equal(good, after) {
		t.Error("a refused model overwrote the good one")
	}
}
