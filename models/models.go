// Package models holds the models shipped with Foresight. The demo model is
// built into the binary; `make models` retrains it byte for byte from the
// synthetic workload (models/training.SyntheticConfig).
package models

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/foresightscale/foresight/forecaster/model"
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

// Files encodes a model as the files of a model directory (model.onnx,
// manifest.json) after checking that it loads (verified ops, shapes, golden
// outputs through the real runtime).
func Files(onnxBytes []byte, manifest *model.Manifest) (map[string][]byte, error) {
	manifestJSON, err := json.MarshalIndent(manifest, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding manifest: %w", err)
	}
	manifestJSON = append(manifestJSON, '\n')
	if _, err := model.Parse(onnxBytes, manifestJSON); err != nil {
		return nil, fmt.Errorf("the exported model does not pass the loader's checks: %w", err)
	}
	return map[string][]byte{model.ONNXFile: onnxBytes, model.ManifestFile: manifestJSON}, nil
}

// Write checks that the model loads (Files) and only then writes it into
// dir, each file written to a temporary name and renamed, so a failed build
// never leaves a half-written model over a good one.
func Write(dir string, onnxBytes []byte, manifest *model.Manifest) error {
	files, err := Files(onnxBytes, manifest)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range files {
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
