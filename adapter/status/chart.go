package status

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Chart geometry, in SVG user units.
const (
	chartW, chartH         = 720, 220
	padL, padR, padT, padB = 56, 12, 24, 28
)

// chart is one drawn chart: paths and labels, all numbers, so the template
// can insert them as attributes.
type chart struct {
	Title                  string
	Width, Height          int
	Observed, Median, Band string // SVG path data ("" when nothing to draw)
	NowX                   float64
	X0, X1, Y0, Y1         float64 // plot area
	YLabels                []axisLabel
	XLabels                []axisLabel
	Empty                  bool
	Values                 []point // every drawn value, for the table under the chart
}

type axisLabel struct {
	X, Y   float64
	Text   string
	Anchor string // text-anchor: start, middle or end
}

type point struct {
	Time                    string
	Observed, Median, Upper string
}

// drawChart lays out the window's observed values followed by the
// horizon's median and its band up to the upper bound. The x axis is time
// (steps from start), the y axis starts at 0.
func drawChart(title string, start time.Time, step time.Duration, observed, median, upper []float64) chart {
	c := chart{Title: title, Width: chartW, Height: chartH, X0: padL, X1: chartW - padR, Y0: padT, Y1: chartH - padB}
	n := len(observed) + max(len(median), len(upper))
	top := 0.0
	for _, vs := range [][]float64{observed, median, upper} {
		for _, v := range vs {
			if finite(v) {
				top = math.Max(top, v)
			}
		}
	}
	if n < 2 || top <= 0 {
		c.Empty = true
		return c
	}
	top = niceCeil(top * 1.05)
	// Tenths of a unit are finer than any screen needs.
	x := func(k int) float64 { return math.Round((c.X0+(c.X1-c.X0)*float64(k)/float64(n-1))*10) / 10 }
	y := func(v float64) float64 { return math.Round((c.Y1-(c.Y1-c.Y0)*v/top)*10) / 10 }
	c.Observed = polyline(observed, 0, x, y)
	// The forecast continues from the last observed step, so the line and
	// the band join it there.
	h := len(observed)
	if h > 0 && finite(observed[h-1]) && len(median) > 0 && finite(median[0]) {
		last := observed[h-1]
		c.Median = polyline(append([]float64{last}, median...), h-1, x, y)
		c.Band = band(append([]float64{last}, median...), append([]float64{last}, upper...), h-1, x, y)
	} else {
		c.Median = polyline(median, h, x, y)
		c.Band = band(median, upper, h, x, y)
	}
	c.NowX = x(h - 1)
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		c.YLabels = append(c.YLabels, axisLabel{X: c.X0 - 6, Y: y(v) + 4, Text: trimNumber(v)})
	}
	for i, k := range []int{0, h - 1, n - 1} {
		at := start.Add(time.Duration(k) * step)
		anchor := []string{"start", "middle", "end"}[i]
		c.XLabels = append(c.XLabels, axisLabel{X: x(k), Y: c.Y1 + 18, Text: at.UTC().Format("15:04:05"), Anchor: anchor})
	}
	for k := 0; k < n; k++ {
		p := point{Time: start.Add(time.Duration(k) * step).UTC().Format("15:04:05"), Observed: "–", Median: "–", Upper: "–"}
		if k < len(observed) {
			p.Observed = numberOrDash(observed[k])
		} else {
			if k-h < len(median) {
				p.Median = numberOrDash(median[k-h])
			}
			if k-h < len(upper) {
				p.Upper = numberOrDash(upper[k-h])
			}
		}
		c.Values = append(c.Values, p)
	}
	return c
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func numberOrDash(v float64) string {
	if !finite(v) {
		return "–"
	}
	return trimNumber(v)
}

// trimNumber prints v with at most three significant decimals.
func trimNumber(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		s = "0"
	}
	return s
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// polyline is the SVG path through the finite values (offset steps in),
// broken at gaps.
func polyline(vs []float64, offset int, x func(int) float64, y func(float64) float64) string {
	var b strings.Builder
	pen := false
	for i, v := range vs {
		if !finite(v) {
			pen = false
			continue
		}
		cmd := "L"
		if !pen {
			cmd = "M"
		}
		fmt.Fprintf(&b, "%s%.1f %.1f ", cmd, x(offset+i), y(math.Max(v, 0)))
		pen = true
	}
	return strings.TrimSpace(b.String())
}

// band is the closed area between the median and the upper bound over the
// steps where both are finite and the bound is above the median.
func band(median, upper []float64, offset int, x func(int) float64, y func(float64) float64) string {
	var lo, hi []string
	var parts []string
	flush := func() {
		if len(hi) > 1 {
			ring := append(append([]string{}, hi...), reverse(lo)...)
			parts = append(parts, "M"+strings.Join(ring, " L")+" Z")
		}
		lo, hi = nil, nil
	}
	for i := range min(len(median), len(upper)) {
		m, u := median[i], upper[i]
		if !finite(m) || !finite(u) || u < m {
			flush()
			continue
		}
		hi = append(hi, fmt.Sprintf("%.1f %.1f", x(offset+i), y(math.Max(u, 0))))
		lo = append(lo, fmt.Sprintf("%.1f %.1f", x(offset+i), y(math.Max(m, 0))))
	}
	flush()
	return strings.Join(parts, " ")
}

func reverse(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}
