package source

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// TestBoundedLines checks the line and file bounds with small limits (the
// real ones are megabytes): a line of exactly the limit passes, one byte
// more fails naming the line, and so does a file over its limit.
func TestBoundedLines(t *testing.T) {
	tests := []struct {
		name, text string
		wantLine   int // 0: no error
		wantWhat   string
	}{
		{"within", "0123456789\nabc\n", 0, ""},
		{"line at the limit, no newline", "ab\n0123456789", 0, ""},
		{"long third line", "ab\ncd\n0123456789X\nef\n", 3, "line"},
		{"long last line", "ab\n0123456789X", 2, "line"},
		{"file over", strings.Repeat("0123456\n", 5), 4, "file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte per Read, the worst split for the line counting.
			b := &boundedLines{r: &oneByteReader{s: tt.text}, maxLine: 10, maxTotal: 30, line: 1}
			_, err := io.ReadAll(b)
			var se *csvSizeError
			switch {
			case tt.wantLine == 0 && err != nil:
				t.Fatalf("error %v, want none", err)
			case tt.wantLine == 0:
			case !errors.As(err, &se) || se.line != tt.wantLine || se.what != tt.wantWhat || !errors.Is(err, ErrCSVTooLarge):
				t.Fatalf("error %v (%+v), want a %s error at line %d", err, se, tt.wantWhat, tt.wantLine)
			}
		})
	}
}

type oneByteReader struct{ s string }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.s[0]
	r.s = r.s[1:]
	return 1, nil
}

func TestQuoteCell(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"1.2.3", `"1.2.3"`},
		{strings.Repeat("a", 100), `"` + strings.Repeat("a", 64) + `"… (100 bytes)`},
		{strings.Repeat("é", 40), `"` + strings.Repeat("é", 32) + `"… (80 bytes)`},
	} {
		if got := quoteCell(tt.in); got != tt.want {
			t.Errorf("quoteCell(%.20q…) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
