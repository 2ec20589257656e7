package source_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
)

// maxErrorBytes is how long a CSV error may be however large the input:
// the file name, file:line, a short quote of the cell and its length.
const maxErrorBytes = 300

// TestParseCSVHugeCellsShortErrors: an oversized cell, header or timestamp
// is never echoed whole (a 31 MB cell once became one 31 MB log line); the
// error stays short and names file:line.
func TestParseCSVHugeCellsShortErrors(t *testing.T) {
	const header = "timestamp_local,web_req\n"
	const row = "2024-04-06T11:30:00,1\n"
	big := strings.Repeat("7x", 450<<10) // 900 KB: under the line bound, not a number
	tests := []struct {
		name, text string
		want       []string
	}{
		{"4 MB cell over the line bound", header + row + "2024-04-06T11:30:30," + strings.Repeat("9", 4<<20) + "\n",
			[]string{"big.csv:3:", "line is over the 1 MiB limit"}},
		{"900 KB value", header + row + "2024-04-06T11:30:30," + big + "\n",
			[]string{"big.csv:3:", `column "web_req": value "7x7x`, "(921600 bytes) is not a number"}},
		{"900 KB timestamp", header + row + big + ",1\n",
			[]string{"big.csv:3:", `timestamp "7x7x`, "(921600 bytes)"}},
		{"900 KB header", "timestamp_local," + big + "\n" + row,
			[]string{"big.csv:1:", `column 2 "7x7x`, "(921600 bytes) is not <service>_<metric>"}},
		{"900 KB metric name", "timestamp_local,web_" + big + "\n" + row,
			[]string{"big.csv:1:", `unknown metric "7x7x`, "(921600 bytes)"}},
		{"number out of range", header + row + "2024-04-06T11:30:30,1e400\n",
			[]string{"big.csv:3:", `value "1e400" is out of range`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := source.ParseCSV(strings.NewReader(tt.text), "big.csv", source.CSVOptions{})
			if err == nil {
				t.Fatal("ParseCSV accepted it")
			}
			msg := err.Error()
			if len(msg) > maxErrorBytes {
				t.Errorf("error of %d bytes, want at most %d: %.400s", len(msg), maxErrorBytes, msg)
			}
			for _, want := range tt.want {
				if !strings.Contains(msg, want) {
					t.Errorf("error %.400q lacks %q", msg, want)
				}
			}
		})
	}
	_, err := source.ParseCSV(strings.NewReader(tests[0].text), "big.csv", source.CSVOptions{})
	if !errors.Is(err, source.ErrCSVTooLarge) {
		t.Errorf("over the line bound: %v, want ErrCSVTooLarge", err)
	}
}

// TestParseCSVSpanBeyondDuration: rows further apart than a time.Duration
// holds (about 292 years) made time.Sub saturate, so unevenly spaced rows
// looked evenly spaced and the replay cycle overflowed. They are refused.
func TestParseCSVSpanBeyondDuration(t *testing.T) {
	const text = "timestamp_local,web_req\n0001-01-01T00:00:00,1\n5000-01-01T00:00:00,2\n9999-01-01T00:00:00,3\n"
	for _, replay := range []bool{false, true} {
		_, err := source.ParseCSV(strings.NewReader(text), "old.csv", source.CSVOptions{Replay: replay})
		if err == nil || !strings.Contains(err.Error(), "span more than") {
			t.Errorf("replay %v: ParseCSV error %v, want one about the span", replay, err)
		}
	}
}

// TestParseCSVNegativeZero: "-0" is a zero, served as 0, never as -0 (which
// /metrics would print as a negative number).
func TestParseCSVNegativeZero(t *testing.T) {
	const text = "timestamp_local,web_cpu\n2024-04-06T11:30:00,-0\n2024-04-06T11:30:30,-0.0\n"
	c, err := source.ParseCSV(strings.NewReader(text), "zero.csv", source.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start, end := c.Span()
	data, err := c.Fetch(context.Background(), source.Query{Services: []string{"web"}, Features: []source.Feature{source.CPU},
		Start: start, End: end, Step: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := data[source.CPU]["web"]
	if len(got) != 2 {
		t.Fatalf("got %v, want two samples", got)
	}
	for _, s := range got {
		if s.Value != 0 || math.Signbit(s.Value) {
			t.Errorf("sample %v: want +0", s)
		}
	}
}
