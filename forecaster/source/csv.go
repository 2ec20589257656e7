package source

import (
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
)

// csvMetrics maps the column suffix of the wide CSV format to a feature.
var csvMetrics = map[string]Feature{
	"cpu": CPU,
	"mem": Memory,
	"req": Requests,
	"res": Latency,
	"pod": Replicas,
}

// csvTimeColumn is the timestamp column; its values carry no zone and are read as UTC.
const csvTimeColumn = "timestamp_local"

// csvIgnoredColumns are known columns that carry no feature.
var csvIgnoredColumns = map[string]bool{"step": true}

// csvTimeLayout is the zone-less timestamp format of the recorded data.
const csvTimeLayout = "2006-01-02T15:04:05"

// maxCSVPoints bounds the samples per series one fetch may return (the same
// limit Prometheus applies), so a tiny step cannot exhaust memory.
const maxCSVPoints = 11000

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

// ParseCSV reads a wide-format CSV from r; name identifies it in errors.
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

	reader := csv.NewReader(r)
	reader.ReuseRecord = true
	record, err := reader.Read()
	if err != nil {
		return nil, fmt.Errorf("csv source %s: read header: %w", name, err)
	}
	header := slices.Clone(record) // the reader reuses record for the next line
	c := &CSV{name: name, values: make(map[Feature]map[string][]float64), replay: opts.Replay}

	// columns[i] says where column i goes; timeCol is the timestamp column.
	type column struct {
		feature     Feature
		service     string
		zeroMissing bool
	}
	columns := make([]*column, len(header))
	timeCol := -1
	seen := make(map[string]bool, len(header))
	for i := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
		h := header[i]
		if seen[h] {
			return nil, fmt.Errorf("csv source %s: column %d %q appears twice", name, i+1, h)
		}
		seen[h] = true
		switch {
		case h == csvTimeColumn:
			timeCol = i
			continue
		case csvIgnoredColumns[h]:
			continue
		}
		// Service names may contain underscores: the metric is after the last one.
		cut := strings.LastIndexByte(h, '_')
		if cut <= 0 {
			return nil, fmt.Errorf("csv source %s: column %d %q is not <service>_<metric>", name, i+1, h)
		}
		service, metric := h[:cut], h[cut+1:]
		f, ok := csvMetrics[metric]
		if !ok {
			return nil, fmt.Errorf("csv source %s: column %d %q: unknown metric %q (known: cpu, mem, req, res, pod)", name, i+1, h, metric)
		}
		columns[i] = &column{feature: f, service: service, zeroMissing: slices.Contains(zeroMissing, f)}
		if !slices.Contains(c.services, service) {
			c.services = append(c.services, service)
		}
	}
	if timeCol < 0 {
		return nil, fmt.Errorf("csv source %s: no %q column", name, csvTimeColumn)
	}
	if len(c.services) == 0 {
		return nil, fmt.Errorf("csv source %s: no <service>_<metric> columns", name)
	}

	series := make([][]float64, len(header))
	for line := 2; ; line++ {
		record, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("csv source %s: %w", name, err)
		}
		t, err := parseCSVTime(record[timeCol])
		if err != nil {
			return nil, fmt.Errorf("csv source %s: line %d column %q: %w", name, line, csvTimeColumn, err)
		}
		if n := len(c.times); n > 0 && !t.After(c.times[n-1]) {
			return nil, fmt.Errorf("csv source %s: line %d: timestamp %s is not after the previous row's %s",
				name, line, record[timeCol], c.times[n-1].Format(csvTimeLayout))
		}
		c.times = append(c.times, t)
		for i, col := range columns {
			if col == nil {
				continue
			}
			v, err := parseCSVValue(record[i], col.zeroMissing)
			if err != nil {
				return nil, fmt.Errorf("csv source %s: line %d column %q: %w", name, line, header[i], err)
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

	// The interval is the smallest gap: rows missing from the file only widen
	// some gaps.
	c.interval = c.times[1].Sub(c.times[0])
	for i := 2; i < len(c.times); i++ {
		c.interval = min(c.interval, c.times[i].Sub(c.times[i-1]))
	}
	if c.replay {
		// Replay computes row indices arithmetically: every gap must be one interval.
		for i := 1; i < len(c.times); i++ {
			if d := c.times[i].Sub(c.times[i-1]); d != c.interval {
				return nil, fmt.Errorf("csv source %s: line %d: rows %v apart, expected %v; replay needs evenly spaced rows",
					name, i+2, d, c.interval)
			}
		}
	}
	return c, nil
}

func parseCSVTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(csvTimeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q: want %s (read as UTC) or RFC 3339", s, csvTimeLayout)
	}
	return t, nil
}

// parseCSVValue reads one cell: empty or NaN is missing; so is 0 when zeroMissing.
func parseCSVValue(s string, zeroMissing bool) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "nan") {
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil || math.IsNaN(v):
		return 0, fmt.Errorf("value %q is not a number", s)
	case math.IsInf(v, 0):
		return 0, fmt.Errorf("value %q is infinite", s)
	case v < 0:
		return 0, fmt.Errorf("value %q is negative", s)
	case v == 0 && zeroMissing:
		return math.NaN(), nil
	}
	return v, nil
}

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
// Replay); services not in the file are absent.
func (c *CSV) Fetch(ctx context.Context, q Query) (Data, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("csv fetch: %w", err)
	}
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("csv fetch: %w", err)
	}
	for _, f := range q.Features {
		if _, err := ParseFeature(string(f)); err != nil {
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
	for _, f := range q.Features {
		byService := c.values[f]
		for _, s := range q.Services {
			values, ok := byService[s]
			if !ok {
				continue
			}
			samples := make([]Sample, len(hits))
			for i, h := range hits {
				samples[i] = Sample{Time: h.t, Value: values[h.row]}
			}
			if data[f] == nil {
				data[f] = make(map[string][]Sample, len(q.Services))
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
