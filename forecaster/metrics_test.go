package forecaster

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestWindowGaps: the scrape shows each service's last counts, two series
// per feature, until Reset.
func TestWindowGaps(t *testing.T) {
	g := newWindowGaps()
	g.Set("ts-order", "requests", 1, 0)
	g.Set("ts-order", "requests", 2, 3) // a later cycle replaces the counts
	g.Set("ratings.v2", "cpu", 0, 4)
	want := `# HELP foresight_window_imputed_samples ` + windowGapsHelp + `
# TYPE foresight_window_imputed_samples gauge
foresight_window_imputed_samples{feature="cpu",method="carried",service="ratings.v2"} 0
foresight_window_imputed_samples{feature="cpu",method="imputed",service="ratings.v2"} 4
foresight_window_imputed_samples{feature="requests",method="carried",service="ts-order"} 2
foresight_window_imputed_samples{feature="requests",method="imputed",service="ts-order"} 3
`
	if err := testutil.CollectAndCompare(g, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	g.Reset()
	if n := testutil.CollectAndCount(g); n != 0 {
		t.Fatalf("%d series after Reset, want 0", n)
	}
}
