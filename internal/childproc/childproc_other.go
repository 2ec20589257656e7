//go:build !linux

package childproc

import (
	"log/slog"
	"os/exec"
)

// run starts cmd as it is: priorities and the OOM score are Linux's here.
func run(cmd *exec.Cmd, log *slog.Logger) error {
	log.Debug("training child runs at normal priority (lowering it is implemented for Linux only)")
	return cmd.Run()
}
