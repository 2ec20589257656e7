// Package testenv locates the repository and the shared reference data for tests.
package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot returns the directory holding go.mod above the test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// SharedData returns the path of rel under ../shared/data (beside the
// repository), skipping the test with a clear message when it is absent:
// the reference data is never copied into the repository.
func SharedData(t testing.TB, rel string) string {
	t.Helper()
	path := filepath.Join(RepoRoot(t), "..", "shared", "data", rel)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("reference data %s not available (%v); it lives outside the repository in ../shared/data", rel, err)
	}
	return path
}
