package source_test

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/testenv"
)

// seedFile returns up to limit bytes of a file under ../shared/data, or nil
// (with a note in the log) when the reference data is not there.
func seedFile(f *testing.F, rel string, limit int) []byte {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(f), "..", "shared", "data", rel))
	if err != nil {
		f.Logf("seed %s not available (%v): fuzzing without it", rel, err)
		return nil
	}
	if len(b) > limit {
		b = b[:limit]
		if i := bytes.LastIndexByte(b, '\n'); i > 0 {
			b = b[:i+1] // whole lines
		}
	}
	return b
}

// replayReach bounds how far past now the fuzzer replays: 100 intervals of
// a file whose rows are years apart would overflow a time.Duration.
const replayReach = 200 * 365 * 24 * time.Hour

// FuzzParseCSV: arbitrary bytes never make ParseCSV or Fetch panic; every
// error is short (a cell is quoted as a bounded prefix) and names the file;
// and an accepted CSV serves only finite, non-negative values (never -0) or
// NaN for missing, at the times asked, with or without Replay.
func FuzzParseCSV(f *testing.F) {
	const header = "step,timestamp_local,web_cpu,web_req,web_res,cart_pod,cart_mem\n"
	for _, s := range []string{
		header + "0,2024-04-06T11:30:00,0.5,10,0.1,1,0.2\n1,2024-04-06T11:30:30,0,0,,2,NaN\n2,2024-04-06T11:31:00,1,2,3,4,5\n",
		"timestamp_local,web_req\n2024-04-06T11:30:00Z,1\n2024-04-06T12:30:00+01:00,2\n",
		"\ufefftimestamp_local,a_b_req\n2024-04-06T11:30:00,1e25\n2024-04-06T11:30:30,-0\n",
		"timestamp_local,web_req\n2024-04-06T11:30:00,-1\n2024-04-06T11:30:30,+Inf\n",
		"timestamp_local,web_req\n2024-04-06T11:30:00,1e400\n2024-04-06T11:30:30,0x1p-2\n",
		"timestamp_local,web_req\n0001-01-01T00:00:00,1\n5000-01-01T00:00:00,2\n9999-01-01T00:00:00,3\n",
		"timestamp_local,web_req\n\"2024-04-06T11:30:00\",\"1\"\n2024-04-06T11:30:30,\"2\n\"\n",
		"timestamp_local,web_req,web_req\n", "timestamp_local\n", "", "\n\n", "\"", "a,\"b\nc\"",
		// The oversized cells of the issue, scaled down to cells far longer
		// than any error may quote. The multi-megabyte ones are in
		// TestParseCSVHugeCellsShortErrors: as seeds, every input the fuzzer
		// derives from them takes it up to a minute to minimise.
		"timestamp_local,web_req\n2024-04-06T11:30:00,1\n2024-04-06T11:30:30," + strings.Repeat("9", 300) + "x\n",
		"timestamp_local," + strings.Repeat("x", 300) + "_req\n",
		"timestamp_local," + strings.Repeat("x", 300) + "\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	// The real recording's header and first rows (the whole 3.4 MB file
	// would make every mutation and minimisation slow); its header and
	// number formats are what matter.
	if b := seedFile(f, "boutique/boutique.csv", 2<<10); b != nil {
		f.Add(b, false)
		f.Add(b, true)
	}

	f.Fuzz(func(t *testing.T, data []byte, replay bool) {
		const name = "fuzz.csv"
		// Two quoted cells (a header and a value) of at most 64 bytes each,
		// escaped, plus the words around them: far below any hostile cell.
		const maxFuzzErrorBytes = 1024
		c, err := source.ParseCSV(bytes.NewReader(data), name, source.CSVOptions{Replay: replay})
		if err != nil {
			msg := err.Error()
			if len(msg) > maxFuzzErrorBytes || !strings.HasPrefix(msg, "csv source "+name) {
				t.Fatalf("error of %d bytes (want at most %d, naming the file): %.400q", len(msg), maxFuzzErrorBytes, msg)
			}
			return
		}
		services := c.Services()
		start, end := c.Span()
		if len(services) == 0 || !end.After(start) || c.Interval() <= 0 {
			t.Fatalf("accepted a CSV with services %v, span %v..%v, interval %v", services, start, end, c.Interval())
		}
		// The file's own rows, at most 1000 steps, then (replaying) now.
		steps := min(end.Sub(start)/c.Interval(), 1000) // 1000×interval may not fit a Duration
		last := start.Add(steps * c.Interval())
		queries := []source.Query{{Services: services, Features: source.AllFeatures, Start: start, End: last, Step: c.Interval()}}
		if replay {
			now := time.Date(2026, 12, 5, 17, 0, 0, 0, time.UTC)
			queries = append(queries, source.Query{Services: services, Features: source.AllFeatures,
				Start: now, End: now.Add(min(100, replayReach/c.Interval()) * c.Interval()), Step: c.Interval()})
		}
		for _, q := range queries {
			data, err := c.Fetch(context.Background(), q)
			if err != nil {
				t.Fatalf("Fetch(%v..%v step %v) of an accepted CSV: %v", q.Start, q.End, q.Step, err)
			}
			if len(data) == 0 {
				t.Fatalf("Fetch over the file's own rows returned nothing")
			}
			for feature, byService := range data {
				for service, samples := range byService {
					for _, s := range samples {
						if s.Time.Before(q.Start) || s.Time.After(q.End) {
							t.Errorf("%s %s: sample at %v outside %v..%v", feature, service, s.Time, q.Start, q.End)
						}
						if v := s.Value; !math.IsNaN(v) && (math.IsInf(v, 0) || v < 0 || math.Signbit(v)) {
							t.Errorf("%s %s: value %v served", feature, service, v)
						}
					}
				}
			}
		}
	})
}
