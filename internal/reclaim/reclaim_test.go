package reclaim

import (
	"context"
	"errors"

	"runtime"
	"runtime/metrics"

	"testing"
	"time"
)

const sampleMaps = `00400000-02e1f000 r-xp 00000000 fe:00 10002484                           /usr/bin/foresight
02e1f000-05f61000 r--p 02a1f000 fe:00 10002484                           /usr/bin/foresight
05f61000-06558000 rw-p 05b61000 fe:00 10002484                           /usr/bin/foresight
06558000-08600000 rw-p 00000000 00:00 0
26bb4d000000-26bb4e400000 rw-p 00000000 00:00 0 
7f0000000000-7f0000001000 r--p 00000000 fe:00 42                         /usr/bin/foresight-other
7f0000002000-7f0000003000 r--p 00000000 fe:00 43                         /opt/my app/foresight (deleted)
7ffd8a9c1000-7ffd8a9e2000 rw-p 00000000 00:00 0                          [stack]
`

func TestExecutableMappings(t *testing.T) {
	tests := []struct {
		name, maps, path string
		want             []Mapping
		wantErr          bool
	}{
		{name: "the binary's three segments", maps: sampleMaps, path: "/usr/bin/foresight", want: []Mapping{
			{Start: 0x400000, End: 0x2e1f000, Perms: "r-xp"}, {Start: 0x2e1f000, End: 0x5f61000, Perms: "r--p"}, {Start: 0x5f61000, End: 0x6558000, Perms: "rw-p"}}},
		{name: "a path with a space, replaced on disk", maps: sampleMaps, path: "/opt/my app/foresight", want: []Mapping{{Start: 0x7f0000002000, End: 0x7f0000003000, Perms: "r--p"}}},
		{name: "not mapped", maps: sampleMaps, path: "/usr/bin/other"},
		{name: "empty", maps: "", path: "/x"},
		{name: "a reversed range", maps: "2000-1000 r-xp 0 fe:00 1 /x\n", path: "/x", wantErr: true},
		{name: "not hex", maps: "zz-1000 r-xp 0 fe:00 1 /x\n", path: "/x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExecutableMappings(tt.maps, tt.path)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("mapping %d: %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func FuzzExecutableMappings(f *testing.F) {
	f.Add(sampleMaps, "/usr/bin/foresight")
	f.Add("0-ffffffffffffffff r 0 0 0 /x", "/x")
	f.Fuzz(func(t *testing.T, maps, path string) {
		got, err := ExecutableMappings(maps, path)
		if err != nil {
			return
		}
		for _, m := range got {
			if m.End <= m.Start {
				t.Fatalf("empty or reversed mapping %+v", m)
			}
		}
	})
}

func TestStatusField(t *testing.T) {
	status := "Name:\tforesight\nVmRSS:\t   93400 kB\nRssFile:\t   71988 kB\nBad:\tx kB\n"
	if got, err := statusField(status, "RssFile"); err != nil || got != 71988<<10 {
		t.Errorf("RssFile = %d, %v", got, err)
	}
	for _, name := range []string{"Bad", "Missing"} {
		if _, err := statusField(status, name); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestExecutableReleasesPages: on this kernel, the test binary's own
// resident file pages shrink.
func TestExecutableReleasesPages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("MADV_PAGEOUT is Linux's")
	}
	before, after, err := Executable()
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("this kernel cannot: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("file-backed resident memory %d KiB -> %d KiB", before>>10, after>>10)
	if before <= 0 || after >= before {
		t.Fatalf("file-backed resident memory %d -> %d bytes: nothing reclaimed", before, after)
	}
}

// TestHeapReleasesAfterABurst: garbage from a burst goes back to the
// kernel within a few checks; the goroutine ends with its context.
func TestHeapReleasesAfterABurst(t *testing.T) {
	released := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Heap(ctx, 10*time.Millisecond, 50*time.Millisecond, 1<<20); close(done) }()
	for range 64 {
		burst = append(burst, make([]byte, 1<<20))
	}
	// Counted once the burst holds its memory: it may have reused pages
	// released before.
	before := released()
	burst = nil
	// Without Heap the garbage waits for the next collection, which nothing
	// triggers here, and the scavenger's slow pace: well past the deadline.
	deadline := time.Now().Add(3 * time.Second)
	for released() < before+32<<20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if got := released(); got < before+32<<20 {
		t.Fatalf("released heap grew by %d MiB after a 64 MiB burst, want at least 32", (got-before)>>20)
	}
}

// burst keeps the test's allocations reachable until it drops them.
var burst [][]byte

func TestShouldRelease(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name                       string
		sinceRelease, sinceCheck   uint64
		sinceReleaseTime, interval time.Duration
		want                       bool
	}{
		{name: "a burst that ended", sinceRelease: 40 * mib, sinceCheck: 0, sinceReleaseTime: time.Minute, interval: 5 * time.Second, want: true},
		{name: "a burst still running", sinceRelease: 40 * mib, sinceCheck: 20 * mib, sinceReleaseTime: time.Minute, interval: 5 * time.Second},
		{name: "steady small allocation, below the bound", sinceRelease: 3 * mib, sinceCheck: 100 << 10, sinceReleaseTime: time.Minute, interval: 5 * time.Second},
		{name: "steady allocation above a quarter of the bound per check", sinceRelease: 400 * mib, sinceCheck: mib, sinceReleaseTime: time.Minute, interval: 5 * time.Second},
		{name: "too soon after the last release", sinceRelease: 40 * mib, sinceCheck: 0, sinceReleaseTime: time.Second, interval: 5 * time.Second},
	}
	for _, tt := range tests {
		if got := ShouldRelease(tt.sinceRelease, tt.sinceCheck, tt.sinceReleaseTime, tt.interval, 4*mib); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func FuzzShouldRelease(f *testing.F) {
	f.Add(uint64(40<<20), uint64(0), int64(time.Minute), int64(5*time.Second), uint64(4<<20))
	f.Fuzz(func(t *testing.T, sinceRelease, sinceCheck uint64, sinceReleaseTime, interval int64, minAllocated uint64) {
		if !ShouldRelease(sinceRelease, sinceCheck, time.Duration(sinceReleaseTime), time.Duration(interval), minAllocated) {
			return
		}
		if sinceRelease < minAllocated || sinceCheck >= minAllocated/4 || sinceReleaseTime < interval {
			t.Fatalf("released with %d allocated (bound %d), %d in the last check, %v since the last release (interval %v)",
				sinceRelease, minAllocated, sinceCheck, time.Duration(sinceReleaseTime), time.Duration(interval))
		}
	})
}
