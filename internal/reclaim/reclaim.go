// Package reclaim gives back to the kernel the memory a long-running
// process holds but no longer uses: the pages of its executable that only
// start-up touched, and heap freed by a burst of work.
//
// Go runs every linked package's initialisation at start: the Kubernetes
// API types register themselves, OpenAPI definitions and CEL libraries are
// built, and so on. That code and data is never touched again, yet the
// kernel keeps it mapped (with up to 64 KiB around each page touched), and
// it is most of a fresh process's file-backed memory. Likewise the Go
// runtime keeps the heap a forecast cycle grew to until its background
// scavenger slowly returns it.
package reclaim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// ErrUnsupported is returned where the kernel cannot reclaim a mapping on
// request (not Linux, or Linux before 5.4).
var ErrUnsupported = errors.New("reclaiming pages on request is not supported here")

// Mapping is one mapped range of the executable.
type Mapping struct {
	Start, End uintptr
	Perms      string
}

// ExecutableMappings returns the mappings of path (the running executable)
// listed in a /proc/PID/maps text.
func ExecutableMappings(maps, path string) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(strings.NewReader(maps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// address perms offset dev inode pathname (which may contain spaces)
		fields := strings.SplitN(sc.Text(), " ", 6)
		if len(fields) < 6 {
			continue
		}
		name := strings.TrimSpace(fields[5])
		if name != path && name != path+" (deleted)" {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			return nil, fmt.Errorf("reading the memory map: bad address range %q", fields[0])
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err := errors.Join(err1, err2); err != nil || end <= start {
			return nil, fmt.Errorf("reading the memory map: bad address range %q", fields[0])
		}
		out = append(out, Mapping{Start: uintptr(start), End: uintptr(end), Perms: fields[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the memory map: %w", err)
	}
	return out, nil
}

// Executable asks the kernel to reclaim the resident pages of the running
// executable that no other process maps (Linux's MADV_PAGEOUT). Pages still
// in use fault back in on their next touch, from the page cache or the
// file. It returns the process's file-backed resident memory before and
// after, in bytes.
func Executable() (before, after int64, err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, 0, fmt.Errorf("finding the executable: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, 0, fmt.Errorf("reading the memory map: %w", err)
	}
	mappings, err := ExecutableMappings(string(maps), exe)
	if err != nil {
		return 0, 0, err
	}
	if len(mappings) == 0 {
		return 0, 0, fmt.Errorf("no mapping of %s in /proc/self/maps", exe)
	}
	before, _ = ResidentFileBytes()
	for _, m := range mappings {
		if err := pageOut(m.Start, m.End-m.Start); err != nil {
			return before, before, fmt.Errorf("reclaiming %x-%x (%s) of %s: %w", m.Start, m.End, m.Perms, exe, err)
		}
	}
	after, err = ResidentFileBytes()
	return before, after, err
}

// ResidentFileBytes is the process's file-backed resident memory
// (RssFile in /proc/self/status).
func ResidentFileBytes() (int64, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("reading the process status: %w", err)
	}
	return statusField(string(status), "RssFile")
}

// statusField returns a "Name: N kB" field of a /proc status text in bytes.
func statusField(status, name string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		value, ok := strings.CutPrefix(line, name+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("reading the process status: bad %s %q", name, strings.TrimSpace(value))
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("reading the process status: no %s", name)
}

// Heap returns freed heap to the kernel after bursts of allocation (a
// forecast cycle): every check it reads how much was allocated, and once a
// burst is over (see ShouldRelease) it collects and releases what is free
// (runtime/debug.FreeOSMemory). Under steady allocation, such as a stream of
// API requests, it stays out of the way of the runtime's own collector
// and scavenger. Between bursts it costs one read of a runtime counter per
// check.
func Heap(ctx context.Context, check, minInterval time.Duration, minAllocated uint64) {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	allocated := func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
	released, releasedAt := allocated(), time.Now()
	previous := released
	t := time.NewTicker(check)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := allocated()
		if ShouldRelease(now-released, now-previous, time.Since(releasedAt), minInterval, minAllocated) {
			debug.FreeOSMemory()
			now, releasedAt = allocated(), time.Now()
			released = now
		}
		previous = now
	}
}

// ShouldRelease decides, at a check, whether a burst of allocation is over
// and its heap worth releasing: at least minAllocated bytes were allocated
// since the last release, the last check's interval allocated under a
// quarter of that (the burst has ended), and the last release was at least
// minInterval ago (each release is a full collection).
func ShouldRelease(sinceRelease, sinceLastCheck uint64, sinceReleaseTime, minInterval time.Duration, minAllocated uint64) bool {
	return sinceRelease >= minAllocated && sinceLastCheck < minAllocated/4 && sinceReleaseTime >= minInterval
}
