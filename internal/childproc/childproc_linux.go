//go:build linux

package childproc

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
)

// run forks from a thread of its own, reniced first: a child inherits the
// niceness of the thread that forks it, so every thread the child ever
// starts runs at Nice (renicing the child after the fact would miss the
// threads its runtime already started). That thread stays locked, so no
// other goroutine runs on it, until the child ends: it is also the parent
// Pdeathsig watches, so the child dies with it. It is never the main
// thread, whose niceness ps shows as the whole process's.
func run(cmd *exec.Cmd, log *slog.Logger) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if syscall.Gettid() != syscall.Getpid() {
			// Never unlocked: the goroutine's exit ends the reniced thread.
			done <- startLowered(cmd, log)
			return
		}
		// On the main thread: while this goroutine holds it, the one
		// started here runs on another.
		inner := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			inner <- startLowered(cmd, log)
		}()
		err := <-inner
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}

// startLowered renices the calling (locked) thread, starts cmd from it and
// waits for cmd.
func startLowered(cmd *exec.Cmd, log *slog.Logger) error {
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), Nice); err != nil {
		log.Warn("training child runs at normal CPU priority: cannot renice", "err", err)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := setOOMScoreAdj(cmd.Process.Pid, OOMScoreAdj); err != nil {
		log.Warn("training child is not first in line for the OOM killer", "err", err)
	}
	return cmd.Wait()
}

// setOOMScoreAdj raises a process's OOM score; raising needs no privilege.
func setOOMScoreAdj(pid, adj int) error {
	path := fmt.Sprintf("/proc/%d/oom_score_adj", pid)
	if err := os.WriteFile(path, []byte(strconv.Itoa(adj)), 0); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
