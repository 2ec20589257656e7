package status

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/internal/htmltest"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testApps: one application with a fresh service whose name needs
// escaping, a held one, one without a chart (the fallback) and an
// unpublished one; and an application without a forecast yet.
func testApps() []App {
	nan := math.NaN()
	chart := &snapshot.Chart{Start: now.Add(-5 * 30 * time.Second), Step: 30 * time.Second,
		ObservedRequests: []float64{10, 12, nan, 14, 15, 16}, ObservedCPU: []float64{0.1, 0.1, 0.1, 0.2, 0.2, 0.2},
		RequestsP50: []float64{17, 18, 19}, RequestsUpper: []float64{20, 22, 24},
		CPUP50: []float64{nan, nan, nan}, CPUUpper: []float64{nan, nan, nan}}
	snap := &snapshot.Snapshot{CreatedAt: now, Model: "ticket-gnn", Step: 30 * time.Second,
		Predictions: []snapshot.Prediction{
			{Service: "ts-order.v2<b>", PredictedReplicas: 7, PredictedRequests: 24, ObservedRequests: 16, ObservedReplicas: 5,
				ComputedAt: now, ExpiresAt: now.Add(time.Minute), InputAt: now.Add(-20 * time.Second), Chart: chart},
			{Service: "seat-0", PredictedReplicas: 3, PredictedRequests: 9, ObservedRequests: 8, ObservedReplicas: 3,
				ComputedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Minute), HeldReason: "missing_data"},
			{Service: "new-svc", Model: "fallback", PredictedReplicas: 2, PredictedRequests: 4, ObservedRequests: nan, ObservedReplicas: nan,
				ComputedAt: now, ExpiresAt: now.Add(time.Minute)},
		},
		Unpublished: []snapshot.Unpublished{{Service: "pay", Reason: "source_error"}},
	}
	return []App{
		{Name: "tickets", Namespace: "train", Latest: func() *snapshot.Snapshot { return snap }, Info: func() Info {
			return Info{Model: "ticket-gnn", Version: "3", Trained: now.Add(-2 * time.Hour), HeldOutRatio: []float64{0.91, 0.8},
				LastCycle: now.Add(-10 * time.Second), CycleDuration: 3 * time.Millisecond, Fresh: 3, Held: 1,
				CycleErr: "fetching window: <unreachable>", BurstFactor: map[string]float64{"ts-order.v2<b>": 1.25}}
		}},
		{Name: "empty", Namespace: "e", Latest: func() *snapshot.Snapshot { return nil }, Info: func() Info { return Info{Model: "none"} }},
	}
}

func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Result(), rec.Body.String()
}

// checkedPage gets path from h, which must answer 200 with a page that
// passes checkPage, and returns the body and its document.
func checkedPage(t *testing.T, h http.Handler, path string) (string, *html.Node) {
	t.Helper()
	res, body := get(t, h, path)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	doc := htmltest.Parse(t, body)
	checkPage(t, res, doc)
	return body, doc
}

// checkPage checks what every page must be: HTML whose only style is the
// one the Content-Security-Policy allows, no script, nothing loaded from
// elsewhere, and the security headers.
func checkPage(t *testing.T, res *http.Response, doc *html.Node) {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, h := range []string{"X-Content-Type-Options", "Referrer-Policy", "Cache-Control"} {
		if res.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	policy := res.Header.Get("Content-Security-Policy")
	styles := htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "style" })
	if len(styles) != 1 {
		t.Fatalf("%d style elements, want 1", len(styles))
	}
	sum := sha256.Sum256([]byte(styles[0].FirstChild.Data))
	if want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(policy, want) || !strings.Contains(policy, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q does not allow exactly the page's style (%s)", policy, want)
	}
	if n := htmltest.Find(doc, func(n *html.Node) bool {
		return n.Data == "script" || htmltest.Attr(n, "style") != "" || strings.HasPrefix(htmltest.Attr(n, "src"), "http") ||
			strings.Contains(htmltest.Attr(n, "href"), "//") || n.Data == "link" || n.Data == "img" || n.Data == "iframe"
	}); len(n) > 0 {
		t.Errorf("%d elements a strict CSP blocks or that load from elsewhere, first <%s %v>", len(n), n[0].Data, n[0].Attr)
	}
	if refresh := htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "meta" && htmltest.Attr(n, "http-equiv") == "refresh" }); len(refresh) != 1 || htmltest.Attr(refresh[0], "content") != "30" {
		t.Errorf("refresh meta %v, want one every 30 s", refresh)
	}
}

