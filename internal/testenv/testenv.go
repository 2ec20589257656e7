// Package testenv locates the repository, the shared reference data and the
// tools the project's scripts build for tests.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// EnvRequireHelm makes a missing helm a failure (make test sets it).
const EnvRequireHelm = "FORESIGHT_REQUIRE_HELM"

// Helm returns the helm binary hack/helm.sh builds into the tool cache, or
// skips the test (fails it with FORESIGHT_REQUIRE_HELM=1) when it is not
// there.
func Helm(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(RepoRoot(t), "hack", "helm.sh"), "--print").Output()
	path := strings.TrimSpace(string(out))
	if err == nil {
		if _, err = os.Stat(path); err == nil {
			return path
		}
	}
	msg := fmt.Sprintf("no helm in the tool cache (%v); build it with `hack/helm.sh`", err)
	if os.Getenv(EnvRequireHelm) != "" {
		t.Fatalf("%s; %s is set, so a missing helm is a failure", msg, EnvRequireHelm)
	}
	t.Skipf("%s; skipping (set %s=1 to make this a failure)", msg, EnvRequireHelm)
	return ""
}
