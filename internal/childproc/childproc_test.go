//go:build linux

package childproc

import (
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The child reads its own niceness, OOM score adjustment and parent-death
// signal from /proc; so do the threads it starts (a shell pipeline's
// subprocesses inherit from it).
func TestRunLowersTheChildsPriority(t *testing.T) {
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	// Field 19 of /proc/self/stat is the niceness; the comm field (2) has no
	// spaces for sh.
	cmd := exec.Command("sh", "-c", `cut -d' ' -f19 /proc/$$/stat; cat /proc/$$/oom_score_adj; (cut -d' ' -f19 /proc/self/stat)`)
	cmd.Stdout = out
	if err := Run(cmd, slog.Default()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	if len(lines) != 3 {
		t.Fatalf("child printed %q", b)
	}
	want := []int{Nice, OOMScoreAdj, Nice}
	for i, w := range want {
		if got, err := strconv.Atoi(lines[i]); err != nil || got != w {
			t.Errorf("line %d: %q, want %d (output %q)", i, lines[i], w, b)
		}
	}
	// The parent keeps its own priority.
	self, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(self)); len(f) > 18 && f[18] == strconv.Itoa(Nice) {
		t.Errorf("the parent process was reniced too: %s", f[18])
	}
}

func TestRunReportsTheChildsExit(t *testing.T) {
	err := Run(exec.Command("sh", "-c", "exit 3"), slog.Default())
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 3 {
		t.Fatalf("err = %v, want exit status 3", err)
	}
	if err := Run(exec.Command("/nonexistent/foresight"), slog.Default()); err == nil {
		t.Fatal("no error for a missing executable")
	}
}