func TestIndex(t *testing.T) {
	h := Handler(testApps(), 30*time.Second, func() time.Time { return now })
	body, doc := checkedPage(t, h, "/")
	apps := htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "section" && htmltest.HasClass(n, "app") })
	if len(apps) != 2 || htmltest.Attr(apps[0], "data-app") != "tickets" || htmltest.Attr(apps[1], "data-app") != "empty" {
		t.Fatalf("app sections %d, want tickets and empty", len(apps))
	}
	rows := map[string]*html.Node{}
	for _, r := range htmltest.Find(apps[0], func(n *html.Node) bool { return n.Data == "tr" && htmltest.HasClass(n, "service") }) {
		rows[htmltest.Attr(r, "data-service")] = r
	}
	cell := func(svc, class string) string {
		t.Helper()
		r := rows[svc]
		if r == nil {
			t.Fatalf("no row for %q; rows %v", svc, rows)
		}
		c := htmltest.Find(r, func(n *html.Node) bool { return n.Data == "td" && htmltest.HasClass(n, class) })
		if len(c) != 1 {
			t.Fatalf("%s: %d %s cells", svc, len(c), class)
		}
		return htmltest.Text(c[0])
	}
	tests := []struct{ service, class, want string }{
		{"ts-order.v2<b>", "predicted", "7"}, {"ts-order.v2<b>", "current", "5"}, {"ts-order.v2<b>", "peak", "24.0"},
		{"ts-order.v2<b>", "burst", "1.25"}, {"ts-order.v2<b>", "fresh", "fresh"},
		{"seat-0", "held", "held: missing_data"}, {"seat-0", "burst", "–"},
		{"new-svc", "observed", "–"}, {"new-svc", "current", "–"},
		{"pay", "unpublished", "unpublished: source_error"}, {"pay", "predicted", "–"},
	}
	for _, tc := range tests {
		if got := cell(tc.service, tc.class); got != tc.want {
			t.Errorf("%s %s = %q, want %q", tc.service, tc.class, got, tc.want)
		}
	}
	// The hostile name is text, and its link path-escaped.
	links := htmltest.Find(rows["ts-order.v2<b>"], func(n *html.Node) bool { return n.Data == "a" })
	if len(links) != 1 || htmltest.Attr(links[0], "href") != "/apps/tickets/ts-order.v2%3Cb%3E" || htmltest.Text(links[0]) != "ts-order.v2<b>" {
		t.Errorf("link %v", links)
	}
	if strings.Contains(body, "v2<b>") || strings.Contains(body, "<unreachable>") {
		t.Error("data reached the page unescaped")
	}
	for _, want := range []string{"ticket-gnn", "0.910 0.800", "2h0m0s ago", "fetching window: <unreachable>"} {
		if !strings.Contains(htmltest.Text(apps[0]), want) {
			t.Errorf("tickets' section lacks %q", want)
		}
	}
	if !strings.Contains(htmltest.Text(apps[1]), "No forecast yet") {
		t.Errorf("empty application: %q", htmltest.Text(apps[1]))
	}
}

