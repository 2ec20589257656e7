package workload

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/foresightscale/foresight/internal/textlimit"
)

// LineError is a problem at one line of a trace file. Its message is
// "file:line: what", the form editors and terminals link to.
type LineError struct {
	Path string
	Line int // 1-based
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err) }

// Unwrap lets errors.Is find the sentinel (ErrSyntax, ErrGap, ...) inside.
func (e *LineError) Unwrap() error { return e.Err }

// format is the layout of a trace file, decided by its first value line.
type format int

const (
	formatUnknown format = iota
	formatPlain          // one number per line
	formatCSV            // timestamp,count per minute
)

func (f format) String() string {
	if f == formatCSV {
		return "timestamp,count CSV"
	}
	return "one-number-per-line"
}

// timestampLayouts are the accepted CSV timestamp forms: the World Cup
// export's and RFC 3339, which most tools write.
var timestampLayouts = []string{"2006-01-02 15:04:05", time.RFC3339}

// Load reads a trace file: either one number per line (requests/s, one per
// second, or one per Options.Step) or `timestamp,count` CSV rows (requests
// per minute; timestamps must be strictly increasing and evenly spaced by
// one minute — a gap or a step back is an error naming the line). The format
// is detected from the first non-blank line; a later line of the other format
// is an error. Blank lines before the first value and after the last are
// ignored; a blank line between values is an error, since skipping it would
// shift every later second.
//
// A per-minute count becomes count/60 req/s held for the 60 seconds of that
// minute rather than linearly interpolated: holding keeps every minute's
// request total exactly as recorded (interpolation moves requests between
// neighbouring minutes and invents a within-minute trend the data does not
// have), and it makes Compress 60 give back exactly the recorded per-minute
// rates. The cost is a small step at each minute boundary, which the
// World Cup trace's minute-to-minute changes keep small.
//
// Errors name the file and line (as *LineError): empty file, non-numeric
// value, negative value, NaN/Inf, mixed formats, unparseable timestamp,
// uneven spacing. A file over MaxFileSize, or a trace that would play longer
// than MaxDuration after Options.Compress and Options.Duration, is refused.
func Load(path string, o Options) (*Trace, error) {
	s, err := o.resolve(false)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load trace: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load trace: %w", err)
	}
	if info.IsDir() {
		return nil, fmt.Errorf("load trace %s: is a directory", path)
	}
	if info.Size() > MaxFileSize {
		return nil, fmt.Errorf("load %s: %w: %d bytes, over the %d MiB limit", path, ErrTooLarge, info.Size(), MaxFileSize>>20)
	}
	values, fm, err := parse(path, f)
	if err != nil {
		return nil, err
	}
	step := s.step.Seconds()
	if fm == formatCSV {
		if o.Step != 0 && o.Step != time.Minute {
			return nil, fmt.Errorf("load %s: %w: Step %v applies to one-number-per-line files; a CSV trace is per minute by its timestamps",
				path, ErrOptions, o.Step)
		}
		step = time.Minute.Seconds()
	}
	t, err := finish(filepath.Base(path), values, step, s)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return t, nil
}

