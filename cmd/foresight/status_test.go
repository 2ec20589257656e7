package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/foresightscale/foresight/internal/htmltest"
)

// TestServeStatusPage: the demo's status page at / on the metrics port lists
// every service the external metrics API serves, with the same predicted
// replicas, links to a page per service with its charts, and is sent with a
// strict Content-Security-Policy.
func TestServeStatusPage(t *testing.T) {
	s := startServe(t)
	plain := &http.Client{Timeout: 5 * time.Second}
	waitReady(t, s)
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
	replicasAPI := func() map[string]string { return demoReplicas(client, s) }
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

// demoReplicas reads foresight_predicted_replicas of every service in the
// demo's namespace from the external metrics API, by service; nil when the
// read fails.
func demoReplicas(client *http.Client, s *server) map[string]string {
	code, body, err := get(client, s.secure+"/apis/external.metrics.k8s.io/v1beta1/namespaces/default/foresight_predicted_replicas")
	var list metricList
	if err != nil || code != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil {
		return nil
	}
	out := map[string]string{}
	for _, it := range list.Items {
		out[it.MetricLabels["service"]] = it.Value
	}
	return out
}

// requireChromium makes a missing browser a failure (make test sets it).
const requireChromium = "FORESIGHT_REQUIRE_CHROMIUM"

// chromiumBinary returns the headless browser, or skips (fails with
// FORESIGHT_REQUIRE_CHROMIUM=1) when there is none.
func chromiumBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	msg := "no chromium on PATH; install it with `hack/chromium.sh ensure`"
	if os.Getenv(requireChromium) != "" {
		t.Fatalf("%s; %s is set, so a missing browser is a failure", msg, requireChromium)
	}
	t.Skipf("%s; skipping (set %s=1 to make this a failure)", msg, requireChromium)
	return ""
}

// chromium runs the headless browser on url with args (--dump-dom,
// --screenshot=FILE) and returns its standard output and its log, in which
// the page's console messages (CSP violations among them) appear.
func chromium(t *testing.T, bin, url string, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	all := append([]string{"--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0", "--window-size=1200,1000"}, args...)
	cmd := exec.CommandContext(ctx, bin, append(all, url)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second // the browser's helpers must not keep the test waiting
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

// TestStatusPageInChromium loads the demo's status page in a real browser
// (headless Chromium): the DOM it builds lists every service with the
// predicted replicas the external metrics API serves, the browser reports
// no Content-Security-Policy violation (so the page renders as designed
// under its own strict policy), and a screenshot of a service page is
// saved (into $FORESIGHT_SCREENSHOTS when set, as for the README).
func TestStatusPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve and a browser")
	}
	bin := chromiumBinary(t)
	s := startServe(t)
	waitReady(t, s)
	client := demoClient(t, s.demoDir, true)
	replicasAPI := func() map[string]string { return demoReplicas(client, s) }
	var log string
	waitFor(t, "the browser's DOM equal to the external metrics API", func() error {
		before := replicasAPI()
		dom, stderr := chromium(t, bin, s.metrics+"/", "--dump-dom")
		after := replicasAPI()
		log = stderr
		doc, err := html.Parse(strings.NewReader(dom))
		if err != nil {
			return err
		}
		fromDOM := map[string]string{}
		for _, tr := range htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "tr" && htmltest.Attr(n, "class") == "service" }) {
			for _, td := range htmltest.Find(tr, func(n *html.Node) bool {
				return n.Data == "td" && strings.Contains(htmltest.Attr(n, "class"), "predicted")
			}) {
				fromDOM[htmltest.Attr(tr, "data-service")] = htmltest.Text(td)
			}
		}
		if len(after) != 10 || !maps.Equal(before, after) {
			return fmt.Errorf("the API changed or is incomplete: %v then %v", before, after)
		}
		if !maps.Equal(fromDOM, after) {
			return fmt.Errorf("browser DOM %v, API %v", fromDOM, after)
		}
		return nil
	})
	if strings.Contains(log, "Content Security Policy") {
		t.Errorf("the browser reports CSP violations on the index:\n%s", grepLines(log, "Content Security Policy"))
	}

	dir := os.Getenv("FORESIGHT_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "status-page.png")
	_, stderr := chromium(t, bin, s.metrics+"/apps/default/frontend", "--screenshot="+shot)
	if strings.Contains(stderr, "Content Security Policy") {
		t.Errorf("the browser reports CSP violations on the service page:\n%s", grepLines(stderr, "Content Security Policy"))
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	// The charts are drawn: some pixels carry the observed line's blue
	// (#0969da), which only the stylesheet the CSP allowed can paint.
	blue := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 < 40 && g>>8 > 80 && g>>8 < 130 && bl>>8 > 190 {
				blue++
			}
		}
	}
	if b.Dx() != 1200 || blue < 200 {
		t.Errorf("screenshot %v with %d pixels of the observed line's blue; want 1200 wide and the charts drawn", b, blue)
	}
	t.Logf("screenshot: %s", shot)
}
