package promtest_test

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/promtest"
)

func TestWriteOpenMetrics(t *testing.T) {
	t0 := time.Date(2024, 4, 6, 11, 30, 0, 0, time.UTC)
	data := source.Data{}
	data.Add(source.Requests, "frontend", source.Sample{Time: t0, Value: 46.800000000000004})
	data.Add(source.Requests, "frontend", source.Sample{Time: t0.Add(30 * time.Second), Value: math.NaN()})
	data.Add(source.Requests, "frontend", source.Sample{Time: t0.Add(60 * time.Second), Value: 1e-7})
	data.Add(source.Requests, "adservice", source.Sample{Time: t0.Add(500 * time.Millisecond), Value: 3})
	data.Add(source.Replicas, `we"ird`, source.Sample{Time: t0, Value: 2})

	var b strings.Builder
	if err := promtest.WriteOpenMetrics(&b, "default", data); err != nil {
		t.Fatal(err)
	}
	want := `# TYPE service:foresight_requests:rate1m gauge
service:foresight_requests:rate1m{namespace="default",service="adservice"} 3 1712403000.5
service:foresight_requests:rate1m{namespace="default",service="frontend"} 46.800000000000004 1712403000
service:foresight_requests:rate1m{namespace="default",service="frontend"} 1e-07 1712403060
# TYPE service:foresight_replicas:sum gauge
service:foresight_replicas:sum{namespace="default",service="we\"ird"} 2 1712403000
# EOF
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteOpenMetricsErrors(t *testing.T) {
	t0 := time.Date(2024, 4, 6, 11, 30, 0, 0, time.UTC)
	tests := []struct {
		name string
		data source.Data
		want string
	}{
		{"unknown feature", source.Data{"disk": {"a": {{Time: t0, Value: 1}}}}, `feature "disk"`},
		{"out of order", source.Data{source.CPU: {"a": {{Time: t0, Value: 1}, {Time: t0, Value: 2}}}}, "not after the previous one"},
		{"infinite", source.Data{source.CPU: {"a": {{Time: t0, Value: math.Inf(1)}}}}, "infinite"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := promtest.WriteOpenMetrics(&strings.Builder{}, "default", tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// fakeTB records whether Binary skipped or failed instead of ending the test.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = true
	f.msg = format
	panic(f)
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = format
	panic(f)
}

func TestBinaryMissing(t *testing.T) {
	tests := []struct {
		env         string
		wantSkipped bool
	}{
		{"", true},
		{"0", true},
		{"false", true},
		{"1", false},
		{"true", false},
		{"yes", false}, // unparsable: required, so a typo cannot hide a missing binary
	}
	for _, tt := range tests {
		t.Run("env="+tt.env, func(t *testing.T) {
			t.Setenv(promtest.EnvRequire, tt.env)
			t.Setenv("PATH", t.TempDir())
			f := &fakeTB{TB: t}
			func() {
				defer func() {
					if r := recover(); r != nil && r != any(f) {
						panic(r)
					}
				}()
				promtest.Binary(f, "prometheus")
			}()
			if f.skipped != tt.wantSkipped || f.failed == tt.wantSkipped {
				t.Errorf("skipped=%v failed=%v, want skipped=%v", f.skipped, f.failed, tt.wantSkipped)
			}
		})
	}
}

func TestStartBackfillAndQuery(t *testing.T) {
	t0 := time.Date(2024, 4, 6, 11, 30, 0, 0, time.UTC)
	data := source.Data{}
	for i := range 20 {
		data.Add(source.CPU, "frontend", source.Sample{Time: t0.Add(time.Duration(i) * 30 * time.Second), Value: float64(i) / 10})
	}
	srv := promtest.Start(t, promtest.Options{Backfill: promtest.WriteOpenMetricsFile(t, "shop", data)})

	at := t0.Add(5 * 30 * time.Second)
	got := srv.Query(t, `service:foresight_cpu_cores:rate1m{namespace="shop",service="frontend"}`, at)
	if len(got) != 1 || got[0] != "0.5" {
		t.Fatalf("query at %v = %v, want one sample of 0.5 from the backfilled history", at, got)
	}
}

func TestPromtoolReportsFailure(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte("groups:\n  - name: x\n    rules:\n      - record: a\n        expr: sum(\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := promtest.Promtool(t, "check", "rules", rules)
	if err == nil {
		t.Fatalf("promtool check rules accepted a broken expression:\n%s", out)
	}
}
