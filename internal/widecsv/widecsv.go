// Package widecsv writes metrics in the wide CSV format the csv source reads
// (`step,timestamp_local,<service>_<metric>`), so tests and benchmarks can
// make histories of any application, with any services, step and gaps.
package widecsv

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
)

// Write writes one row per step from start to end (inclusive) and one
// column per series in data (services sorted, features in
// source.AllFeatures order). A missing sample (NaN, or no sample at that
// time) is an empty cell. Timestamps are zone-less UTC, as recorded.
func Write(w io.Writer, data source.Data, start, end time.Time, step time.Duration) error {
	if step <= 0 || end.Before(start) {
		return fmt.Errorf("widecsv: range %v..%v at step %v is empty", start, end, step)
	}
	type column struct {
		header string
		values map[int64]float64 // by Unix nanoseconds
	}
	var cols []column
	services := map[string]bool{}
	for _, byService := range data {
		for s := range byService {
			services[s] = true
		}
	}
	names := make([]string, 0, len(services))
	for s := range services {
		names = append(names, s)
	}
	slices.Sort(names)
	for _, s := range names {
		for _, f := range source.AllFeatures {
			samples, ok := data[f][s]
			if !ok {
				continue
			}
			header, err := source.CSVColumn(s, f)
			if err != nil {
				return fmt.Errorf("widecsv: %w", err)
			}
			c := column{header: header, values: make(map[int64]float64, len(samples))}
			for _, sm := range samples {
				c.values[sm.Time.UnixNano()] = sm.Value
			}
			cols = append(cols, c)
		}
	}
	bw := bufio.NewWriter(w)
	bw.WriteString("step,timestamp_local")
	for _, c := range cols {
		bw.WriteString("," + c.header)
	}
	bw.WriteString("\n")
	i := 0
	for t := start; !t.After(end); t = t.Add(step) {
		fmt.Fprintf(bw, "%d,%s", i, t.UTC().Format("2006-01-02T15:04:05"))
		for _, c := range cols {
			bw.WriteString(",")
			if v, ok := c.values[t.UnixNano()]; ok && !math.IsNaN(v) {
				bw.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
			}
		}
		bw.WriteString("\n")
		i++
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("widecsv: %w", err)
	}
	return nil
}
