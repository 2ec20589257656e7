package workload

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/internal/testenv"
)

// writeTemp writes content to a file called name in a fresh temp dir.
func writeTemp(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func approx(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func equalValues(a, b []float64, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !approx(a[i], b[i], tol) {
			return false
		}
	}
	return true
}

// The real reference traces load with the lengths, means and peaks measured
// independently (awk over the files).
func TestLoadRealTraces(t *testing.T) {
	const wcMean = 5726931.0 / 5001 / 60 // sum of the 5001 per-minute counts / minutes / 60 s
	const wcPeak = 2504.0 / 60           // the busiest minute, 2504 requests, as req/s
	tests := []struct {
		name     string
		file     string
		opts     Options
		wantLen  int
		wantMean float64
		wantPeak float64
		why      string
	}{
		{"bursty", "bursty.txt", Options{}, 3600, 163.274444, 397,
			"one value per line and second: 3600 s, mean 587788/3600, peak 397"},
		{"diurnal", "diurnal.txt", Options{}, 3600, 945292.0 / 3600, 387, "same format, sum 945292"},
		{"noisy", "noisy.txt", Options{}, 3600, 566914.0 / 3600, 245, "same format, sum 566914"},
		{"diurnal-2", "diurnal-2.txt", Options{}, 3600, 822101.0 / 3600, 394, "same format, sum 822101"},
		{"worldcup", "worldcup98_per_minute.csv", Options{}, 5001 * 60, wcMean, wcPeak,
			"5001 minutes, each held for 60 s at count/60: 300060 s with the per-minute mean and peak"},
		{"worldcup compressed", "worldcup98_per_minute.csv", Options{Compress: 60}, 5001, wcMean, wcPeak,
			"Compress 60 averages each minute's 60 equal seconds back to count/60: one value a minute"},
		{"bursty scaled", "bursty.txt", Options{Scale: 1.5}, 3600, 1.5 * 587788 / 3600, 1.5 * 397,
			"Scale multiplies every value, so mean and peak by 1.5; the length is unchanged"},
		{"bursty truncated", "bursty.txt", Options{Duration: 10 * time.Minute}, 600, 108.306667, 0,
			"Duration 10m keeps the first 600 lines, whose mean (awk) is 108.306667"},
		{"locust 5s", "locust_users_5s.txt", Options{Step: 5 * time.Second}, 903 * 5, 43200.0 / 903, 100,
			"Step 5s holds each of the 903 values for 5 s; the mean over time is the mean of the values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := Load(testenv.SharedData(t, filepath.Join("traces", tt.file)), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(tr.RPS) != tt.wantLen || tr.Step != time.Second || tr.Name != tt.file {
				t.Fatalf("%s: got %d values, step %v, name %q; want %d, 1s, %q (%s)",
					tt.file, len(tr.RPS), tr.Step, tr.Name, tt.wantLen, tt.file, tt.why)
			}
			if got := tr.Mean(); !approx(got, tt.wantMean, 1e-5) {
				t.Errorf("%s: mean %.6f, want %.6f (%s)", tt.file, got, tt.wantMean, tt.why)
			}
			if tt.wantPeak > 0 && !approx(tr.Peak(), tt.wantPeak, 1e-9) {
				t.Errorf("%s: peak %v, want %v (%s)", tt.file, tr.Peak(), tt.wantPeak, tt.why)
			}
			if got := tr.Duration(); got != time.Duration(tt.wantLen)*time.Second {
				t.Errorf("%s: duration %v, want one second per value", tt.file, got)
			}
		})
	}
}

