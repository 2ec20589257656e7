// Package models holds the models shipped with Foresight and the recipes that
// rebuild them. The demo model is built into the binary; `make models`
// regenerates it byte for byte from the synthetic workload.
package models

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/models/linear"
)

//go:embed demo/model.onnx demo/manifest.json
var demoFiles embed.FS

// DemoDir is where the demo model lives in the repository.
const DemoDir = "models/demo"

// Demo returns the built-in demo model's files (model.onnx, manifest.json).
func Demo() fs.FS {
	sub, err := fs.Sub(demoFiles, "demo")
	if err != nil {
		panic(err) // the embed pattern above guarantees the directory
	}
	return sub
}

// The demo model's training history: three synthetic days, fixed seed and
// fixed start, so the model is the same on every machine.
var (
	demoTrainStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	demoTrainDays  = 3
)

// DemoOptions is the recipe of the demo model.
func DemoOptions() linear.Options {
	return linear.Options{
		Name:        "boutique-linear",
		Version:     "1",
		Description: "Graph-aware linear autoregression for the Online Boutique topology, fitted on the synthetic demo workload (seed 1).",
		Graph:       topology.OnlineBoutique(),
		Features:    source.AllFeatures,
		Targets:     []source.Feature{source.Requests, source.CPU},
		Window:      12,
		Horizon:     10,
		Step:        30 * time.Second,
		// Small: the synthetic history is long and the weights are well determined.
		Ridge:              1e-4,
		ValidationFraction: 0.2,
	}
}

// BuildDemo fits the demo model on the synthetic workload and writes
// model.onnx and manifest.json into dir.
func BuildDemo(ctx context.Context, dir string) (*linear.Report, error) {
	opts := DemoOptions()
	gen, err := synthetic.New(synthetic.DefaultConfig(), opts.Graph)
	if err != nil {
		return nil, fmt.Errorf("synthetic workload: %w", err)
	}
	end := demoTrainStart.Add(time.Duration(demoTrainDays) * 24 * time.Hour)
	data, err := source.NewSynthetic(gen).Fetch(ctx, source.Query{
		Namespace: "default", Services: opts.Graph.Services, Features: opts.Features,
		Start: demoTrainStart, End: end, Step: opts.Step,
	})
	if err != nil {
		return nil, fmt.Errorf("generating training history: %w", err)
	}
	fitted, err := linear.Fit(data, demoTrainStart, end, opts)
	if err != nil {
		return nil, err
	}
	onnxBytes, manifest, err := fitted.Export()
	if err != nil {
		return nil, err
	}
	if err := Write(dir, onnxBytes, manifest); err != nil {
		return nil, err
	}
	return &fitted.Report, nil
}

// Write checks that the model loads (verified ops, shapes, golden outputs
// through the real runtime) and only then writes it into dir, each file
// written to a temporary name and renamed, so a failed build never leaves a
// half-written model over a good one.
func Write(dir string, onnxBytes []byte, manifest *model.Manifest) error {
	manifestJSON, err := json.MarshalIndent(manifest, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding manifest: %w", err)
	}
	manifestJSON = append(manifestJSON, '\n')
	if _, err := model.Parse(onnxBytes, manifestJSON); err != nil {
		return fmt.Errorf("the exported model does not pass the loader's checks: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range map[string][]byte{model.ONNXFile: onnxBytes, model.ManifestFile: manifestJSON} {
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("renaming %s: %w", tmp, err)
		}
	}
	return nil
}
