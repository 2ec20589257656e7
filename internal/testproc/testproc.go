// Package testproc runs the real servers integration tests need (Prometheus,
// etcd, kube-apiserver, ...) as child processes on loopback, and always
// stops them.
package testproc

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StopTimeout is how long a process gets to exit after SIGTERM before it is killed.
const StopTimeout = 10 * time.Second

// Process is a running child process whose output is kept for failure reports.
type Process struct {
	Name    string
	cmd     *exec.Cmd
	output  lockedBuffer
	done    chan struct{}
	waitErr error
	once    sync.Once
}

// Start runs bin with args. Call Stop (typically from t.Cleanup).
func Start(name, bin string, args ...string) (*Process, error) {
	p := &Process{Name: name, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout = &p.output
	p.cmd.Stderr = &p.output
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the process's ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Output returns what the process wrote so far.
func (p *Process) Output() string { return p.output.String() }

// Stop sends SIGTERM, waits up to StopTimeout, then kills. Safe to call twice.
func (p *Process) Stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(StopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// FreePort returns a loopback TCP port that was free a moment ago, and that
// this process has not handed out before. It is drawn below the kernel's
// ephemeral range (net.ipv4.ip_local_port_range, 32768–60999 by default):
// port 0 would give one from inside it, where, until the process under test
// binds it, the local end of any outgoing connection may take it (the
// tests open thousands, to Prometheus and between the processes).
func FreePort() (int, error) {
	handedMu.Lock()
	defer handedMu.Unlock()
	if low := ephemeralLow(); low > minPort+1000 {
		for range 100 {
			port := minPort + rand.IntN(low-minPort)
			if handed[port] {
				continue
			}
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				continue // taken
			}
			l.Close()
			handed[port] = true
			return port, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	handed[port] = true
	return port, nil
}

// minPort is the lowest port FreePort draws: above the well-known and the
// commonly configured ones.
const minPort = 20000

var (
	handedMu sync.Mutex
	handed   = map[int]bool{}
)

// ephemeralLow is the first port of the kernel's ephemeral range, 32768
// when it cannot be read (not Linux).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 32768
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil {
		return 32768
	}
	return low
}

// WaitFor polls check every interval until it returns nil, the process
// exits, or timeout passes.
func (p *Process) WaitFor(what string, timeout, interval time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last error
	for time.Now().Before(deadline) {
		if last = check(); last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before %s: %v", p.Name, what, p.waitErr)
		case <-tick.C:
		}
	}
	return fmt.Errorf("%s: %s still failing after %v: %v", p.Name, what, timeout, last)
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