func TestServicePage(t *testing.T) {
	h := Handler(testApps(), 30*time.Second, func() time.Time { return now })
	body, doc := checkedPage(t, h, "/apps/tickets/ts-order.v2%3Cb%3E")
	if h1 := htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "h1" }); len(h1) != 1 || !strings.HasPrefix(htmltest.Text(h1[0]), "ts-order.v2<b>") {
		t.Errorf("heading %v", h1)
	}
	svgs := htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "svg" })
	if len(svgs) != 2 {
		t.Fatalf("%d charts, want request rate and CPU", len(svgs))
	}
	paths := map[string]string{}
	for _, p := range htmltest.Find(svgs[0], func(n *html.Node) bool { return n.Data == "path" }) {
		paths[htmltest.Attr(p, "class")] = htmltest.Attr(p, "d")
	}
	// Six window steps with a gap at the third: two runs of the observed
	// line; the median and the band go on from the last observed step over
	// the three forecast steps.
	if obs := paths["obs"]; strings.Count(obs, "M") != 2 || strings.Count(obs, "L") != 3 {
		t.Errorf("observed path %q: want two runs around the gap", obs)
	}
	lastObserved := paths["obs"][strings.LastIndex(paths["obs"], "L")+1:]
	if strings.Count(paths["p50"], "L") != 3 || !strings.HasPrefix(paths["p50"], "M"+strings.TrimSpace(lastObserved)) || !strings.HasSuffix(paths["band"], "Z") {
		t.Errorf("median %q band %q", paths["p50"], paths["band"])
	}
	// The CPU chart has observed values and no forecast: a line, no band.
	cpu := htmltest.Find(svgs[1], func(n *html.Node) bool { return n.Data == "path" })
	if len(cpu) != 1 || htmltest.Attr(cpu[0], "class") != "obs" {
		t.Errorf("CPU chart paths %v, want the observed line only", cpu)
	}
	// The values table under the chart holds the forecast's numbers.
	if !strings.Contains(htmltest.Text(doc), "24") || !strings.Contains(body, "<td class=\"num\">22</td>") {
		t.Errorf("values table lacks the upper bound's 22")
	}

	for _, tc := range []struct{ path, why string }{
		{"/apps/nosuch/seat-0", "unknown application"}, {"/apps/tickets/nosuch", "unknown service"},
		{"/apps/tickets", "no service"}, {"/favicon.ico", "anything else"},
	} {
		if res, _ := get(t, h, tc.path); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s (%s): status %d, want 404", tc.path, tc.why, res.StatusCode)
		}
	}
	// A service without a chart (the fallback) says why.
	if _, body := get(t, h, "/apps/tickets/new-svc"); !strings.Contains(body, "No chart") {
		t.Errorf("fallback service page without the no-chart line")
	}
	// POST is refused: the page is read-only.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", rec.Code)
	}
}

func TestDrawChart(t *testing.T) {
	start := now
	tests := []struct {
		name                    string
		observed, median, upper []float64
		wantEmpty               bool
	}{
		{"all zero", []float64{0, 0}, []float64{0}, []float64{0}, true},
		{"nothing", nil, nil, nil, true},
		{"NaN and Inf only", []float64{math.NaN(), math.Inf(1)}, []float64{math.NaN()}, nil, true},
		{"huge", []float64{1e300, 1}, []float64{1e300}, []float64{1e301}, false},
		{"negative forecast drawn at 0", []float64{1, 2}, []float64{-5}, []float64{3}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := drawChart("x", start, time.Second, tc.observed, tc.median, tc.upper)
			if c.Empty != tc.wantEmpty {
				t.Fatalf("empty %v, want %v", c.Empty, tc.wantEmpty)
			}
			for _, d := range []string{c.Observed, c.Median, c.Band} {
				if strings.Contains(d, "NaN") || strings.Contains(d, "Inf") || strings.Contains(d, "e+") {
					t.Errorf("path %q holds a non-number", d)
				}
			}
		})
	}
}

// TestLongCycleError: a 64 KiB error (a proxy's error page inside a fetch
// error) is cut, not pasted into the page.
func TestLongCycleError(t *testing.T) {
	apps := testApps()
	apps[0].Info = func() Info { return Info{CycleErr: errors.New(strings.Repeat("x", 1<<16)).Error()} }
	res, body := get(t, Handler(apps, 0, func() time.Time { return now }), "/")
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "</html>") {
		t.Fatalf("status %d, complete page %v", res.StatusCode, strings.Contains(body, "</html>"))
	}
	if n := strings.Count(body, "x"); n > maxErrorText+100 {
		t.Errorf("%d bytes of the error on the page, want at most about %d", n, maxErrorText)
	}
}