// The per-minute World Cup rows map to seconds exactly: the first minute
// (1032 requests) is 60 seconds of 1032/60 and the second (1100) the next 60,
// so a step appears at second 60 and no request is created or lost.
func TestLoadWorldCupHoldsEachMinute(t *testing.T) {
	tr, err := Load(testenv.SharedData(t, "traces/worldcup98_per_minute.csv"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[int]float64{0: 1032.0 / 60, 59: 1032.0 / 60, 60: 1100.0 / 60, 119: 1100.0 / 60} {
		if !approx(tr.RPS[s], want, 1e-12) {
			t.Errorf("second %d: %v, want %v", s, tr.RPS[s], want)
		}
	}
}

// Small synthetic files pin down the format handling and every transform.
func TestLoadTransforms(t *testing.T) {
	tests := []struct {
		name    string
		content string
		opts    Options
		want    []float64
		why     string
	}{
		{"plain", "1\n2\n3\n", Options{}, []float64{1, 2, 3},
			"one value per line and second, as written"},
		{"decimals and spaces", " 1.5 \r\n2e1\n\n\n", Options{}, []float64{1.5, 20},
			"surrounding space, CRLF, exponents and trailing blank lines are fine"},
		{"leading blank lines", "\n\n7\n", Options{}, []float64{7},
			"blank lines before the first value are not time steps"},
		{"compress 2", "1\n2\n3\n4\n5\n6\n", Options{Compress: 2}, []float64{1.5, 3.5, 5.5},
			"each output second averages two input seconds"},
		{"compress 4 partial tail", "1\n2\n3\n4\n5\n6\n", Options{Compress: 4}, []float64{2.5, 5.5},
			"the last output second averages only the two seconds that exist"},
		{"compress 1.5", "1\n2\n3\n", Options{Compress: 1.5}, []float64{(1 + 2*0.5) / 1.5, (2*0.5 + 3) / 1.5},
			"a fractional factor weights each input by its overlap: [0,1.5) is all of 1 and half of 2"},
		{"compress keeps rates", "10\n10\n10\n10\n", Options{Compress: 4}, []float64{10},
			"compression averages, it does not sum: a constant rate stays the same rate"},
		{"scale", "1\n2\n", Options{Scale: 3}, []float64{3, 6}, "every value times 3"},
		{"truncate", "1\n2\n3\n4\n", Options{Duration: 2 * time.Second}, []float64{1, 2},
			"Duration keeps the first two seconds"},
		{"truncate rounds down", "1\n2\n3\n4\n", Options{Duration: 2500 * time.Millisecond}, []float64{1, 2},
			"a trace is whole seconds, so 2.5 s keeps two values"},
		{"truncate longer than file", "1\n2\n", Options{Duration: time.Hour}, []float64{1, 2},
			"Duration only shortens; a shorter file stays as it is"},
		{"truncate after compress", "1\n2\n3\n4\n5\n6\n", Options{Compress: 2, Duration: 2 * time.Second}, []float64{1.5, 3.5},
			"Duration counts simulated (compressed) seconds"},
		{"step 2s", "4\n8\n", Options{Step: 2 * time.Second}, []float64{4, 4, 8, 8},
			"with Step 2s each line is held for two seconds"},
		{"step 500ms", "4\n8\n1\n", Options{Step: 500 * time.Millisecond}, []float64{6, 1},
			"with Step 0.5s two lines share a second and are averaged; the half second left stands alone"},
		{"csv hold", "2024-01-01 00:00:00,60\n2024-01-01 00:01:00,120\n", Options{Compress: 30}, []float64{1, 1, 2, 2},
			"60 per minute is 1 req/s for each of that minute's seconds; Compress 30 shows two per minute"},
		{"csv rfc3339", "2024-01-01T00:00:00Z,600\n2024-01-01T00:01:00Z,0\n", Options{Compress: 60}, []float64{10, 0},
			"RFC 3339 timestamps are accepted too; Compress 60 gives back count/60"},
		{"csv step one minute", "2024-01-01 00:00:00,60\n", Options{Step: time.Minute, Compress: 60}, []float64{1},
			"Step set to one minute agrees with a CSV and is accepted"},
		{"csv scale", "2024-01-01 00:00:00,60\n", Options{Scale: 2, Compress: 60}, []float64{2},
			"Scale applies to CSV rates too"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := Load(writeTemp(t, "trace.txt", tt.content), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !equalValues(tr.RPS, tt.want, 1e-12) {
				t.Errorf("got %v, want %v (%s)", tr.RPS, tt.want, tt.why)
			}
		})
	}
	t.Run("csv expands to seconds", func(t *testing.T) {
		// Without compression, 2 minutes are 120 one-second values whose
		// sum is the 180 requests recorded.
		tr, err := Load(writeTemp(t, "wc.csv", "2024-01-01 00:00:00,60\n2024-01-01 00:01:00,120\n"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for _, v := range tr.RPS {
			sum += v
		}
		if len(tr.RPS) != 120 || !approx(sum, 180, 1e-9) {
			t.Errorf("got %d values summing to %v, want 120 summing to 180", len(tr.RPS), sum)
		}
	})
}

// Every bad input names the file and the line (file:line), and wraps the
// sentinel that says what is wrong.
func TestLoadErrors(t *testing.T) {
	longLine := strings.Repeat("1", 70000) + "\n" // past bufio.Scanner's 64 KiB token
	tests := []struct {
		name    string
		content string
		want    error
		line    int // 0: the error is about the whole file, not a line
		why     string
	}{
		{"empty", "", ErrEmpty, 0, "no values at all"},
		{"blank only", "\n \n\t\n", ErrEmpty, 0, "blank lines are not values"},
		{"non-numeric", "1\n2\nabc\n", ErrSyntax, 3, "abc is not a number"},
		{"header", "timestamp,count\n1998-05-04 12:10:00,1\n", ErrTimestamp, 1, "a CSV header is not a timestamp: the format has none"},
		{"negative", "1\n-1\n", ErrNegative, 2, "a rate is never negative"},
		{"nan", "1\n2\nNaN\n", ErrNotFinite, 3, "ParseFloat accepts NaN; a trace must not"},
		{"inf", "+Inf\n", ErrNotFinite, 1, "ParseFloat accepts Inf; a trace must not"},
		{"out of range", "1\n1e400\n", ErrNotFinite, 2, "1e400 overflows float64"},
		{"absurd rate", "1e13\n", ErrTooLarge, 1, "over MaxRate"},
		{"blank inside", "1\n\n2\n", ErrSyntax, 2, "a blank line between values would shift every later second"},
		{"mixed plain then csv", "1\n2\n2024-01-01 00:00:00,5\n", ErrMixedFormats, 3, "line 1 made it one-number-per-line"},
		{"mixed csv then plain", "2024-01-01 00:00:00,5\n7\n", ErrMixedFormats, 2, "line 1 made it CSV"},
		{"bad timestamp", "2024-01-01 00:00:00,5\n2024-13-01 00:01:00,5\n", ErrTimestamp, 2, "month 13"},
		{"csv non-numeric count", "2024-01-01 00:00:00,five\n", ErrSyntax, 1, "the count must be a number"},
		{"csv negative count", "2024-01-01 00:00:00,1\n2024-01-01 00:01:00,-5\n", ErrNegative, 2, "a count is never negative"},
		{"csv nan count", "2024-01-01 00:00:00,NaN\n", ErrNotFinite, 1, "NaN count"},
		{"csv three fields", "2024-01-01 00:00:00,1,2\n", ErrSyntax, 1, "want exactly timestamp,count"},
		{"csv gap", "2024-01-01 00:00:00,1\n2024-01-01 00:01:00,1\n2024-01-01 00:03:00,1\n", ErrSpacing, 3, "minute 2 is missing"},
		{"csv duplicate", "2024-01-01 00:00:00,1\n2024-01-01 00:00:00,1\n", ErrSpacing, 2, "not strictly increasing"},
		{"csv backwards", "2024-01-01 00:05:00,1\n2024-01-01 00:04:00,1\n", ErrSpacing, 2, "time goes back"},
		{"csv seconds spacing", "2024-01-01 00:00:00,1\n2024-01-01 00:00:30,1\n", ErrSpacing, 2, "rows are per minute, not per 30 s"},
		{"line too long", "1\n" + longLine, ErrSyntax, 2, "a 70 kB line is no trace line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTemp(t, "bad.txt", tt.content)
			_, err := Load(path, Options{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v (%s)", err, tt.want, tt.why)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			var le *LineError
			if tt.line == 0 {
				if errors.As(err, &le) {
					t.Errorf("error %q names line %d, want the whole file", err, le.Line)
				}
				return
			}
			if !errors.As(err, &le) || le.Line != tt.line {
				t.Fatalf("error %q: want line %d (%s)", err, tt.line, tt.why)
			}
			if prefix := fmt.Sprintf("%s:%d: ", path, tt.line); !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
		})
	}
}

// Options and sizes out of range are refused before or instead of reading.
func TestLoadLimitsAndOptions(t *testing.T) {
	plain := writeTemp(t, "plain.txt", "1\n2\n")
	csv := writeTemp(t, "wc.csv", "2024-01-01 00:00:00,60\n")
	// 31 lines held for a day each would play 31 days, over MaxDuration.
	long := writeTemp(t, "long.txt", strings.Repeat("1\n", 31))
	huge := filepath.Join(t.TempDir(), "huge.txt")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse file: its size is over the limit without writing 32 MiB.
	if err := f.Truncate(MaxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	tests := []struct {
		name string
		path string
		opts Options
		want error
		why  string
	}{
		{"negative scale", plain, Options{Scale: -1}, ErrOptions, "Scale must be > 0"},
		{"nan scale", plain, Options{Scale: math.NaN()}, ErrOptions, "NaN fails every comparison, so must be caught"},
		{"absurd scale", plain, Options{Scale: 1e7}, ErrOptions, "over MaxScale"},
		{"compress under 1", plain, Options{Compress: 0.5}, ErrOptions, "stretching time is not compression"},
		{"compress inf", plain, Options{Compress: math.Inf(1)}, ErrOptions, "over MaxCompress"},
		{"negative duration", plain, Options{Duration: -time.Second}, ErrOptions, "no negative lengths"},
		{"sub-second duration", plain, Options{Duration: time.Millisecond}, ErrOptions, "shorter than one value"},
		{"duration over 30 days", plain, Options{Duration: 31 * 24 * time.Hour}, ErrOptions, "over MaxDuration"},
		{"negative step", plain, Options{Step: -time.Second}, ErrOptions, "no negative steps"},
		{"step over a day", plain, Options{Step: 25 * time.Hour}, ErrOptions, "over 24h"},
		{"step on csv", csv, Options{Step: 5 * time.Second}, ErrOptions, "a CSV's step comes from its timestamps"},
		{"too long to play", long, Options{Step: 24 * time.Hour}, ErrTooLarge, "31 days of output over the 30-day limit"},
		{"file too large", huge, Options{}, ErrTooLarge, "over MaxFileSize, refused before reading"},
		{"missing file", filepath.Join(t.TempDir(), "nope.txt"), Options{}, os.ErrNotExist, "the OS error is kept"},
		{"directory", t.TempDir(), Options{}, nil, "a directory is no trace (any error)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path, tt.opts)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("got %v, want %v (%s)", err, tt.want, tt.why)
			}
			if !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	t.Run("too long but truncated", func(t *testing.T) {
		// The same 31-day file is fine once Duration cuts it short: the
		// limit is on what is played, not on what is read.
		tr, err := Load(long, Options{Step: 24 * time.Hour, Duration: time.Hour})
		if err != nil || len(tr.RPS) != 3600 {
			t.Fatalf("got %v, want 3600 values", err)
		}
	})
}

// BenchmarkLoadWorldCup measures reading the 5001-row per-minute CSV and
// expanding it to 300060 one-second values.
func BenchmarkLoadWorldCup(b *testing.B) {
	path := testenv.SharedData(b, "traces/worldcup98_per_minute.csv")
	b.ReportAllocs()
	for b.Loop() {
		tr, err := Load(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(tr.RPS) != 300060 {
			b.Fatalf("%d values", len(tr.RPS))
		}
	}
}
