package window_test

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/window"
	"github.com/foresightscale/foresight/models/dataset"
)

// The seasonal rows the forecast loop serves must be the rows training fed
// (models/dataset): one preprocessing path. These tests build both from the
// same samples.

// A 2-minute step: the 5-minute carry spans two steps, so a short block can
// hold a gap longer than it.
const seasonStep = 2 * time.Minute

var seasonT0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func seasonAt(k int) time.Time { return seasonT0.Add(time.Duration(k) * seasonStep) }

// seasonManifest: window 3, horizon 2, period 6; the seasonal features in
// another order than the window's, so a block cannot come from the wrong
// feature unnoticed.
func seasonManifest() *model.Manifest {
	return &model.Manifest{
		Services: []string{"a", "b"},
		Features: []source.Feature{source.Requests, source.CPU, source.Latency},
		Window:   3, Horizon: 2, Step: model.Duration(seasonStep),
		Normalization: map[source.Feature]model.Stats{
			source.Requests: {Mean: []float64{40, 7}, Std: []float64{8, 2}},
			source.CPU:      {Mean: []float64{0.4, 0.1}, Std: []float64{0.1, 0.05}},
			source.Latency:  {Mean: []float64{0.02, 0.03}, Std: []float64{0.01, 0.01}},
		},
		Seasonal: &model.Seasonal{PeriodSteps: 6, Features: []source.Feature{source.CPU, source.Requests}},
	}
}

func TestSeasonQuery(t *testing.T) {
	end := seasonAt(100)
	tests := []struct {
		name                    string
		window, horizon, period int
		step                    time.Duration
		// The lagged window's first and last steps, in steps before end.
		first, last int
	}{
		// Steps last-period-window+1 .. last-period+horizon.
		{"small", 3, 2, 6, 30 * time.Second, 8, 4},
		{"a day at 30s", 12, 10, 2880, 30 * time.Second, 2891, 2870},
		{"a week at 1m", 60, 15, model.MaxPeriodSteps, time.Minute, model.MaxPeriodSteps + 59, model.MaxPeriodSteps - 15},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := seasonManifest()
			m.Window, m.Horizon, m.Step = tc.window, tc.horizon, model.Duration(tc.step)
			m.Seasonal.PeriodSteps = tc.period
			s, ok := window.SeasonFor(m)
			if !ok {
				t.Fatal("no season for a seasonal manifest")
			}
			q := s.Query("shop", end)
			want := source.Query{
				Namespace: "shop",
				Services:  m.Services,
				Features:  m.Seasonal.Features,
				Start:     end.Add(-time.Duration(tc.first)*tc.step - window.DefaultMaxCarry),
				End:       end.Add(-time.Duration(tc.last) * tc.step),
				Step:      tc.step,
			}
			if q.Namespace != want.Namespace || !slices.Equal(q.Services, want.Services) || !slices.Equal(q.Features, want.Features) ||
				!q.Start.Equal(want.Start) || !q.End.Equal(want.End) || q.Step != want.Step || q.AllServices {
				t.Errorf("query\n got %+v\nwant %+v", q, want)
			}
			if s.Spec.Length != tc.window+tc.horizon {
				t.Errorf("length %d, want window+horizon %d", s.Spec.Length, tc.window+tc.horizon)
			}
		})
	}
	m := seasonManifest()
	m.Seasonal = nil
	if _, ok := window.SeasonFor(m); ok {
		t.Error("a season for a manifest without a seasonal context")
	}
}

// seasonHistory has one sample per step 0..steps-1 for every feature and
// service, each value distinct (feature, service and step show in it).
func seasonHistory(m *model.Manifest, steps int) source.Data {
	d := source.Data{}
	for fi, feat := range m.Features {
		st := m.Normalization[feat]
		for n, svc := range m.Services {
			for k := range steps {
				v := st.Mean[n] + st.Std[n]*(math.Sin(0.7*float64(k)+float64(n))+0.1*float64(fi))
				d.Add(feat, svc, source.Sample{Time: seasonAt(k), Value: v})
			}
		}
	}
	return d
}

// fetch answers a query from recorded data as a source does: the samples in
// [Start, End] of the features and services asked for.
func fetch(data source.Data, q source.Query) source.Data {
	out := source.Data{}
	for _, feat := range q.Features {
		for _, svc := range q.Services {
			for _, s := range data[feat][svc] {
				if !s.Time.Before(q.Start) && !s.Time.After(q.End) {
					out.Add(feat, svc, s)
				}
			}
		}
	}
	return out
}

// edit changes the samples of one series: drop or replace them.
func edit(d source.Data, feat source.Feature, svc string, keep func(k int, s *source.Sample) bool) {
	var out []source.Sample
	for _, s := range d[feat][svc] {
		k := int(s.Time.Sub(seasonT0) / seasonStep)
		if keep(k, &s) {
			out = append(out, s)
		}
	}
	d[feat][svc] = out
}