// parse reads every value line of r. Values are rates in requests per second
// (a CSV count is divided by 60 here), each to be held for one step.
func parse(path string, r io.Reader) ([]float64, format, error) {
	// The limit guards against a file that grows after the size check.
	lr := &io.LimitedReader{R: r, N: MaxFileSize + 1}
	sc := bufio.NewScanner(lr)
	var (
		values    []float64
		fm        format
		firstLine int       // the line that set the format
		prev      time.Time // last CSV timestamp
		prevLine  int
		blankLine int // first blank line since the last value, 0 if none
		line      int
	)
	fail := func(err error) ([]float64, format, error) {
		return nil, fm, &LineError{Path: path, Line: line, Err: err}
	}
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			if len(values) > 0 && blankLine == 0 {
				blankLine = line
			}
			continue
		}
		if blankLine != 0 {
			line = blankLine
			return fail(fmt.Errorf("%w: blank line inside the data (every line is one time step)", ErrSyntax))
		}
		lineFormat := formatPlain
		if strings.Contains(text, ",") {
			lineFormat = formatCSV
		}
		if fm == formatUnknown {
			fm, firstLine = lineFormat, line
		} else if lineFormat != fm {
			return fail(fmt.Errorf("%w: a %s line in a %s file (set by line %d)", ErrMixedFormats, lineFormat, fm, firstLine))
		}
		if fm == formatPlain {
			v, err := parseRate(text)
			if err != nil {
				return fail(err)
			}
			values = append(values, v)
			continue
		}
		ts, count, err := parseRow(text)
		if err != nil {
			return fail(err)
		}
		if prevLine != 0 {
			if gap := ts.Sub(prev); gap != time.Minute {
				return fail(fmt.Errorf("%w: %s is %v after line %d's %s, want exactly 1m (strictly increasing, no gaps)",
					ErrSpacing, ts.Format(timestampLayouts[0]), gap, prevLine, prev.Format(timestampLayouts[0])))
			}
		}
		prev, prevLine = ts, line
		values = append(values, count/60)
	}
	if err := sc.Err(); err != nil {
		line++ // the line being read when scanning failed
		if errors.Is(err, bufio.ErrTooLong) {
			return fail(fmt.Errorf("%w: line longer than %d bytes", ErrSyntax, bufio.MaxScanTokenSize))
		}
		return nil, fm, fmt.Errorf("read %s: %w", path, err)
	}
	if lr.N <= 0 {
		return nil, fm, fmt.Errorf("read %s: %w: grew past %d MiB while reading", path, ErrTooLarge, MaxFileSize>>20)
	}
	if len(values) == 0 {
		return nil, fm, fmt.Errorf("load %s: %w: the file is empty", path, ErrEmpty)
	}
	return values, fm, nil
}

// parseRate parses one non-negative, finite rate no larger than MaxRate.
func parseRate(text string) (float64, error) {
	v, err := strconv.ParseFloat(text, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%w: %s is out of range", ErrNotFinite, quoteText(text))
		}
		return 0, fmt.Errorf("%w: %s", ErrSyntax, quoteText(text))
	}
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Errorf("%w: %s", ErrNotFinite, quoteText(text))
	case v < 0:
		return 0, fmt.Errorf("%w: %s (a request rate is >= 0)", ErrNegative, quoteText(text))
	case v > MaxRate:
		return 0, fmt.Errorf("%w: %s is over the %g limit", ErrTooLarge, quoteText(text), float64(MaxRate))
	}
	return v, nil
}

// parseRow parses "timestamp,count".
func parseRow(text string) (time.Time, float64, error) {
	stamp, count, _ := strings.Cut(text, ",")
	if strings.Contains(count, ",") {
		return time.Time{}, 0, fmt.Errorf("%w: %s has more than two fields, want timestamp,count", ErrSyntax, quoteText(text))
	}
	stamp = strings.TrimSpace(stamp)
	var ts time.Time
	var err error
	for _, layout := range timestampLayouts {
		if ts, err = time.Parse(layout, stamp); err == nil {
			break
		}
	}
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("%w: %s, want %q or RFC 3339", ErrTimestamp, quoteText(stamp), timestampLayouts[0])
	}
	v, err := parseRate(strings.TrimSpace(count))
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("count: %w", err)
	}
	return ts, v, nil
}

// maxQuotedText bounds how much of a line an error quotes: a line may be up
// to 64 KiB (bufio.Scanner's limit), and errors end up in logs.
const maxQuotedText = 64

// quoteText quotes s whole when short, else its first maxQuotedText bytes
// (never cut inside a rune) and its length.
func quoteText(s string) string { return textlimit.Quote(s, maxQuotedText) }
