package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServeStatusPage: the demo's status page at / on the metrics port lists
// every service the external metrics API serves, with the same predicted
// replicas, links to a page per service with its charts, and is sent with a
// strict Content-Security-Policy.
func TestServeStatusPage(t *testing.T) {
	s := startServe(t)
	plain := &http.Client{Timeout: 5 * time.Second}
	waitFor(t, "readyz", func() error {
		code, body, err := get(plain, s.metrics+"/readyz")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d: %s", code, body)
		}
		return err
	})
	client := demoClient(t, s.demoDir, true)
	// The first line of the demo's help (after log lines) is the URL.
	var first string
	for _, line := range strings.Split(s.log(), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "time=") {
			first = line
			break
		}
	}
	if first != "Status page: open "+s.metrics+"/ in a browser." {
		t.Errorf("the demo's help starts with %q, want the status page's URL", first)
	}
	replicasAPI := func() map[string]string {
		code, body, err := get(client, s.secure+"/apis/external.metrics.k8s.io/v1beta1/namespaces/default/foresight_predicted_replicas")
		if err != nil || code != http.StatusOK {
			return nil
		}
		var list metricList
		if json.Unmarshal([]byte(body), &list) != nil {
			return nil
		}
		out := map[string]string{}
		for _, it := range list.Items {
			out[it.MetricLabels["service"]] = it.Value
		}
		return out
	}
	row := regexp.MustCompile(`(?s)<tr class="service" data-service="([^"]+)">.*?<td class="num predicted">([^<]+)</td>`)
	var page string
	var api, fromPage map[string]string
	// A cycle may land between the two reads: compare when the API said
	// the same before and after the page.
	waitFor(t, "status page equal to the external metrics API", func() error {
		before := replicasAPI()
		code, body, err := get(plain, s.metrics+"/")
		after := replicasAPI()
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("GET /: %d %v", code, err)
		}
		page, api = body, after
		fromPage = map[string]string{}
		for _, m := range row.FindAllStringSubmatch(body, -1) {
			fromPage[m[1]] = m[2]
		}
		if len(after) != 10 || !maps.Equal(before, after) {
			return fmt.Errorf("the API changed or is incomplete: %v then %v", before, after)
		}
		if !maps.Equal(fromPage, after) {
			return fmt.Errorf("page %v, API %v", fromPage, after)
		}
		return nil
	})
	if len(fromPage) != 10 {
		t.Errorf("page rows %v, API %v", fromPage, api)
	}
	for _, want := range []string{"boutique-gnn", `href="/apps/default/frontend"`, "<meta http-equiv=\"refresh\""} {
		if !strings.Contains(page, want) {
			t.Errorf("index lacks %q", want)
		}
	}
	res, err := plain.Get(s.metrics + "/apps/default/frontend")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if csp := res.Header.Get("Content-Security-Policy"); res.StatusCode != http.StatusOK || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("service page: status %d, CSP %q", res.StatusCode, csp)
	}
	_, body, _ := get(plain, s.metrics+"/apps/default/frontend")
	if n := strings.Count(body, "<svg"); n != 2 || !strings.Contains(body, `class="obs" d="M`) || !strings.Contains(body, `class="band" d="M`) {
		t.Errorf("service page: %d charts, want 2 with the observed line and the forecast band", n)
	}
	// /metrics and the probes are still theirs.
	if code, body, _ := get(plain, s.metrics+"/metrics"); code != http.StatusOK || !strings.Contains(body, "foresight_predicted_replicas") {
		t.Errorf("/metrics: %d", code)
	}
}
