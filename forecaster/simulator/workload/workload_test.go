package workload

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/internal/testenv"
)

// Duration, Peak and Mean follow their definitions, including the empty trace.
func TestTraceStats(t *testing.T) {
	tests := []struct {
		name     string
		tr       Trace
		duration time.Duration
		peak     float64
		mean     float64
		why      string
	}{
		{"empty", Trace{Step: time.Second}, 0, 0, 0, "no values: zero everything rather than NaN"},
		{"three", Trace{Step: time.Second, RPS: []float64{1, 5, 3}}, 3 * time.Second, 5, 3, "one step per value, max, average"},
		{"zeros", Trace{Step: time.Second, RPS: []float64{0, 0}}, 2 * time.Second, 0, 0, "an idle trace peaks at 0"},
		{"other step", Trace{Step: time.Minute, RPS: []float64{2, 4}}, 2 * time.Minute, 4, 3, "Duration uses Step"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tr.Duration(); got != tt.duration {
				t.Errorf("Duration %v, want %v (%s)", got, tt.duration, tt.why)
			}
			if got := tt.tr.Peak(); got != tt.peak {
				t.Errorf("Peak %v, want %v (%s)", got, tt.peak, tt.why)
			}
			if got := tt.tr.Mean(); got != tt.mean {
				t.Errorf("Mean %v, want %v (%s)", got, tt.mean, tt.why)
			}
		})
	}
}

// Open loads an existing file and generates otherwise; it prefers a file.
func TestOpenDispatch(t *testing.T) {
	dir := t.TempDir()
	// A file named like a generator, in the working directory: Open must
	// load it, not generate, because the spec says "if arg names an existing file".
	if err := os.WriteFile(filepath.Join(dir, "step"), []byte("7\n8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := writeTemp(t, "t.txt", "1\n2\n3\n")
	tests := []struct {
		arg      string
		chdir    bool
		wantName string
		wantLen  int
		why      string
	}{
		{file, false, "t.txt", 3, "an existing file is loaded"},
		{"sinusoidal", false, "sinusoidal:base=150,amplitude=100,period=20m,noise=0", 3600, "a bare generator name"},
		{"step:at=5m", false, "step:low=50,high=200,at=5m,noise=0", 3600, "a spec with parameters (and a colon, no file by that name)"},
		{"step", true, "step", 2, "a file called step in the working directory wins over the generator"},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			if tt.chdir {
				t.Chdir(dir)
			}
			tr, err := Open(tt.arg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if tr.Name != tt.wantName || len(tr.RPS) != tt.wantLen {
				t.Errorf("got %q with %d values, want %q with %d (%s)", tr.Name, len(tr.RPS), tt.wantName, tt.wantLen, tt.why)
			}
		})
	}
	t.Run("real trace", func(t *testing.T) {
		// The command passes shared trace paths straight through.
		tr, err := Open(testenv.SharedData(t, "traces/bursty.txt"), Options{Duration: time.Minute})
		if err != nil || len(tr.RPS) != 60 {
			t.Fatalf("got %v, want 60 values of bursty.txt", err)
		}
	})
}

// Open's errors say what was tried.
func TestOpenErrors(t *testing.T) {
	tests := []struct {
		arg      string
		want     []error
		contains []string
		why      string
	}{
		{"no-such-trace.txt", []error{fs.ErrNotExist, ErrUnknownGenerator},
			[]string{"no such file", "not a generator", "step, sinusoidal, low-high, bursty"},
			"neither a file nor a generator: both are said, and the generators listed"},
		{"step:low=x", []error{ErrBadSpec}, []string{"low"},
			"a generator name with a bad parameter gets the generator's error, naming the key"},
		{"  ", nil, []string{"empty", "generators: step"}, "nothing given"},
		{os.TempDir(), nil, []string{"directory"}, "a directory is not a trace file"},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			_, err := Open(tt.arg, Options{})
			if err == nil {
				t.Fatalf("no error (%s)", tt.why)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q does not wrap %v (%s)", err, w, tt.why)
				}
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q (%s)", err, s, tt.why)
				}
			}
		})
	}
}
