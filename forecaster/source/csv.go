package source

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/foresightscale/foresight/internal/textlimit"
)

// csvMetrics maps the column suffix of the wide CSV format to a feature.
var csvMetrics = map[string]Feature{
	"cpu": CPU,
	"mem": Memory,
	"req": Requests,
	"res": Latency,
	"pod": Replicas,
}

// CSVColumn is the wide CSV format's column for a feature of a service,
// "<service>_<metric>", as ParseCSV reads it back.
func CSVColumn(service string, f Feature) (string, error) {
	for metric, g := range csvMetrics {
		if g == f {
			return service + "_" + metric, nil
		}
	}
	return "", fmt.Errorf("feature %q has no column in the wide CSV format", f)
}

// csvTimeColumn is the timestamp column; its values carry no zone and are read as UTC.
const csvTimeColumn = "timestamp_local"

// csvTimeColumns are the accepted names of the timestamp column.
var csvTimeColumns = map[string]bool{csvTimeColumn: true, "timestamp": true, "time": true}

// csvIgnoredColumns are known columns that carry no feature.
var csvIgnoredColumns = map[string]bool{"step": true}

// csvTimeLayout is the zone-less timestamp format of the recorded data;
// csvTimeLayoutSpace the same with a space, as many exporters write it.
const (
	csvTimeLayout      = "2006-01-02T15:04:05"
	csvTimeLayoutSpace = "2006-01-02 15:04:05"
)

// maxCSVPoints bounds the samples per series one fetch may return (the same
// limit Prometheus applies), so a tiny step cannot exhaust memory.
const maxCSVPoints = 11000

// Bounds on what ParseCSV reads, so a wrong or hostile file fails with a
// clear error instead of exhausting memory: the recorded Online Boutique file
// (50 columns, 36 h at 30 s) is 3.4 MB with 700-byte lines. A line of 1 MiB
// holds thousands of columns; 256 MiB is months of that file.
const (
	MaxCSVLineBytes = 1 << 20
	MaxCSVFileBytes = 256 << 20
)

// ErrCSVTooLarge reports a CSV line or file over MaxCSVLineBytes or MaxCSVFileBytes.
var ErrCSVTooLarge = errors.New("too large")

// maxQuotedCell bounds how much of one cell or header an error quotes: a 31
// MB cell once became a 31 MB log line.
const maxQuotedCell = 64

// DefaultZeroIsMissing lists the features whose recorded 0 means "no sample":
// the collector wrote a missing request rate or latency as 0.
var DefaultZeroIsMissing = []Feature{Requests, Latency}

// CSVOptions configures the CSV replay source.
type CSVOptions struct {
	// Replay maps wall-clock time onto the file cyclically so that a live
	// process keeps producing data forever: the file's first row corresponds
	// to every multiple of the file's duration since the Unix epoch. When
	// false, the file's own timestamps are used (backtests, tests).
	Replay bool
	// ZeroIsMissing lists the features where a 0 is stored as missing (NaN);
	// nil means DefaultZeroIsMissing. An empty non-nil slice keeps every 0.
	ZeroIsMissing []Feature
}

// CSV serves a recorded wide-format CSV file (one row per time step, one
// `<service>_<metric>` column per series) from memory.
type CSV struct {
	name     string
	times    []time.Time // strictly increasing, UTC
	interval time.Duration
	services []string // in column order
	// values[feature][service] holds one value per row; NaN is missing.
	values map[Feature]map[string][]float64
	replay bool
}

var _ Source = (*CSV)(nil)

// NewCSV loads the file at path once into memory.
func NewCSV(path string, opts CSVOptions) (*CSV, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("csv source: %w", err)
	}
	defer f.Close()
	return ParseCSV(f, path, opts)
}

