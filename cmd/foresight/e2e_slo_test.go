package main

import (
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/meshtest"
	"github.com/foresightscale/foresight/internal/promtest"
)

// TestServeSLOFeedbackOnPrometheus runs serve with policy.slo against a
// real Prometheus whose recorded p99 of the entry service (the
// service:foresight_latency_seconds:p99_1m series the shipped rule makes)
// is 0.4 s against a 250 ms SLO: the loop reads it through the default
// latency_p99 query and raises the headroom, and says so on /metrics and in
// the log. The entry's recorded peak rate (service:foresight_requests:
// peak_rate1m) is 1.3× its mean rate: policy.burst, on by default, reads it
// through the default requests_peak query and publishes the factor; the
// other services have no peak series and get 1.
func TestServeSLOFeedbackOnPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve and Prometheus")
	}
	promtest.Binary(t, "prometheus")
	graph := meshtest.Layered(5, 2, 7)
	entry := graph.Roots()[0]
	now := time.Now().Truncate(30 * time.Second)
	start, end := now.Add(-time.Hour), now.Add(20*time.Minute)
	history := layeredHistory(t, graph, []source.Feature{source.Requests, source.CPU}, start, end, 30*time.Second)
	for at := start; !at.After(end); at = at.Add(30 * time.Second) {
		history.Add(source.LatencyP99, entry, source.Sample{Time: at, Value: 0.4})
	}
	for _, sample := range history[source.Requests][entry] {
		history.Add(source.RequestsPeak, entry, source.Sample{Time: sample.Time, Value: 1.3 * sample.Value})
	}
	prom := promtest.Start(t, promtest.Options{Backfill: promtest.WriteOpenMetricsFile(t, "default", history)})
	s := startServe(t, "--demo", "--config", writeFile(t, "namespace: default\ninterval: 5s\nmodel: auto\nmodelStore: "+t.TempDir()+"\n"+
		"source:\n  prometheus:\n    url: "+prom.URL()+"\npolicy:\n  capacityPerPod: 50\n  headroom: 0.2\n  slo: {latencyP99: 250ms, service: "+entry+"}\n"))
	// One widening per new 30 s step of p99 samples: read the count and
	// the headroom from the same scrape.
	widened := regexp.MustCompile(`foresight_slo_feedback_total\{action="widened",app="default"\} (\d+)`)
	headroom := regexp.MustCompile(`foresight_slo_headroom\{app="default"\} ([0-9.e+-]+)`)
	var body string
	var n int
	var h float64
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		_, body, _ = get(&http.Client{Timeout: 5 * time.Second}, s.metrics+"/metrics")
		if m, hm := widened.FindStringSubmatch(body), headroom.FindStringSubmatch(body); m != nil && hm != nil {
			n, _ = strconv.Atoi(m[1])
			h, _ = strconv.ParseFloat(hm[1], 64)
			if n >= 1 {
				break
			}
		}
	}
	if n < 1 || math.Abs(h-(0.2+0.1*float64(n))) > 1e-9 {
		t.Errorf("widened %d times, headroom %v; want 0.2 + 0.1 per widening:\n%s\nserve's log:\n%s", n, h, grepLines(body, "foresight_slo"), s.log())
	}
	if want := `foresight_slo_latency_p99_seconds{app="default",service="` + entry + `"} 0.4`; !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %s:\n%s", want, grepLines(body, "foresight_slo"))
	}
	if !strings.Contains(s.log(), "SLO feedback: p99 above the SLO; headroom raised") {
		t.Errorf("no log line for the widening:\n%s", s.log())
	}
	burst := regexp.MustCompile(`foresight_burst_factor\{app="default",service="([^"]+)"\} ([0-9.e+-]+)`)
	factors := map[string]float64{}
	for _, m := range burst.FindAllStringSubmatch(body, -1) {
		factors[m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	if len(factors) != len(graph.Services) || math.Abs(factors[entry]-1.3) > 1e-9 {
		t.Errorf("burst factors %v; want 1.3 for %s and 1 for the other %d services:\n%s", factors, entry, len(graph.Services)-1, grepLines(body, "foresight_burst"))
	}
	for svc, f := range factors {
		if svc != entry && f != 1 {
			t.Errorf("burst factor of %s = %v, want 1 (no requests_peak series)", svc, f)
		}
	}
}