// FuzzPages: whatever a service is called, whatever its numbers and its
// reasons say, both pages render completely, with the same elements as for
// a plain name (nothing from the data became markup), and no chart path
// holds a non-number.
func FuzzPages(f *testing.F) {
	f.Add("frontend", "missing_data", 10.0, 12.0, 14.0, 20.0)
	f.Add("<script>alert(1)</script>", "\"><img src=x>", math.NaN(), math.Inf(1), -5.0, 1e308)
	f.Add("a/b?c#d", "", 0.0, 0.0, 0.0, 0.0)
	render := func(t *testing.T, name, reason string, obs, p50, upper, cpu float64) map[string]*html.Node {
		chart := &snapshot.Chart{Start: now, Step: time.Second, ObservedRequests: []float64{obs, obs * 2, p50},
			ObservedCPU: []float64{cpu}, RequestsP50: []float64{p50, upper}, RequestsUpper: []float64{upper, p50}}
		snap := &snapshot.Snapshot{Predictions: []snapshot.Prediction{{Service: name, HeldReason: reason, PredictedReplicas: 3,
			PredictedRequests: upper, ObservedRequests: obs, ObservedReplicas: cpu, ExpiresAt: now.Add(time.Minute), Chart: chart}}}
		apps := []App{{Name: "app", Latest: func() *snapshot.Snapshot { return snap }, Info: func() Info { return Info{CycleErr: reason} }}}
		h := Handler(apps, time.Second, func() time.Time { return now })
		out := map[string]*html.Node{}
		for page, path := range map[string]string{"index": "/", "service": pageLink("app", name)} {
			res, body := get(t, h, path)
			if res.StatusCode != http.StatusOK {
				if page == "index" {
					t.Fatalf("%s: %d", path, res.StatusCode)
				}
				continue // a name the router cannot take back from its path (e.g. empty)
			}
			if !strings.HasSuffix(strings.TrimSpace(body), "</html>") {
				t.Fatalf("%s: incomplete page", path)
			}
			out[page] = htmltest.Parse(t, body)
		}
		return out
	}
	elements := func(doc *html.Node) map[string]int {
		counts := map[string]int{}
		for _, n := range htmltest.Find(doc, func(*html.Node) bool { return true }) {
			counts[n.Data]++
		}
		return counts
	}
	f.Fuzz(func(t *testing.T, name, reason string, obs, p50, upper, cpu float64) {
		got := render(t, name, reason, obs, p50, upper, cpu)
		plain := render(t, "plain", "held", obs, p50, upper, cpu)
		for page, doc := range got {
			if reason == "" && plain[page] != nil {
				// A held service shows its reason in the same elements.
				plain = render(t, "plain", "", obs, p50, upper, cpu)
			}
			if g, w := elements(doc), elements(plain[page]); !maps.Equal(g, w) {
				t.Fatalf("%s page for name %q, reason %q: elements %v, want %v (as for a plain name)", page, name, reason, g, w)
			}
			for _, p := range htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "path" }) {
				if d := htmltest.Attr(p, "d"); strings.Contains(d, "NaN") || strings.Contains(d, "Inf") {
					t.Fatalf("path %q", d)
				}
			}
		}
	})
}

// TestPagesPassTidy checks both pages with HTML Tidy (Debian's tidy,
// installed by hack/chromium.sh): no HTML error or warning, and no
// priority-1 accessibility finding but the advisory that a stylesheet
// needs testing (the browser test's screenshot is that test).
func TestPagesPassTidy(t *testing.T) {
	bin, err := exec.LookPath("tidy")
	if err != nil {
		if os.Getenv("FORESIGHT_REQUIRE_CHROMIUM") != "" {
			t.Fatalf("no tidy on PATH (%v); FORESIGHT_REQUIRE_CHROMIUM is set: install it with hack/chromium.sh ensure", err)
		}
		t.Skipf("no tidy on PATH (%v); install it with hack/chromium.sh ensure", err)
	}
	h := Handler(testApps(), 30*time.Second, func() time.Time { return now })
	for _, path := range []string{"/", "/apps/tickets/ts-order.v2%3Cb%3E", "/apps/tickets/new-svc"} {
		_, body := get(t, h, path)
		file := filepath.Join(t.TempDir(), "page.html")
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command(bin, "-q", "-e", "--accessibility-check", "1", file).CombinedOutput()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" && !strings.Contains(line, "[6.1.1.2]") {
				t.Errorf("%s: tidy: %s", path, line)
			}
		}
	}
}