// ParseCSV reads a wide-format CSV from r; name identifies it in errors,
// which read "csv source <name>:<line>: ..." and quote at most a short
// prefix of a cell.
func ParseCSV(r io.Reader, name string, opts CSVOptions) (*CSV, error) {
	zeroMissing := opts.ZeroIsMissing
	if zeroMissing == nil {
		zeroMissing = DefaultZeroIsMissing
	}
	for _, f := range zeroMissing {
		if _, err := ParseFeature(string(f)); err != nil {
			return nil, fmt.Errorf("csv source %s: ZeroIsMissing: %w", name, err)
		}
	}

	bounded := &boundedLines{r: r, maxLine: MaxCSVLineBytes, maxTotal: MaxCSVFileBytes, line: 1}
	reader := csv.NewReader(bounded)
	reader.ReuseRecord = true
	record, err := reader.Read()
	if err != nil {
		return nil, readError(name, "read header", err)
	}
	c := &CSV{name: name, values: make(map[Feature]map[string][]float64), replay: opts.Replay}
	header, columns, timeCol, err := c.parseHeader(name, record, zeroMissing)
	if err != nil {
		return nil, err
	}

	series := make([][]float64, len(header))
	for {
		record, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, readError(name, "read", err)
		}
		line, _ := reader.FieldPos(timeCol)
		t, err := parseCSVTime(record[timeCol])
		if err != nil {
			return nil, fmt.Errorf("csv source %s:%d: column %q: %w", name, line, header[timeCol], err)
		}
		if n := len(c.times); n > 0 && !t.After(c.times[n-1]) {
			return nil, fmt.Errorf("csv source %s:%d: timestamp %s is not after the previous row's %s",
				name, line, t.Format(time.RFC3339), c.times[n-1].Format(time.RFC3339))
		}
		if n := len(c.times); c.replay && n > 1 && t.Sub(c.times[n-1]) != c.times[1].Sub(c.times[0]) {
			// Replay computes row indices arithmetically: every gap must be one interval.
			return nil, fmt.Errorf("csv source %s:%d: rows %v apart, expected %v; replay needs evenly spaced rows",
				name, line, t.Sub(c.times[n-1]), c.times[1].Sub(c.times[0]))
		}
		c.times = append(c.times, t)
		for i, col := range columns {
			if col == nil {
				continue
			}
			v, err := parseCSVValue(record[i], col.zeroMissing)
			if err != nil {
				line, _ := reader.FieldPos(i)
				return nil, fmt.Errorf("csv source %s:%d: column %s: %w", name, line, quoteCell(header[i]), err)
			}
			series[i] = append(series[i], v)
		}
	}
	if len(c.times) < 2 {
		return nil, fmt.Errorf("csv source %s: %d data rows; need at least two to know the interval", name, len(c.times))
	}
	for i, col := range columns {
		if col == nil {
			continue
		}
		m, ok := c.values[col.feature]
		if !ok {
			m = make(map[string][]float64)
			c.values[col.feature] = m
		}
		m[col.service] = series[i]
	}
	if err := c.setInterval(); err != nil {
		return nil, fmt.Errorf("csv source %s: %w", name, err)
	}
	return c, nil
}

// csvColumn says where one value column goes.
type csvColumn struct {
	feature     Feature
	service     string
	zeroMissing bool
}

// parseHeader reads the header line (line 1) into the service list and
// returns the trimmed header, each column's destination (nil for the time
// and ignored columns) and the time column's index.
func (c *CSV) parseHeader(name string, record []string, zeroMissing []Feature) ([]string, []*csvColumn, int, error) {
	header := slices.Clone(record) // the reader reuses record for the next line
	columns := make([]*csvColumn, len(header))
	timeCol := -1
	seen := make(map[string]bool, len(header))
	for i := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
		h := header[i]
		if seen[h] {
			return nil, nil, 0, fmt.Errorf("csv source %s:1: column %d %s appears twice", name, i+1, quoteCell(h))
		}
		seen[h] = true
		switch {
		case csvTimeColumns[h] && timeCol < 0:
			timeCol = i
			continue
		case csvIgnoredColumns[h]:
			continue
		}
		// Service names may contain underscores: the metric is after the last one.
		cut := strings.LastIndexByte(h, '_')
		if cut <= 0 {
			return nil, nil, 0, fmt.Errorf("csv source %s:1: column %d %s is not <service>_<metric>", name, i+1, quoteCell(h))
		}
		service, metric := h[:cut], h[cut+1:]
		f, ok := csvMetrics[metric]
		if !ok {
			return nil, nil, 0, fmt.Errorf("csv source %s:1: column %d %s: unknown metric %s (known: cpu, mem, req, res, pod)",
				name, i+1, quoteCell(h), quoteCell(metric))
		}
		columns[i] = &csvColumn{feature: f, service: service, zeroMissing: slices.Contains(zeroMissing, f)}
		if !slices.Contains(c.services, service) {
			c.services = append(c.services, service)
		}
	}
	if timeCol < 0 {
		return nil, nil, 0, fmt.Errorf("csv source %s:1: no %q (or \"timestamp\", \"time\") column", name, csvTimeColumn)
	}
	if len(c.services) == 0 {
		return nil, nil, 0, fmt.Errorf("csv source %s:1: no <service>_<metric> columns", name)
	}
	return header, columns, timeCol, nil
}