func TestSeasonAppendMatchesDataset(t *testing.T) {
	const steps = 40
	tests := []struct {
		name string
		last int // the window's last step
		// edit makes gaps in the history; nil keeps it whole.
		edit    func(source.Data)
		present bool // every block has its season
		// absent lists services whose blocks have no season whatever present says.
		absent []string
	}{
		// Period 6, window 3, horizon 2: the lagged block of last 30 is steps 22..26.
		{"one period back", 30, nil, true, nil},
		{"the history starts at the block's first step", 8, nil, true, nil},
		{"gaps in the block: imputed like the window", 30, func(d source.Data) {
			// requests of a: the block's first step carried from the step
			// before it (within the query's reach-back), a NaN sample, a gap
			// that outlasts the carry and is filled flat.
			edit(d, source.Requests, "a", func(k int, s *source.Sample) bool {
				if k == 24 {
					s.Value = math.NaN()
				}
				return k != 22 && k != 25 && k != 26
			})
			// cpu of b: the block's last steps carried.
			edit(d, source.CPU, "b", func(k int, _ *source.Sample) bool { return k < 25 || k > 27 })
		}, true, nil},
		{"the history starts within the block", 7, nil, false, nil},
		{"a gap longer than the carry over the block's first step", 30, func(d source.Data) {
			for feat := range d {
				for svc := range d[feat] {
					edit(d, feat, svc, func(k int, _ *source.Sample) bool { return k < 18 || k > 22 })
				}
			}
		}, false, nil},
		{"a series that starts later than the others", 30, func(d source.Data) {
			for feat := range d {
				edit(d, feat, "b", func(k int, _ *source.Sample) bool { return k >= 24 })
			}
		}, true, []string{"b"}},
		{"no history in the block at all", 3, nil, false, nil},
	}
	m := seasonManifest()
	season, _ := window.SeasonFor(m)
	spec := window.SpecFor(m)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := seasonHistory(m, steps)
			if tc.edit != nil {
				tc.edit(data)
			}
			// Training: the whole history aligned at once.
			d, err := dataset.Build(data, m.Services, m.Features, seasonT0, seasonAt(steps-1), seasonStep)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Normalize(m.Normalization); err != nil {
				t.Fatal(err)
			}
			want := d.SeasonalInput(tc.last, m.Window, m.Horizon, m.Seasonal)

			// Serving: the window's query and the lagged query, each
			// answered from the same history.
			end := seasonAt(tc.last)
			win, err := window.Build(spec, fetch(data, spec.Query("shop", end)), end)
			if err != nil {
				t.Fatal(err)
			}
			got, err := season.Append(win, fetch(data, season.Query("shop", end)))
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Input) != m.InputRows()*len(m.Services) || len(want) != len(got.Input) {
				t.Fatalf("input has %d values, training's %d, want %d", len(got.Input), len(want), m.InputRows()*len(m.Services))
			}
			for i := range want {
				if got.Input[i] != want[i] {
					t.Errorf("input row %d service %d: serving %v, training %v", i/2, i%2, got.Input[i], want[i])
				}
			}
			for f := range got.Present {
				for n, p := range got.Present[f] {
					if want := tc.present && !slices.Contains(tc.absent, m.Services[n]); p != want {
						t.Errorf("present[%s][%s] = %v, want %v", m.Seasonal.Features[f], m.Services[n], p, want)
					}
				}
			}
			if !slices.Equal(got.Input[:len(win.Input)], win.Input) {
				t.Error("the window's own rows changed")
			}
		})
	}
}

// TestSeasonAppendAbsent: without data (a failed fetch), or where a series'
// history does not reach the block's first step, that feature's and
// service's block is the window's last normalised value; the other blocks
// keep their season.
func TestSeasonAppendAbsent(t *testing.T) {
	m := seasonManifest()
	season, _ := window.SeasonFor(m)
	spec := window.SpecFor(m)
	const last = 30 // lagged block: steps 22..26
	data := seasonHistory(m, last+1)
	// cpu of b begins after the block's first step, beyond the carry.
	edit(data, source.CPU, "b", func(k int, _ *source.Sample) bool { return k > 22 })
	// requests of a has a gap over the block's first step longer than the
	// carry (steps 5..22): the lagged range cannot say what it was there.
	edit(data, source.Requests, "a", func(k int, _ *source.Sample) bool { return k < 5 || k > 22 })
	end := seasonAt(last)
	win, err := window.Build(spec, fetch(data, spec.Query("shop", end)), end)
	if err != nil {
		t.Fatal(err)
	}
	lastValue := func(feat source.Feature, n int) float64 {
		fi := win.FeatureIndex(feat)
		return win.Input[(fi*m.Window+m.Window-1)*2+n]
	}
	tests := []struct {
		name    string
		data    source.Data
		present [][]bool // [cpu, requests][a, b]
	}{
		{"fetch failed", nil, [][]bool{{false, false}, {false, false}}},
		{"empty answer", source.Data{}, [][]bool{{false, false}, {false, false}}},
		{"history starts within the block, or a gap over its first step", fetch(data, season.Query("shop", end)), [][]bool{{true, false}, {false, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := season.Append(win, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			rows := m.Window + m.Horizon
			for f, feat := range m.Seasonal.Features {
				for n := range 2 {
					if got.Present[f][n] != tc.present[f][n] {
						t.Errorf("present[%s][%s] = %v, want %v", feat, m.Services[n], got.Present[f][n], tc.present[f][n])
					}
					for r := range rows {
						v := got.Input[len(win.Input)+(f*rows+r)*2+n]
						switch {
						case !tc.present[f][n] && v != lastValue(feat, n):
							t.Errorf("%s/%s row %d = %v, want the window's last value %v", feat, m.Services[n], r, v, lastValue(feat, n))
						case tc.present[f][n] && v != got.Lagged.Input[(f*rows+r)*2+n]:
							t.Errorf("%s/%s row %d = %v, want the lagged window's %v", feat, m.Services[n], r, v, got.Lagged.Input[(f*rows+r)*2+n])
						}
					}
				}
			}
		})
	}
}

func TestSeasonAppendRefuses(t *testing.T) {
	m := seasonManifest()
	season, _ := window.SeasonFor(m)
	spec := window.SpecFor(m)
	spec.Features = []source.Feature{source.Requests} // no cpu in the window
	end := seasonAt(30)
	win, err := window.Build(spec, seasonHistory(m, 31), end)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := season.Append(win, nil); err == nil || err.Error() != "seasonal context: feature cpu is not read by the window" {
		t.Errorf("err = %v", err)
	}
}
