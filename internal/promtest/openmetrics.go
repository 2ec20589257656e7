package promtest

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/foresightscale/foresight/forecaster/source"
)

// WriteOpenMetrics writes data as OpenMetrics gauges named like the shipped
// recording rules (source.RecordedMetrics), labelled with namespace and
// service, so the Prometheus source with its default queries reads the same
// values back. Missing (NaN) samples are skipped, as a scrape would have
// produced nothing. Samples of a series must be in strictly increasing time order.
func WriteOpenMetrics(w io.Writer, namespace string, data source.Data) error {
	for f := range data {
		if _, ok := source.RecordedMetrics[f]; !ok {
			return fmt.Errorf("openmetrics: feature %q has no recorded metric name", f)
		}
	}
	bw := bufio.NewWriter(w)
	for _, f := range append(slices.Clone(source.AllFeatures), source.FeedbackFeatures...) {
		byService, ok := data[f]
		if !ok {
			continue
		}
		name := source.RecordedMetrics[f]
		// A metric family's lines must be contiguous and start with its TYPE.
		fmt.Fprintf(bw, "# TYPE %s gauge\n", name)
		services := make([]string, 0, len(byService))
		for s := range byService {
			services = append(services, s)
		}
		slices.Sort(services)
		for _, s := range services {
			labels := fmt.Sprintf(`{namespace="%s",service="%s"}`, escapeLabelValue(namespace), escapeLabelValue(s))
			samples := byService[s]
			for i, sample := range samples {
				if i > 0 && !sample.Time.After(samples[i-1].Time) {
					return fmt.Errorf("openmetrics: %s %s: sample %d at %v is not after the previous one", f, s, i, sample.Time)
				}
				if math.IsNaN(sample.Value) {
					continue
				}
				if math.IsInf(sample.Value, 0) {
					return fmt.Errorf("openmetrics: %s %s: infinite sample at %v", f, s, sample.Time)
				}
				// Timestamps are in seconds; millisecond precision is what the TSDB stores.
				ts := strconv.FormatFloat(float64(sample.Time.UnixMilli())/1000, 'f', -1, 64)
				// 'g' with precision -1 round-trips float64 exactly.
				fmt.Fprintf(bw, "%s%s %s %s\n", name, labels, strconv.FormatFloat(sample.Value, 'g', -1, 64), ts)
			}
		}
	}
	bw.WriteString("# EOF\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("openmetrics: %w", err)
	}
	return nil
}

// WriteOpenMetricsFile writes data with WriteOpenMetrics to a file in the
// test's temporary directory and returns its path.
func WriteOpenMetricsFile(t testing.TB, namespace string, data source.Data) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backfill.om.txt")
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("promtest: %v", err)
	}
	if err := WriteOpenMetrics(f, namespace, data); err != nil {
		f.Close()
		t.Fatalf("promtest: write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("promtest: close %s: %v", path, err)
	}
	return path
}

var labelValueEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabelValue(s string) string { return labelValueEscaper.Replace(s) }
