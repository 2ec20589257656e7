package simulator

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// plotReport runs a 10-minute slice of the step trace (plus the warm-up)
// through every policy, short enough to keep the plot tests fast.
func plotReport(t *testing.T, sweep bool) *Report {
	t.Helper()
	tr := stepTrace()
	tr.RPS = tr.RPS[:600]
	opts := DefaultCompareOptions()
	opts.Model = demoModel(t)
	opts.Sweep = sweep
	rep, err := Compare(context.Background(), tr, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestWritePlots: the expected PNGs, and only they, are written (no
// temporary files left), decode, are plot-sized, and frontier.png comes
// only with a sweep. The same report gives the same bytes.
func TestWritePlots(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sweep bool
		want  []string
	}{
		{"no sweep", false, []string{"load.png", "replicas.png", "latency.png"}},
		{"sweep", true, []string{"load.png", "replicas.png", "latency.png", "frontier.png"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := plotReport(t, tc.sweep)
			dir := filepath.Join(t.TempDir(), "plots", "nested") // created by WritePlots
			files, err := rep.WritePlots(dir)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, f := range tc.want {
				want = append(want, filepath.Join(dir, f))
			}
			if !slices.Equal(files, want) {
				t.Fatalf("wrote %v, want %v", files, want)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != len(want) {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("directory holds %v, want only %v", names, tc.want)
			}
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				img, err := png.Decode(bytes.NewReader(b))
				if err != nil {
					t.Fatalf("%s: not a PNG: %v", f, err)
				}
				if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w < 400 || h < 300 {
					t.Errorf("%s: %d×%d pixels, want at least 400×300", f, w, h)
				}
			}
			again, err := rep.WritePlots(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			for i := range files {
				a, _ := os.ReadFile(files[i])
				b, _ := os.ReadFile(again[i])
				if !bytes.Equal(a, b) {
					t.Errorf("%s: differs between two writes of the same report", filepath.Base(files[i]))
				}
			}
		})
	}
}

func TestWritePlotsErrors(t *testing.T) {
	rep := plotReport(t, false)
	file := filepath.Join(t.TempDir(), "regular")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	noRuns := *rep
	noRuns.Runs = nil // as decoded from JSON
	for _, tc := range []struct {
		name    string
		rep     *Report
		dir     string
		wantErr string
	}{
		{"empty report", &Report{Trace: "empty"}, t.TempDir(), "no policies"},
		{"dir under a regular file", rep, filepath.Join(file, "plots"), "not a directory"},
		{"report without runs", &noRuns, t.TempDir(), "no run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := tc.rep.WritePlots(tc.dir)
			if err == nil {
				t.Fatalf("no error; wrote %v", files)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not say %q", err, tc.wantErr)
			}
			if len(files) != 0 {
				t.Errorf("wrote %v despite the error", files)
			}
		})
	}
}

func TestDownsample(t *testing.T) {
	seq := func(n int) []float64 {
		s := make([]float64, n)
		for i := range s {
			s[i] = float64(i)
		}
		return s
	}
	for _, tc := range []struct {
		name      string
		n, max    int
		wantLen   int
		wantFirst float64 // mean of the first bucket
	}{
		{"short kept", 10, 20, 10, 0},
		{"exactly max kept", 20, 20, 20, 0},
		{"halved", 40, 20, 20, 0.5},
		{"uneven tail", 45, 20, 15, 1}, // buckets of 3, the last one full
		{"long trace", 300_000, maxPlotPoints, 2000, 74.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			xs, ys := seq(tc.n), seq(tc.n)
			got := downsample(xs, ys, tc.max)
			if len(got) != tc.wantLen {
				t.Fatalf("%d points, want %d", len(got), tc.wantLen)
			}
			if got[0].Y != tc.wantFirst || got[0].X != tc.wantFirst {
				t.Errorf("first point %v, want the first bucket's mean %v", got[0], tc.wantFirst)
			}
			// The mean of a linear ramp's buckets is the ramp at their centres,
			// so the overall mean is kept when buckets are equal.
			if last := got[len(got)-1]; last.Y > float64(tc.n-1) || last.Y < float64(tc.n-1)-float64(tc.n)/float64(tc.wantLen) {
				t.Errorf("last point %v is not the last bucket's mean", last)
			}
		})
	}
}
