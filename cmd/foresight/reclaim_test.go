package main

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var gaveBack = regexp.MustCompile(`gave back the executable's start-up pages" file_backed_resident_mib_before=(\d+) file_backed_resident_mib_after=(\d+)`)

// TestServeGivesBackStartupPages: once the demo has forecast, serve gives
// back its executable's start-up pages (its file-backed resident memory
// shrinks, as it logs) and goes on serving the API and the status page,
// whose code comes back in; --reclaim-memory=false keeps them.
func TestServeGivesBackStartupPages(t *testing.T) {
	s := startServe(t)
	waitReady(t, s)
	var before, after int
	waitFor(t, "the start-up pages given back", func() error {
		m := gaveBack.FindStringSubmatch(s.log())
		if m == nil {
			return fmt.Errorf("not said in the log yet")
		}
		before, _ = strconv.Atoi(m[1])
		after, _ = strconv.Atoi(m[2])
		return nil
	})
	t.Logf("file-backed resident memory: %d MiB -> %d MiB", before, after)
	// Started only now: the kernel keeps pages two processes map.
	kept := startServe(t, "--reclaim-memory=false")
	if after > before/2 {
		t.Errorf("file-backed resident memory %d MiB -> %d MiB: not even half given back", before, after)
	}
	client := demoClient(t, s.demoDir, true)
	if replicas := demoReplicas(client, s); len(replicas) == 0 {
		t.Error("no predicted replicas from the external metrics API after the pages went")
	}
	if code, body, err := get(&http.Client{Timeout: 5 * time.Second}, s.metrics+"/"); err != nil || code != http.StatusOK || !strings.Contains(body, "<svg") && !strings.Contains(body, "<table") {
		t.Errorf("status page after the pages went: %d %v", code, err)
	}

	waitReady(t, kept)
	time.Sleep(reclaimSettle + time.Second)
	if strings.Contains(kept.log(), "start-up pages") {
		t.Errorf("--reclaim-memory=false still reclaimed:\n%s", kept.log())
	}
}
