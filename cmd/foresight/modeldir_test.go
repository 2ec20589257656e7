package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/models"
	"github.com/foresightscale/foresight/models/store"
)

func TestResolveModelDir(t *testing.T) {
	demo := func() map[string][]byte {
		files := map[string][]byte{}
		for _, name := range []string{model.ONNXFile, model.ManifestFile} {
			b, err := fs.ReadFile(models.Demo(), name)
			if err != nil {
				t.Fatal(err)
			}
			files[name] = b
		}
		return files
	}
	var rejected []string
	quiet := func(r store.Rejected) { rejected = append(rejected, r.Version.Name) }
	root := t.TempDir()

	plain := filepath.Join(root, "plain")
	os.Mkdir(plain, 0o755)
	for name, b := range demo() {
		os.WriteFile(filepath.Join(plain, name), b, 0o644)
	}
	if got, err := resolveModelDir(plain, quiet); err != nil || got != plain {
		t.Errorf("model directory: %q, %v", got, err)
	}

	st, err := store.Open(filepath.Join(root, "store"), 3)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := st.Save(demo(), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	broken := demo()
	broken[model.ONNXFile] = broken[model.ONNXFile][:100]
	st.Save(broken, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	bad, _ := st.Versions()
	if got, err := resolveModelDir(st.Path, quiet); err != nil || got != good.Dir || len(rejected) != 1 || rejected[0] != bad[0].Name {
		t.Errorf("store with a broken newest version: %q, %v (rejected %v); want %s", got, err, rejected, good.Dir)
	}

	if _, err := resolveModelDir(filepath.Join(root, "absent"), quiet); err == nil || !strings.Contains(err.Error(), "absent: no such directory") {
		t.Errorf("missing directory: %v", err)
	}
	empty := filepath.Join(root, "empty")
	os.Mkdir(empty, 0o755)
	if _, err := resolveModelDir(empty, quiet); err == nil || !strings.Contains(err.Error(), "holds neither manifest.json nor any model store version") {
		t.Errorf("empty directory: %v", err)
	}
}
