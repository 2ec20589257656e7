package workload

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/internal/testenv"
)

// maxTraceErrorBytes bounds a Load error whatever the file holds: the path,
// file:line, and a quoted prefix of the offending text.
const maxTraceErrorBytes = 1024

// FuzzLoadTrace writes arbitrary bytes as a trace file and loads it with
// arbitrary Scale and Compress. Invariants: no panic; an error names the
// file, is short, and wraps one of the package's sentinels; an accepted
// trace has 1 s steps, at most MaxDuration of values, each finite, >= 0 and
// at most MaxRate×Scale, with Mean <= Peak.
func FuzzLoadTrace(f *testing.F) {
	for _, s := range []string{
		"1\n2\n3\n", "0\n", "1.5\n\n", "\n\n7\n", "1e12\n", "1e13\n", "-1\n", "NaN\n", "+Inf\n", "1e400\n", "0x1p-2\n",
		"1998-05-04 12:10:00,60\n1998-05-04 12:11:00,120\n", "2024-01-01T00:00:00Z,5\n2024-01-01T00:01:00Z,5\n",
		"2024-01-01 00:00:00,1\n2024-01-01 00:03:00,1\n", "2024-01-01 00:00:00,1,2\n", "1\n2024-01-01 00:00:00,5\n",
		"timestamp,count\n", "1\n" + strings.Repeat("1", 70000) + "\n", strings.Repeat("x", 60000) + "\n",
	} {
		f.Add([]byte(s), 1.0, 1.0)
		f.Add([]byte(s), 10.0, 60.0)
	}
	for _, name := range []string{"bursty.txt", "diurnal.txt", "noisy.txt", "diurnal-2.txt", "worldcup98_per_minute.csv", "locust_users_5s.txt"} {
		b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(f), "..", "shared", "data", "traces", name))
		if err != nil {
			f.Logf("seed traces/%s not available (%v): fuzzing without it", name, err)
			continue
		}
		f.Add(b, 1.0, 1.0)
		f.Add(b, 1.5, 60.0)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, scale, compress float64) {
		path := filepath.Join(dir, "trace.txt")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		tr, err := Load(path, Options{Scale: scale, Compress: compress})
		if err != nil {
			checkTraceError(t, path, err)
			return
		}
		if scale == 0 {
			scale = 1
		}
		if tr.Step != time.Second || len(tr.RPS) == 0 || tr.Duration() > MaxDuration {
			t.Fatalf("accepted a trace with step %v and %d values", tr.Step, len(tr.RPS))
		}
		for i, v := range tr.RPS {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > MaxRate*scale*(1+1e-9) {
				t.Fatalf("RPS[%d] = %v (scale %v, compress %v)", i, v, scale, compress)
			}
		}
		if mean, peak := tr.Mean(), tr.Peak(); !(mean <= peak*(1+1e-9)) {
			t.Fatalf("mean %v above peak %v", mean, peak)
		}
	})
}

func checkTraceError(t *testing.T, path string, err error) {
	t.Helper()
	msg := err.Error()
	if len(msg) > maxTraceErrorBytes || !strings.Contains(msg, path) {
		t.Fatalf("error of %d bytes (want at most %d, naming %s): %.300q", len(msg), maxTraceErrorBytes, path, msg)
	}
	for _, sentinel := range []error{ErrEmpty, ErrSyntax, ErrNegative, ErrNotFinite, ErrMixedFormats, ErrTimestamp,
		ErrSpacing, ErrTooLarge, ErrOptions} {
		if errors.Is(err, sentinel) {
			return
		}
	}
	t.Fatalf("error %q wraps none of the package's sentinels", msg)
}

// TestLoadLongLineShortError: a 60 kB line (under the scanner's 64 KiB) is
// quoted as a prefix, not echoed whole (FuzzLoadTrace found it).
func TestLoadLongLineShortError(t *testing.T) {
	for _, content := range []string{
		"1\n" + strings.Repeat("x", 60000),
		"1\n" + strings.Repeat("9", 60000) + "x",
		"2024-01-01 00:00:00,1\n2024-01-01 00:01:00,1," + strings.Repeat("2", 60000),
		"2024-01-01 00:00:00,1\n" + strings.Repeat("2", 60000) + ",1",
	} {
		path := filepath.Join(t.TempDir(), "long.txt")
		if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path, Options{})
		if err == nil || len(err.Error()) > 300 || !strings.HasPrefix(err.Error(), path+":2: ") || !strings.Contains(err.Error(), "bytes)") {
			t.Errorf("error of %d bytes, want a short one at %s:2 naming the length: %.300v", len(err.Error()), path, err)
		}
	}
}
