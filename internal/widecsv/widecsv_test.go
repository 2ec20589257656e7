package widecsv

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
)

func TestWriteRoundTripsThroughTheCSVSource(t *testing.T) {
	t0 := time.Date(2024, 4, 6, 12, 0, 0, 0, time.UTC)
	step := time.Minute
	data := source.Data{}
	for i := range 5 {
		at := t0.Add(time.Duration(i) * step)
		data.Add(source.Requests, "ts-order.v2", source.Sample{Time: at, Value: float64(i + 1)})
		cpu := 0.5
		if i == 2 {
			cpu = math.NaN()
		}
		data.Add(source.CPU, "api-gw", source.Sample{Time: at, Value: cpu})
	}
	var buf bytes.Buffer
	if err := Write(&buf, data, t0, t0.Add(4*step), step); err != nil {
		t.Fatal(err)
	}
	c, err := source.ParseCSV(&buf, "written.csv", source.CSVOptions{})
	if err != nil {
		t.Fatalf("the csv source cannot read what Write wrote: %v\n%s", err, buf.String())
	}
	if c.Interval() != step {
		t.Errorf("interval %v, want %v", c.Interval(), step)
	}
	got, err := c.Fetch(context.Background(), source.Query{AllServices: true, Features: []source.Feature{source.Requests, source.CPU},
		Start: t0, End: t0.Add(4 * step), Step: step})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range got[source.Requests]["ts-order.v2"] {
		if s.Value != float64(i+1) {
			t.Errorf("requests[%d] = %v, want %d", i, s.Value, i+1)
		}
	}
	if v := got[source.CPU]["api-gw"][2].Value; !math.IsNaN(v) {
		t.Errorf("missing cpu sample read back as %v, want NaN", v)
	}
	if err := Write(&buf, data, t0, t0.Add(-step), step); err == nil {
		t.Error("an empty range was accepted")
	}
}
