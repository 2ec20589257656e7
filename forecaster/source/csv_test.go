package source_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/internal/testenv"

	"github.com/foresightscale/foresight/forecaster/source"
)

// sharedData returns the path of a file under ../shared/data relative to the
// repository root, skipping the test when the data is not there.
func sharedData(t testing.TB, rel string) string { return testenv.SharedData(t, rel) }

const smallCSV = `step,timestamp_local,front_end_cpu,front_end_req,front_end_res,cart_req,cart_pod
0,2024-04-06T11:30:00,0.5,10,0.1,0,1
1,2024-04-06T11:30:30,0,0,0.2,3,1
2,2024-04-06T11:31:00,,NaN,0,4,2
3,2024-04-06T11:31:30,0.25,12,0.3,5,2
`

func parseSmall(t *testing.T, opts source.CSVOptions) *source.CSV {
	t.Helper()
	c, err := source.ParseCSV(strings.NewReader(smallCSV), "small.csv", opts)
	if err != nil {
		t.Fatalf("ParseCSV: %v", err)
	}
	return c
}

var nan = math.NaN()

func TestParseCSVValues(t *testing.T) {
	c := parseSmall(t, source.CSVOptions{})
	if got, want := c.Services(), []string{"front_end", "cart"}; !slices.Equal(got, want) {
		t.Errorf("Services() = %v, want %v (split on the last underscore, column order)", got, want)
	}
	start, end := c.Span()
	if !start.Equal(time.Date(2024, 4, 6, 11, 30, 0, 0, time.UTC)) || !end.Equal(time.Date(2024, 4, 6, 11, 31, 30, 0, time.UTC)) {
		t.Errorf("Span() = %v, %v; want 11:30:00Z, 11:31:30Z (zone-less times are UTC)", start, end)
	}
	if c.Interval() != 30*time.Second {
		t.Errorf("Interval() = %v, want 30s", c.Interval())
	}
	data, err := c.Fetch(context.Background(), source.Query{
		Services: []string{"front_end", "cart"},
		Features: source.AllFeatures,
		Start:    start, End: end, Step: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	tests := []struct {
		feature source.Feature
		service string
		want    []float64
	}{
		// A 0 CPU is a measurement; an empty cell is missing.
		{source.CPU, "front_end", []float64{0.5, 0, nan, 0.25}},
		// A 0 request rate or latency is missing, like "NaN".
		{source.Requests, "front_end", []float64{10, nan, nan, 12}},
		{source.Latency, "front_end", []float64{0.1, 0.2, nan, 0.3}},
		{source.Requests, "cart", []float64{nan, 3, 4, 5}},
		{source.Replicas, "cart", []float64{1, 1, 2, 2}},
	}
	for _, tt := range tests {
		got := data[tt.feature][tt.service]
		if !sameSeries(got, start, 30*time.Second, tt.want) {
			t.Errorf("%s %s = %v, want %v", tt.feature, tt.service, got, tt.want)
		}
	}
	// Series the file does not have are absent, not empty or zero.
	if _, ok := data[source.Memory]; ok {
		t.Errorf("memory present although the file has no mem column")
	}
	if _, ok := data[source.Replicas]["front_end"]; ok {
		t.Errorf("front_end replicas present although the file has no such column")
	}
}

func TestParseCSVZeroIsMissingOption(t *testing.T) {
	c := parseSmall(t, source.CSVOptions{ZeroIsMissing: []source.Feature{}})
	start, _ := c.Span()
	data, err := c.Fetch(context.Background(), source.Query{
		Services: []string{"front_end"}, Features: []source.Feature{source.Requests},
		Start: start, End: start.Add(30 * time.Second), Step: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := data[source.Requests]["front_end"]; !sameSeries(got, start, 30*time.Second, []float64{10, 0}) {
		t.Errorf("requests = %v, want [10 0] when no feature treats 0 as missing", got)
	}
}

func TestParseCSVErrors(t *testing.T) {
	const header = "step,timestamp_local,web_req\n"
	tests := []struct {
		name string
		text string
		opts source.CSVOptions
		want string
	}{
		{"no timestamp column", "step,web_req\n0,1\n1,2\n", source.CSVOptions{}, `no "timestamp_local" (or "timestamp", "time") column`},
		{"column without metric", "timestamp_local,web\n", source.CSVOptions{}, `test.csv:1: column 2 "web" is not <service>_<metric>`},
		{"unknown metric", "timestamp_local,web_disk\n", source.CSVOptions{}, `unknown metric "disk"`},
		{"duplicate column", "timestamp_local,web_req,web_req\n", source.CSVOptions{}, `test.csv:1: column 3 "web_req" appears twice`},
		{"no value columns", "step,timestamp_local\n0,2024-04-06T11:30:00\n", source.CSVOptions{}, "no <service>_<metric> columns"},
		{"unparsable number", header + "0,2024-04-06T11:30:00,1\n1,2024-04-06T11:30:30,1.2.3\n", source.CSVOptions{}, `test.csv:3: column "web_req": value "1.2.3" is not a number`},
		{"negative", header + "0,2024-04-06T11:30:00,-1\n", source.CSVOptions{}, `test.csv:2: column "web_req": value "-1" is negative`},
		{"infinite", header + "0,2024-04-06T11:30:00,+Inf\n", source.CSVOptions{}, `value "+Inf" is infinite`},
		{"bad timestamp", header + "0,06/04/2024 11:30,1\n", source.CSVOptions{}, `test.csv:2: column "timestamp_local": timestamp "06/04/2024 11:30"`},
		{"time goes back", header + "0,2024-04-06T11:30:30,1\n1,2024-04-06T11:30:00,1\n", source.CSVOptions{}, "test.csv:3: timestamp 2024-04-06T11:30:00Z is not after"},
		{"one row", header + "0,2024-04-06T11:30:00,1\n", source.CSVOptions{}, "need at least two"},
		{"short row", header + "0,2024-04-06T11:30:00\n", source.CSVOptions{}, "test.csv:2: wrong number of fields"},
		{"uneven rows with replay", header + "0,2024-04-06T11:30:00,1\n1,2024-04-06T11:30:30,1\n2,2024-04-06T11:31:30,1\n", source.CSVOptions{Replay: true}, "test.csv:4: rows 1m0s apart, expected 30s"},
		{"bad zero-missing feature", header, source.CSVOptions{ZeroIsMissing: []source.Feature{"disk"}}, `ZeroIsMissing: unknown feature "disk"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := source.ParseCSV(strings.NewReader(tt.text), "test.csv", tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseCSV error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestNewCSVMissingFile(t *testing.T) {
	_, err := source.NewCSV(filepath.Join(t.TempDir(), "nope.csv"), source.CSVOptions{})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope.csv") {
		t.Fatalf("NewCSV error = %v, want a not-exist error naming the file", err)
	}
}

func TestCSVFetchWindows(t *testing.T) {
	// Rows at :00, :30, 1:00, then a missing row (1:30), then 2:00.
	const text = "timestamp_local,web_req\n" +
		"2024-04-06T11:30:00,1\n2024-04-06T11:30:30,2\n2024-04-06T11:31:00,3\n2024-04-06T11:32:00,5\n"
	c, err := source.ParseCSV(strings.NewReader(text), "gap.csv", source.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2024, 4, 6, 11, 30, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return base.Add(d) }
	type point struct {
		at    time.Duration
		value float64
	}
	tests := []struct {
		name       string
		start, end time.Duration
		step       time.Duration
		want       []point
	}{
		{"aligned", 0, 60 * time.Second, 30 * time.Second, []point{{0, 1}, {30 * time.Second, 2}, {60 * time.Second, 3}}},
		// A grid off the rows takes the row covering each time, stamped with the grid time.
		{"misaligned", 10 * time.Second, 70 * time.Second, 30 * time.Second, []point{{10 * time.Second, 1}, {40 * time.Second, 2}, {70 * time.Second, 3}}},
		{"coarser step", 0, 120 * time.Second, 60 * time.Second, []point{{0, 1}, {60 * time.Second, 3}, {120 * time.Second, 5}}},
		// 1:30 falls in the gap: no sample rather than a stale one.
		{"gap", 60 * time.Second, 120 * time.Second, 30 * time.Second, []point{{60 * time.Second, 3}, {120 * time.Second, 5}}},
		{"partly before the file", -60 * time.Second, 0, 30 * time.Second, []point{{0, 1}}},
		// The last row covers one interval after it, no more.
		{"after the file", 120 * time.Second, 180 * time.Second, 30 * time.Second, []point{{120 * time.Second, 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := c.Fetch(context.Background(), source.Query{
				Services: []string{"web", "unknown"}, Features: []source.Feature{source.Requests},
				Start: at(tt.start), End: at(tt.end), Step: tt.step,
			})
			if err != nil {
				t.Fatal(err)
			}
			got := data[source.Requests]["web"]
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i, p := range tt.want {
				if !got[i].Time.Equal(at(p.at)) || got[i].Value != p.value {
					t.Errorf("sample %d = %v, want %v at %v", i, got[i], p.value, at(p.at))
				}
			}
			if _, ok := data[source.Requests]["unknown"]; ok {
				t.Errorf("a service not in the file is present")
			}
		})
	}
	t.Run("entirely outside", func(t *testing.T) {
		data, err := c.Fetch(context.Background(), source.Query{
			Services: []string{"web"}, Features: []source.Feature{source.Requests},
			Start: at(-time.Hour), End: at(-time.Minute), Step: 30 * time.Second,
		})
		if err != nil || len(data) != 0 {
			t.Errorf("Fetch = %v, %v; want no data and no error", data, err)
		}
	})
}

func TestCSVFetchRejects(t *testing.T) {
	c := parseSmall(t, source.CSVOptions{})
	start, end := c.Span()
	valid := source.Query{Services: []string{"cart"}, Features: []source.Feature{source.Requests}, Start: start, End: end, Step: 30 * time.Second}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		modify func(*source.Query)
		want   string
	}{
		{"cancelled", cancelled, func(*source.Query) {}, "context canceled"},
		{"invalid query", context.Background(), func(q *source.Query) { q.Step = 0 }, "step"},
		{"unknown feature", context.Background(), func(q *source.Query) { q.Features = []source.Feature{"disk"} }, `unknown feature "disk"`},
		{"too many points", context.Background(), func(q *source.Query) { q.Step = time.Millisecond }, "points per series"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := valid
			tt.modify(&q)
			_, err := c.Fetch(tt.ctx, q)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Fetch error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCSVReplay(t *testing.T) {
	c := parseSmall(t, source.CSVOptions{Replay: true})
	cycle := 4 * 30 * time.Second // four rows
	tests := []struct {
		name string
		at   time.Time
		want float64 // cart requests; rows: NaN, 3, 4, 5
	}{
		{"epoch is the first row", time.Unix(0, 0), nan},
		{"one interval later", time.Unix(30, 0), 3},
		{"within the last row", time.Unix(0, 0).Add(cycle - time.Second), 5},
		{"next cycle", time.Unix(0, 0).Add(cycle + 30*time.Second), 3},
		{"far future", time.Unix(0, 0).Add(1000*cycle + 60*time.Second), 4},
		{"before the epoch", time.Unix(0, 0).Add(-30 * time.Second), 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := c.Fetch(context.Background(), source.Query{
				Services: []string{"cart"}, Features: []source.Feature{source.Requests},
				Start: tt.at, End: tt.at, Step: 30 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			got := data[source.Requests]["cart"]
			if len(got) != 1 || !got[0].Time.Equal(tt.at) || !sameValue(got[0].Value, tt.want) {
				t.Fatalf("got %v, want one sample of %v at %v (wall-clock time)", got, tt.want, tt.at)
			}
		})
	}
	// Replay never runs out: a live window now has every step.
	now := time.Now()
	data, err := c.Fetch(context.Background(), source.Query{
		Services: []string{"cart"}, Features: []source.Feature{source.Replicas},
		Start: now.Add(-11 * 30 * time.Second), End: now, Step: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(data[source.Replicas]["cart"]); n != 12 {
		t.Errorf("live window has %d samples, want 12", n)
	}
}

func TestCSVBoutique(t *testing.T) {
	path := sharedData(t, "boutique/boutique.csv")
	c, err := source.NewCSV(path, source.CSVOptions{})
	if err != nil {
		t.Fatalf("NewCSV: %v", err)
	}
	wantServices := []string{"adservice", "cartservice", "checkoutservice", "currencyservice", "emailservice",
		"frontend", "paymentservice", "productcatalogservice", "recommendationservice", "shippingservice"}
	if got := c.Services(); !slices.Equal(got, wantServices) {
		t.Errorf("Services() = %v, want %v", got, wantServices)
	}
	start, end := c.Span()
	wantStart := time.Date(2024, 4, 6, 11, 30, 0, 0, time.UTC)
	if !start.Equal(wantStart) || !end.Equal(wantStart.Add(4409*30*time.Second)) {
		t.Errorf("Span() = %v, %v; want 4410 rows from %v", start, end, wantStart)
	}
	data, err := c.Fetch(context.Background(), source.Query{
		Services: wantServices, Features: source.AllFeatures, Start: start, End: end, Step: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	// Values from the file's first row, and its zero counts (150-400 zeros
	// per req/res series in the README counts both together, e.g. adservice
	// 132 req + 148 res).
	if got := data[source.Requests]["frontend"][0].Value; got != 46.800000000000004 {
		t.Errorf("frontend requests at 11:30:00 = %v, want 46.800000000000004", got)
	}
	if got := data[source.Replicas]["frontend"][0].Value; got != 9 {
		t.Errorf("frontend replicas at 11:30:00 = %v, want 9", got)
	}
	countNaN := func(f source.Feature, s string) int {
		n := 0
		for _, sample := range data[f][s] {
			if math.IsNaN(sample.Value) {
				n++
			}
		}
		return n
	}
	for _, tt := range []struct {
		feature source.Feature
		service string
		want    int
	}{
		{source.Requests, "adservice", 132},
		{source.Latency, "adservice", 148},
		{source.CPU, "adservice", 0}, // zeros in cpu are kept
		{source.Requests, "frontend", 0},
	} {
		if got := countNaN(tt.feature, tt.service); got != tt.want {
			t.Errorf("%s %s: %d missing, want %d", tt.feature, tt.service, got, tt.want)
		}
	}
	for _, f := range source.AllFeatures {
		for _, s := range wantServices {
			if n := len(data[f][s]); n != 4410 {
				t.Errorf("%s %s: %d samples, want 4410", f, s, n)
			}
		}
	}
}

// sameSeries checks samples at start, start+step, … against want (NaN equal to NaN).
func sameSeries(got []source.Sample, start time.Time, step time.Duration, want []float64) bool {
	if len(got) != len(want) {
		return false
	}
	for i, v := range want {
		if !got[i].Time.Equal(start.Add(time.Duration(i)*step)) || !sameValue(got[i].Value, v) {
			return false
		}
	}
	return true
}

func TestCSVTimestampFormats(t *testing.T) {
	want := []time.Time{time.Date(2024, 4, 6, 11, 30, 0, 0, time.UTC), time.Date(2024, 4, 6, 11, 31, 0, 0, time.UTC)}
	tests := []struct{ name, header, t0, t1 string }{
		{"zone-less T", "timestamp_local", "2024-04-06T11:30:00", "2024-04-06T11:31:00"},
		{"zone-less space", "timestamp_local", "2024-04-06 11:30:00", "2024-04-06 11:31:00"},
		{"RFC 3339 with zone", "timestamp", "2024-04-06T13:30:00+02:00", "2024-04-06T11:31:00Z"},
		{"Unix seconds", "time", "1712403000", "1712403060.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.header + ",ts-order.v2_req\n" + tc.t0 + ",1\n" + tc.t1 + ",2\n"
			c, err := source.ParseCSV(strings.NewReader(text), "test.csv", source.CSVOptions{})
			if err != nil {
				t.Fatal(err)
			}
			start, end := c.Span()
			if !start.Equal(want[0]) || !end.Equal(want[1]) || c.Interval() != time.Minute {
				t.Errorf("span %v..%v interval %v, want %v..%v every 1m", start, end, c.Interval(), want[0], want[1])
			}
			if got := c.Services(); !slices.Equal(got, []string{"ts-order.v2"}) {
				t.Errorf("services = %v", got)
			}
		})
	}
	for _, bad := range []string{"17124030001234", "-5", "1e9", "0x10", "12:00"} {
		if _, err := source.ParseCSV(strings.NewReader("time,a_req\n"+bad+",1\n"+bad+",2\n"), "test.csv", source.CSVOptions{}); err == nil || !strings.Contains(err.Error(), "Unix seconds") {
			t.Errorf("timestamp %q: error %v, want one listing the accepted formats", bad, err)
		}
	}
}

func TestCSVFetchAllServices(t *testing.T) {
	c, err := source.ParseCSV(strings.NewReader("timestamp,b_req,a_req,a_cpu\n1712403000,1,2,3\n1712403030,1,2,3\n"), "test.csv", source.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start, end := c.Span()
	data, err := c.Fetch(context.Background(), source.Query{AllServices: true, Services: []string{"x"},
		Features: []source.Feature{source.Requests, source.CPU}, Start: start, End: end, Step: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(data[source.Requests]) != 2 || len(data[source.CPU]) != 1 || data[source.CPU]["a"] == nil {
		t.Errorf("data = %v, want requests of a and b, cpu of a", data)
	}
}
