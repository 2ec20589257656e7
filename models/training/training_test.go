package training

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/internal/testenv"
	"github.com/foresightscale/foresight/models/gnn"
)

// TestDemoModelIsReproducible retrains the shipped demo model with its
// recipe and requires the committed bytes: `make models` must regenerate
// exactly models/demo. It also holds the demo model to beating last value
// on the synthetic history it never trained on.
func TestDemoModelIsReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("trains the demo model (about a minute)")
	}
	cfg, err := SyntheticConfig(SyntheticDays, DemoOptions())
	if err != nil {
		t.Fatal(err)
	}
	m, report, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	onnxBytes, manifest, err := m.Export()
	if err != nil {
		t.Fatal(err)
	}
	manifestJSON, err := json.MarshalIndent(manifest, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	demo := filepath.Join(testenv.RepoRoot(t), "models", "demo")
	for name, got := range map[string][]byte{model.ONNXFile: onnxBytes, model.ManifestFile: append(manifestJSON, '\n')} {
		want, err := os.ReadFile(filepath.Join(demo, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("retrained %s differs from models/demo/%s: run `make models` and commit", name, name)
		}
	}
	h := len(report.Test.MAEByHorizon) - 1
	if got, last := report.Test.MAEByHorizon[h], report.Test.LastValueMAEByHorizon[h]; !(got < last) {
		t.Errorf("held-out MAE at step %d: %v, not below last value's %v", h+1, got, last)
	}
}

func TestRunRefusesBadHistory(t *testing.T) {
	opts := gnn.DefaultOptions(topology.OnlineBoutique())
	opts.Epochs = 1
	short, err := SyntheticConfig(1, opts)
	if err != nil {
		t.Fatal(err)
	}
	short.End = short.Start.Add(short.Options.Step * 60)
	badSplit, _ := SyntheticConfig(1, opts)
	badSplit.TestFraction = 1
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"too short", short, "too short to train"},
		{"bad split", badSplit, "test fraction"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Run(context.Background(), tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}
