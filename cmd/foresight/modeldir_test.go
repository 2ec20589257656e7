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

// demoModelFiles are the built-in model's model.onnx and manifest.json, by
// name, as a model store version holds them.
func demoModelFiles(t testing.TB) map[string][]byte {
	t.Helper()
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

func TestResolveModelDir(t *testing.T) {
	demo := func() map[string][]byte { return demoModelFiles(t) }
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

// A version that loaded once is chosen again without being loaded again:
// versions are never rewritten, and the reloader hashes what serves. A new
// version is loaded and taken; one that fails stays failed.
func TestDirResolverRemembersVersions(t *testing.T) {
	files := demoModelFiles(t)
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), 3)
	if err != nil {
		t.Fatal(err)
	}
	first, err := st.Save(files, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	r := &dirResolver{path: st.Path, rejected: func(store.Rejected) {}}
	if got, err := r.resolve(); err != nil || got != first.Dir {
		t.Fatalf("first resolve: %q, %v", got, err)
	}
	// Rewritten in place (never done by the store): the resolver does not
	// load it again to choose it; the reloader's hash sees the change.
	if err := os.WriteFile(filepath.Join(first.Dir, model.ONNXFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := r.resolve(); err != nil || got != first.Dir {
		t.Errorf("second resolve: %q, %v; want the remembered %s", got, err, first.Dir)
	}
	if _, err := (&dirResolver{path: st.Path, rejected: func(store.Rejected) {}}).resolve(); err == nil {
		t.Error("a fresh resolver chose a version whose model does not load")
	}
	second, err := st.Save(files, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.resolve(); err != nil || got != second.Dir {
		t.Errorf("after a new version: %q, %v; want %s", got, err, second.Dir)
	}
	broken := map[string][]byte{model.ONNXFile: files[model.ONNXFile][:100], model.ManifestFile: files[model.ManifestFile]}
	third, err := st.Save(broken, time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		var rejected []string
		r.rejected = func(b store.Rejected) { rejected = append(rejected, b.Version.Name) }
		if got, err := r.resolve(); err != nil || got != second.Dir || len(rejected) != 1 || rejected[0] != third.Name {
			t.Errorf("with a broken newest version: %q, %v, rejected %v; want %s", got, err, rejected, second.Dir)
		}
	}
}

// BenchmarkResolveDirStore is one poll's choice of a directory store's
// version: "first" loads and checks the newest version (a fresh resolver),
// "remembered" is every later poll.
func BenchmarkResolveDirStore(b *testing.B) {
	files := demoModelFiles(b)
	st, err := store.Open(filepath.Join(b.TempDir(), "store"), 3)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.Save(files, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		b.Fatal(err)
	}
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			if _, err := (&dirResolver{path: st.Path, rejected: func(store.Rejected) {}}).resolve(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("remembered", func(b *testing.B) {
		r := &dirResolver{path: st.Path, rejected: func(store.Rejected) {}}
		for b.Loop() {
			if _, err := r.resolve(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