// setInterval sets the interval to the smallest gap between rows (rows
// missing from the file only widen some gaps) and checks that the file's
// span, and with Replay its cycle, fit a time.Duration: beyond about 292
// years time.Sub saturates and the replay arithmetic would overflow.
func (c *CSV) setInterval() error {
	first, last := c.times[0], c.times[len(c.times)-1]
	span := last.Sub(first)
	if !first.Add(span).Equal(last) {
		return fmt.Errorf("rows from %s to %s span more than %v", first.Format(time.RFC3339), last.Format(time.RFC3339), time.Duration(math.MaxInt64))
	}
	c.interval = c.times[1].Sub(c.times[0])
	for i := 2; i < len(c.times); i++ {
		c.interval = min(c.interval, c.times[i].Sub(c.times[i-1]))
	}
	// ParseCSV checked that replayed rows are evenly spaced.
	if c.replay && span > math.MaxInt64-c.interval {
		return fmt.Errorf("replay cycle of %d rows × %v is longer than %v", len(c.times), c.interval, time.Duration(math.MaxInt64))
	}
	return nil
}

// readError wraps an error of the CSV reader with the file and line.
func readError(name, what string, err error) error {
	var tooLarge *csvSizeError
	if errors.As(err, &tooLarge) {
		return fmt.Errorf("csv source %s:%d: %w", name, tooLarge.line, tooLarge)
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
		return fmt.Errorf("csv source %s:%d: %w (every row has the header's columns)", name, pe.Line, pe.Err)
	}
	if errors.As(err, &pe) {
		return fmt.Errorf("csv source %s:%d: column %d: %w", name, pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("csv source %s: %s: %w", name, what, err)
}

// csvSizeError is a line or file over its bound; it wraps ErrCSVTooLarge.
type csvSizeError struct {
	line  int
	what  string
	limit int64
}

func (e *csvSizeError) Error() string {
	return fmt.Sprintf("%s is over the %d MiB limit", e.what, e.limit>>20)
}

func (e *csvSizeError) Unwrap() error { return ErrCSVTooLarge }

// boundedLines fails a read once a line (bytes between newlines) exceeds
// maxLine or the input exceeds maxTotal, before encoding/csv would buffer a
// line of any length. line counts newlines, so it is the line being read.
type boundedLines struct {
	r                 io.Reader
	maxLine, maxTotal int64
	lineLen, total    int64
	line              int
}

func (b *boundedLines) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	for rest := p[:n]; ; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			b.lineLen += int64(len(rest))
			break
		}
		if b.lineLen += int64(i); b.lineLen > b.maxLine {
			break
		}
		b.lineLen = 0
		b.line++
		rest = rest[i+1:]
	}
	b.total += int64(n)
	switch {
	case b.lineLen > b.maxLine:
		return 0, &csvSizeError{line: b.line, what: "line", limit: b.maxLine}
	case b.total > b.maxTotal:
		return 0, &csvSizeError{line: b.line, what: "file", limit: b.maxTotal}
	}
	return n, err
}

// parseCSVTime reads the timestamps recorders write: RFC 3339, the zone-less
// "2006-01-02T15:04:05" or "2006-01-02 15:04:05" (read as UTC), or Unix
// seconds (with an optional fraction).
func parseCSVTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range []string{csvTimeLayout, csvTimeLayoutSpace} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if t, ok := parseUnixSeconds(s); ok {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("timestamp %s: want RFC 3339, %s or %q (read as UTC), or Unix seconds",
		quoteCell(s), csvTimeLayout, csvTimeLayoutSpace)
}

// Unix seconds are accepted from 1970 to the year 9999: a bigger number is a
// millisecond timestamp or not a time at all, and is refused, not misread.
const maxUnixSeconds = 253402300799

// parseUnixSeconds reads "1712403000" or "1712403000.5".
func parseUnixSeconds(s string) (time.Time, bool) {
	if s == "" || strings.ContainsAny(s, "eE+-xXpP_") { // plain decimal digits only
		return time.Time{}, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v > maxUnixSeconds {
		return time.Time{}, false
	}
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), true
}

