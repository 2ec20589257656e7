// Package childproc runs a helper process (serve's training runs) so that
// it cannot starve or take down its parent: at the lowest CPU priority,
// first in line for the OOM killer, and killed with its parent.
package childproc

import (
	"log/slog"
	"os/exec"
)

// Nice is the niceness the child runs at: the lowest priority, so the
// parent's forecast loop keeps its CPU share while the child computes.
const Nice = 19

// OOMScoreAdj makes the kernel's OOM killer pick the child before anything
// else in the container (the parent keeps serving; the child's run fails
// and is retried).
const OOMScoreAdj = 1000

// Run starts cmd, lowers its priority as far as the platform allows (each
// step that fails is logged on log and skipped: a child at normal priority
// is better than none), and waits for it. It returns cmd.Wait's error.
func Run(cmd *exec.Cmd, log *slog.Logger) error {
	return run(cmd, log)
}
