package window

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
)

// FuzzSeasonAppend feeds arbitrary lagged samples (any times around the
// lagged range, NaN, ±Inf, huge) to Append: the window's rows must stay as
// they were, every seasonal value be finite within ±MaxAbsInput, a block be
// the lagged window's rows exactly when the history reaches the block's
// first step (a usable sample at most MaxCarry before it, checked here
// sample by sample) and the window's last value otherwise.
func FuzzSeasonAppend(f *testing.F) {
	le := func(pairs ...float64) []byte {
		var b []byte
		for i := 0; i+1 < len(pairs); i += 2 {
			b = binary.LittleEndian.AppendUint64(b, uint64(int64(pairs[i])))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(pairs[i+1]))
		}
		return b
	}
	f.Add(le(0, 1, 300, 2, 330, 3, 600, 4), uint8(3), uint8(2), uint16(6))
	f.Add(le(299, math.NaN(), 301, 5, 302, math.Inf(1), 900, 1e41), uint8(1), uint8(1), uint16(2))
	f.Add(le(0, -math.MaxFloat64), uint8(12), uint8(10), uint16(2880))
	f.Add([]byte{}, uint8(2), uint8(3), uint16(4))
	f.Fuzz(func(t *testing.T, raw []byte, window, horizon uint8, period uint16) {
		if window == 0 || window > 32 || horizon == 0 || horizon > 32 || int(period) <= int(horizon) || int(period) > model.MaxPeriodSteps {
			return // the manifest's validation refuses such a season
		}
		step := 30 * time.Second
		stats := model.Stats{Mean: []float64{10, 10}, Std: []float64{2, 2}}
		m := &model.Manifest{
			Services: []string{"a", "b"}, Features: []source.Feature{source.Requests, source.CPU},
			Window: int(window), Horizon: int(horizon), Step: model.Duration(step),
			Normalization: map[source.Feature]model.Stats{source.Requests: stats, source.CPU: stats},
			Seasonal:      &model.Seasonal{PeriodSteps: int(period), Features: []source.Feature{source.CPU}},
		}
		season, _ := SeasonFor(m)
		end := time.Unix(1_700_000_000, 0).UTC()
		var current []source.Sample
		for k := range int(window) {
			current = append(current, source.Sample{Time: end.Add(-time.Duration(k) * step), Value: float64(k)})
		}
		slices.Reverse(current)
		win, err := Build(SpecFor(m), source.Data{source.CPU: {"a": current, "b": current}}, end)
		if err != nil {
			t.Fatal(err)
		}
		before := slices.Clone(win.Input)

		// Each 16 bytes: seconds from the lagged query's start (sorted, as
		// every source promises) and a value; service a only.
		q := season.Query("ns", end)
		span := int64(q.End.Sub(q.Start)/time.Second) + 120
		var samples []source.Sample
		var last time.Time
		for i := 0; i+16 <= len(raw) && i < 16*256; i += 16 {
			off := int64(binary.LittleEndian.Uint64(raw[i:])%uint64(span)) - 60
			at := q.Start.Add(time.Duration(off) * time.Second)
			if at.Before(last) {
				at = last
			}
			last = at
			samples = append(samples, source.Sample{Time: at, Value: math.Float64frombits(binary.LittleEndian.Uint64(raw[i+8:]))})
		}
		in, err := season.Append(win, source.Data{source.CPU: {"a": samples}})
		if err != nil {
			t.Fatal(err)
		}
		rows := int(window) + int(horizon)
		if len(in.Input) != m.InputRows()*2 {
			t.Fatalf("input has %d values, want %d", len(in.Input), m.InputRows()*2)
		}
		if !slices.Equal(in.Input[:len(before)], before) || !slices.Equal(win.Input, before) {
			t.Fatal("the window's rows changed")
		}
		first := q.End.Add(-time.Duration(rows-1) * step)
		reaches := slices.ContainsFunc(samples, func(s source.Sample) bool {
			return !math.IsNaN(s.Value) && !math.IsInf(s.Value, 0) && !s.Time.After(first) && first.Sub(s.Time) <= DefaultMaxCarry
		})
		if in.Present[0][0] != reaches || in.Present[0][1] {
			t.Fatalf("present %v, want a: %v, b: false", in.Present[0], reaches)
		}
		lastCPU := win.Input[(2*int(window)-1)*2:][:2]
		for r := range rows {
			for n := range 2 {
				v := in.Input[len(before)+r*2+n]
				if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > MaxAbsInput {
					t.Fatalf("row %d service %d = %v", r, n, v)
				}
				want := lastCPU[n]
				if in.Present[0][n] {
					want = in.Lagged.Input[r*2+n]
				}
				if v != want {
					t.Fatalf("row %d service %d = %v, want %v", r, n, v, want)
				}
			}
		}
	})
}

// BenchmarkSeasonAppend: the lagged window of 100 services, two seasonal
// features, window 12 and horizon 10, a day at 30s.
func BenchmarkSeasonAppend(b *testing.B) {
	const nN = 100
	step := 30 * time.Second
	m := &model.Manifest{
		Features: []source.Feature{source.Requests, source.CPU, source.Latency},
		Window:   12, Horizon: 10, Step: model.Duration(step),
		Normalization: map[source.Feature]model.Stats{},
		Seasonal:      &model.Seasonal{PeriodSteps: 2880, Features: []source.Feature{source.Requests, source.CPU}},
	}
	for n := range nN {
		m.Services = append(m.Services, "svc-"+string(rune('a'+n%26))+string(rune('a'+n/26)))
	}
	for _, feat := range m.Features {
		m.Normalization[feat] = model.Stats{Mean: make([]float64, nN), Std: slices.Repeat([]float64{1}, nN)}
	}
	season, _ := SeasonFor(m)
	end := time.Unix(1_700_000_000, 0).UTC()
	series := func(q source.Query) source.Data {
		d := source.Data{}
		for _, feat := range q.Features {
			for _, svc := range q.Services {
				for at := q.Start; !at.After(q.End); at = at.Add(step) {
					d.Add(feat, svc, source.Sample{Time: at, Value: float64(at.Unix() % 97)})
				}
			}
		}
		return d
	}
	spec := SpecFor(m)
	win, err := Build(spec, series(spec.Query("ns", end)), end)
	if err != nil {
		b.Fatal(err)
	}
	lagged := series(season.Query("ns", end))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := season.Append(win, lagged); err != nil {
			b.Fatal(err)
		}
	}
}