// parseCSVValue reads one cell: empty or NaN is missing; so is 0 when zeroMissing.
func parseCSVValue(s string, zeroMissing bool) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "nan") {
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("value %s is out of range", quoteCell(s))
	case err != nil || math.IsNaN(v):
		return 0, fmt.Errorf("value %s is not a number", quoteCell(s))
	case math.IsInf(v, 0):
		return 0, fmt.Errorf("value %s is infinite", quoteCell(s))
	case v < 0:
		return 0, fmt.Errorf("value %s is negative", quoteCell(s))
	case v == 0 && zeroMissing:
		return math.NaN(), nil
	case v == 0:
		return 0, nil // "-0" would otherwise be published as -0
	}
	return v, nil
}

// quoteCell quotes a cell or header for an error: whole when short, else its
// first maxQuotedCell bytes (never cut inside a rune) and its length.
func quoteCell(s string) string { return textlimit.Quote(s, maxQuotedCell) }

// Name implements Source.
func (c *CSV) Name() string { return "csv" }

// Services returns the services in the file, in column order.
func (c *CSV) Services() []string { return slices.Clone(c.services) }

// Span returns the timestamps of the first and last rows.
func (c *CSV) Span() (start, end time.Time) { return c.times[0], c.times[len(c.times)-1] }

// Interval returns the time between consecutive rows.
func (c *CSV) Interval() time.Duration { return c.interval }

// Fetch returns one sample per feature and service at every step
// Start, Start+Step, … up to End, like a Prometheus range query: the value is
// that of the row covering the time (the last row at or before it, at most one
// interval earlier). Unlike Prometheus it does not carry a missing value
// forward: missing stays NaN. Times outside the file have no samples (without
// Replay); services not in the file are absent, and so are the
// FeedbackFeatures, which the wide format has no column for.
func (c *CSV) Fetch(ctx context.Context, q Query) (Data, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("csv fetch: %w", err)
	}
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("csv fetch: %w", err)
	}
	for _, f := range q.Features {
		// The wide format has no column for the feedback features: asked
		// for, they are absent.
		if _, err := ParseQueryFeature(string(f)); err != nil {
			return nil, fmt.Errorf("csv fetch: %w", err)
		}
	}
	points := q.End.Sub(q.Start)/q.Step + 1
	if points > maxCSVPoints {
		return nil, fmt.Errorf("csv fetch: %v to %v at step %v is %d points per series, more than %d",
			q.Start, q.End, q.Step, points, maxCSVPoints)
	}

	// Resolve each step to a row once; the same rows serve every series.
	type hit struct {
		t   time.Time
		row int
	}
	hits := make([]hit, 0, points)
	for t := q.Start; !t.After(q.End); t = t.Add(q.Step) {
		if row, ok := c.rowAt(t); ok {
			hits = append(hits, hit{t: t.UTC(), row: row})
		}
	}
	data := make(Data, len(q.Features))
	if len(hits) == 0 {
		return data, nil
	}
	services := q.servicesOf(c.services)
	for _, f := range q.Features {
		byService := c.values[f]
		for _, s := range services {
			values, ok := byService[s]
			if !ok {
				continue
			}
			samples := make([]Sample, len(hits))
			for i, h := range hits {
				samples[i] = Sample{Time: h.t, Value: values[h.row]}
			}
			if data[f] == nil {
				data[f] = make(map[string][]Sample, len(services))
			}
			data[f][s] = samples
		}
	}
	return data, nil
}

// rowAt returns the row covering time t.
func (c *CSV) rowAt(t time.Time) (int, bool) {
	if c.replay {
		cycle := time.Duration(len(c.times)) * c.interval
		// The file's first row lines up with multiples of the cycle since the
		// Unix epoch, so every process replays the same row at the same time.
		offset := time.Duration(mod(t.UnixNano(), int64(cycle)))
		return int(offset / c.interval), true
	}
	// The last row at or before t…
	i := sort.Search(len(c.times), func(i int) bool { return c.times[i].After(t) }) - 1
	if i < 0 {
		return 0, false
	}
	// …if it is recent enough to stand for t (the last row covers one interval).
	if t.Sub(c.times[i]) >= c.interval {
		return 0, false
	}
	return i, true
}

// mod is the non-negative remainder, so times before 1970 replay too.
func mod(a, b int64) int64 {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}
