// Command gen writes Foresight's Grafana dashboards (dashboards/*.json) and
// the kustomize component that installs them as a ConfigMap
// (manifests/components/grafana-dashboards/), all from package dashboards.
//
//	make dashboards    # = go run ./dashboards/gen
//
// Output is deterministic, so a second run changes nothing. Each file is
// replaced atomically; dashboard JSON files in dashboards/ that are no longer
// generated are removed.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/foresightscale/foresight/dashboards"
)

func main() {
	root := flag.String("root", ".", "repository root (the directory holding go.mod)")
	flag.Parse()
	if err := run(*root); err != nil {
		fmt.Fprintln(os.Stderr, "dashboards/gen:", err)
		os.Exit(1)
	}
}

func run(root string) error {
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return fmt.Errorf("%s does not look like the repository root (run from there, or pass -root): %w", root, err)
	}
	files, err := dashboards.Files()
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		changed, err := writeIfChanged(filepath.Join(root, filepath.FromSlash(name)), files[name])
		if err != nil {
			return err
		}
		if changed {
			fmt.Println("wrote", name)
		}
	}
	for _, dir := range []string{dashboards.Dir, dashboards.ChartDir} {
		if err := removeStale(root, dir, files); err != nil {
			return err
		}
	}
	return nil
}

// writeIfChanged replaces path with data through a temporary file in the
// same directory and a rename, so a reader (or an interrupted run) never
// sees half a file. An unchanged file is left alone.
func writeIfChanged(path string, data []byte) (bool, error) {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return false, fmt.Errorf("setting the mode of %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return false, fmt.Errorf("replacing %s: %w", path, err)
	}
	return true, nil
}

// removeStale deletes dashboard JSON files in dir that Files no longer
// produces (a renamed dashboard), so the directory holds exactly what the
// ConfigMap holds.
func removeStale(root, dir string, files map[string][]byte) error {
	stale, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(dir), "*.json"))
	if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	for _, path := range stale {
		if _, ok := files[dir+"/"+filepath.Base(path)]; ok {
			continue
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("removing stale dashboard %s: %w", path, err)
		}
		fmt.Println("removed", filepath.ToSlash(path))
	}
	return nil
}
