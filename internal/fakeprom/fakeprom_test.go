package fakeprom

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/foresightscale/foresight/forecaster/source"
)

// services are deliberately not the demo model's: the fake knows none.
var services = []string{"alpha", "beta", "gamma"}

// start runs a fake for the test.
func start(t *testing.T) *Server {
	t.Helper()
	s, err := New(services)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func client(t *testing.T, s *Server) v1.API {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: s.URL()})
	if err != nil {
		t.Fatal(err)
	}
	return v1.NewAPI(c)
}

// query is Foresight's default query for a feature.
func query(f source.Feature) string {
	return fmt.Sprintf(`sum by (service) (%s{namespace="default"})`, source.RecordedMetrics[f])
}

// The range Foresight asks for: 22 steps of 30 s ending on a step.
var (
	end  = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	rng  = v1.Range{Start: end.Add(-21 * 30 * time.Second), End: end, Step: 30 * time.Second}
	nPts = 22
)

func set(t *testing.T, s *Server, faults ...Fault) {
	t.Helper()
	if err := s.Set(faults...); err != nil {
		t.Fatal(err)
	}
}

// matrix runs a range query and requires a matrix, keyed by service.
func matrix(t *testing.T, s *Server, f source.Feature) map[string]*model.SampleStream {
	t.Helper()
	v, _, _, err := client(t, s).QueryRange(context.Background(), query(f), rng)
	if err != nil {
		t.Fatalf("query %s: %v", f, err)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		t.Fatalf("query %s: result %T, want a matrix", f, v)
	}
	out := make(map[string]*model.SampleStream, len(m))
	for _, ss := range m {
		name := string(ss.Metric["service"])
		if out[name] != nil {
			t.Fatalf("two series for service %q", name)
		}
		out[name] = ss
	}
	return out
}

func TestHealthyAnswer(t *testing.T) {
	s := start(t)
	features := append(slices.Clone(source.AllFeatures), source.FeedbackFeatures...)
	for _, f := range features {
		t.Run(string(f), func(t *testing.T) {
			m := matrix(t, s, f)
			if len(m) != len(services) {
				t.Fatalf("%d series, want one per service (%d)", len(m), len(services))
			}
			for i, svc := range services {
				ss := m[svc]
				if ss == nil {
					t.Fatalf("no series for %s", svc)
				}
				if len(ss.Values) != nPts {
					t.Fatalf("%s: %d samples, want %d", svc, len(ss.Values), nPts)
				}
				for k, p := range ss.Values {
					wantT := rng.Start.Add(time.Duration(k) * rng.Step)
					if !p.Timestamp.Time().Equal(wantT) {
						t.Fatalf("%s sample %d at %v, want %v", svc, k, p.Timestamp.Time(), wantT)
					}
					v := float64(p.Value)
					if want := HealthyValue(f, i, wantT.UnixMilli()); v != want || math.IsNaN(v) || v < 0 {
						t.Fatalf("%s sample %d = %v, want %v (finite, non-negative)", svc, k, v, want)
					}
				}
			}
		})
	}
	if got := s.Queries(); got != int64(len(features)) {
		t.Errorf("Queries() = %d, want %d", got, len(features))
	}
	if got := s.FeatureQueries(source.Latency); got != 1 {
		t.Errorf("FeatureQueries(latency) = %d, want 1", got)
	}
}

func TestHealthyValuesArePlausible(t *testing.T) {
	for ms := int64(0); ms < 3_600_000; ms += 7_000 {
		for i := range 10 {
			req := HealthyValue(source.Requests, i, ms)
			if req < 25 || req > 75 {
				t.Fatalf("requests %v outside [25,75]", req)
			}
			if cpu := HealthyValue(source.CPU, i, ms); cpu <= 0 || cpu > 1 {
				t.Fatalf("cpu %v", cpu)
			}
		}
	}
}

// TestErrorAnswers checks what Foresight's own client makes of each broken
// answer: exactly the inputs of the fault matrix.
func TestErrorAnswers(t *testing.T) {
	tests := []struct {
		fault Fault
		check func(t *testing.T, v model.Value, err error)
	}{
		{Fault{Kind: ServerError}, wantAPIError(v1.ErrServer, `"errorType":"internal"`)},
		{Fault{Kind: HTMLUnavailable}, wantAPIError(v1.ErrServer, "<html>")},
		{Fault{Kind: Malformed}, wantAPIError(v1.ErrBadResponse, "")},
		// The empty successes decode without error to no value at all: the
		// answer that made fetchFeature call Type() on a nil model.Value.
		{Fault{Kind: EmptyObject}, wantNilValue},
		{Fault{Kind: SuccessOnly}, wantNilValue},
		{Fault{Kind: NullData}, wantNilValue},
		{Fault{Kind: NullBody}, wantNilValue},
		{Fault{Kind: Reset}, func(t *testing.T, _ model.Value, err error) {
			var ue *url.Error
			if !errors.As(err, &ue) {
				t.Errorf("err = %v (%T), want a transport error", err, err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(string(tc.fault.Kind), func(t *testing.T) {
			s := start(t)
			set(t, s, tc.fault)
			v, _, _, err := client(t, s).QueryRange(context.Background(), query(source.Requests), rng)
			tc.check(t, v, err)
			if s.Queries() != 1 {
				t.Errorf("Queries() = %d, want 1", s.Queries())
			}
			s.Healthy()
			if m := matrix(t, s, source.Requests); len(m) != len(services) {
				t.Errorf("after Healthy: %d series", len(m))
			}
		})
	}
}

func wantAPIError(typ v1.ErrorType, detail string) func(*testing.T, model.Value, error) {
	return func(t *testing.T, _ model.Value, err error) {
		t.Helper()
		var apiErr *v1.Error
		if !errors.As(err, &apiErr) || apiErr.Type != typ || !strings.Contains(apiErr.Detail, detail) {
			t.Errorf("err = %#v, want a %s error with detail containing %q", err, typ, detail)
		}
	}
}

func wantNilValue(t *testing.T, v model.Value, err error) {
	t.Helper()
	if v != nil || err != nil {
		t.Errorf("got %v, %v; want no value and no error", v, err)
	}
}

func TestFeatureScopedFault(t *testing.T) {
	s := start(t)
	set(t, s, Fault{Kind: ServerError, Feature: source.Latency})
	if m := matrix(t, s, source.Requests); len(m) != len(services) {
		t.Errorf("requests: %d series, want all", len(m))
	}
	_, _, _, err := client(t, s).QueryRange(context.Background(), query(source.Latency), rng)
	if err == nil {
		t.Error("latency answered despite the fault")
	}
}

func TestSampleFaults(t *testing.T) {
	tests := []struct {
		fault   Fault
		feature source.Feature
		want    func(k int, v float64) bool // for the faulted service's sample k
	}{
		{Fault{Kind: NaN, Service: "beta", Count: 3}, source.Requests, newestKept(3, math.IsNaN)},
		{Fault{Kind: PosInf, Service: "beta", Count: 3}, source.CPU, newestKept(3, func(v float64) bool { return math.IsInf(v, 1) })},
		{Fault{Kind: NegInf, Service: "beta", Count: 2}, source.Memory, newestKept(2, func(v float64) bool { return math.IsInf(v, -1) })},
		{Fault{Kind: Negative, Service: "beta", Count: 1, Value: 5}, source.Requests, newestKept(1, func(v float64) bool { return v == -5 })},
		{Fault{Kind: NaN, Service: "beta"}, source.Replicas, func(_ int, v float64) bool { return math.IsNaN(v) }},
		{Fault{Kind: Value, Service: "beta", Feature: source.Requests, Value: 1e25}, source.Requests, func(_ int, v float64) bool { return v == 1e25 }},
		{Fault{Kind: Value, Service: "beta", Feature: source.Requests, Value: 1e41}, source.Requests, func(_ int, v float64) bool { return v == 1e41 }},
	}
	for _, tc := range tests {
		t.Run(tc.fault.String(), func(t *testing.T) {
			s := start(t)
			set(t, s, tc.fault)
			m := matrix(t, s, tc.feature)
			for i, svc := range services {
				ss := m[svc]
				if ss == nil || len(ss.Values) != nPts {
					t.Fatalf("%s: series %v, want %d samples", svc, ss, nPts)
				}
				for k, p := range ss.Values {
					v := float64(p.Value)
					healthy := HealthyValue(tc.feature, i, p.Timestamp.Time().UnixMilli())
					if svc != "beta" && v != healthy {
						t.Fatalf("%s (not faulted) sample %d = %v, want %v", svc, k, v, healthy)
					}
					if svc == "beta" && !tc.want(k, v) {
						t.Fatalf("beta sample %d = %v", k, v)
					}
				}
			}
		})
	}
}

// newestKept says the count samples before the newest are bad and the rest
// healthy (finite, positive).
func newestKept(count int, bad func(float64) bool) func(int, float64) bool {
	return func(k int, v float64) bool {
		if k >= nPts-1-count && k < nPts-1 {
			return bad(v)
		}
		return !math.IsNaN(v) && !math.IsInf(v, 0) && v > 0
	}
}

func TestPartialIdleStaleFuture(t *testing.T) {
	t.Run("absent", func(t *testing.T) {
		s := start(t)
		set(t, s, Fault{Kind: Absent, Service: "gamma"})
		m := matrix(t, s, source.CPU)
		if m["gamma"] != nil || m["alpha"] == nil || m["beta"] == nil {
			t.Errorf("services %v, want alpha and beta only", keys(m))
		}
	})
	t.Run("idle", func(t *testing.T) {
		s := start(t)
		set(t, s, Fault{Kind: Idle, Service: "alpha"})
		for _, f := range []source.Feature{source.Latency, source.LatencyP99} {
			if m := matrix(t, s, f); m["alpha"] != nil || m["beta"] == nil {
				t.Errorf("%s services %v, want alpha absent", f, keys(m))
			}
		}
		for _, p := range matrix(t, s, source.Requests)["alpha"].Values {
			if p.Value != 0 {
				t.Fatalf("idle requests %v, want 0", p.Value)
			}
		}
		for _, p := range matrix(t, s, source.CPU)["alpha"].Values {
			if p.Value <= 0 || p.Value > 0.1 {
				t.Fatalf("idle cpu %v, want a small positive floor", p.Value)
			}
		}
	})
	t.Run("stale", func(t *testing.T) {
		s := start(t)
		set(t, s, Fault{Kind: Stale, Shift: 8 * time.Minute})
		for _, svc := range services {
			ss := matrix(t, s, source.Requests)[svc]
			if ss == nil {
				t.Fatalf("%s absent", svc)
			}
			last := ss.Values[len(ss.Values)-1].Timestamp.Time()
			if want := end.Add(-8 * time.Minute); !last.Equal(want) {
				t.Errorf("%s: newest sample %v, want %v", svc, last, want)
			}
		}
	})
	t.Run("stale beyond the range", func(t *testing.T) {
		s := start(t)
		set(t, s, Fault{Kind: Stale, Shift: time.Hour})
		if m := matrix(t, s, source.Requests); len(m) != 0 {
			t.Errorf("services %v, want none (no sample in range)", keys(m))
		}
	})
	t.Run("future", func(t *testing.T) {
		s := start(t)
		set(t, s, Fault{Kind: Future, Shift: time.Minute})
		for svc, ss := range matrix(t, s, source.Memory) {
			if first := ss.Values[0].Timestamp.Time(); !first.Equal(end.Add(time.Minute)) {
				t.Errorf("%s: first sample %v, want %v", svc, first, end.Add(time.Minute))
			}
		}
	})
}

func keys(m map[string]*model.SampleStream) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestSlow(t *testing.T) {
	s := start(t)
	set(t, s, Fault{Kind: Slow, Delay: 150 * time.Millisecond})
	began := time.Now()
	if m := matrix(t, s, source.Requests); len(m) != len(services) {
		t.Errorf("slow answer has %d series", len(m))
	}
	if took := time.Since(began); took < 150*time.Millisecond {
		t.Errorf("answered after %v, want at least the delay", took)
	}

	// A client that gives up is not kept waiting, and neither is Close.
	set(t, s, Fault{Kind: Slow, Delay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, _, err := client(t, s).QueryRange(ctx, query(source.Requests), rng)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the deadline", err)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a slow handler whose client had gone")
	}
}

// rawBody GETs a range query and returns the body's length and its first
// and last bytes.
func rawBody(t *testing.T, s *Server, f source.Feature) (int64, string, string) {
	t.Helper()
	form := url.Values{"query": {query(f)}, "start": {fmt.Sprint(rng.Start.Unix())}, "end": {fmt.Sprint(rng.End.Unix())}, "step": {"30s"}}
	resp, err := http.Get(s.URL() + "/api/v1/query_range?" + form.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 100)
	n, _ := io.ReadFull(resp.Body, head)
	tail := &tailWriter{}
	rest, err := io.Copy(tail, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return int64(n) + rest, string(head[:n]), string(tail.last)
}

type tailWriter struct{ last []byte }

func (w *tailWriter) Write(p []byte) (int, error) {
	w.last = append(w.last, p...)
	if len(w.last) > 100 {
		w.last = w.last[len(w.last)-100:]
	}
	return len(p), nil
}

func TestHugeAnswers(t *testing.T) {
	const size = 20 << 20
	t.Run("series", func(t *testing.T) {
		s := start(t)
		set(t, s, Fault{Kind: HugeSeries, Size: size})
		n, head, tail := rawBody(t, s, source.Requests)
		if n < size || n > size+64<<10 || !strings.HasPrefix(head, `{"status":"success"`) || !strings.HasSuffix(tail, `]}]}}`) {
			t.Errorf("body of %d bytes, %q...%q; want about %d bytes of JSON", n, head, tail, size)
		}
		// Small enough to decode: the real services come first, then the extras.
		set(t, s, Fault{Kind: HugeSeries, Size: 1 << 20})
		m := matrix(t, s, source.Requests)
		if len(m) < 100 || m["alpha"] == nil {
			t.Errorf("%d series, want the services and many extras", len(m))
		}
	})
	t.Run("label", func(t *testing.T) {
		s := start(t)
		set(t, s, Fault{Kind: HugeLabel, Size: size})
		n, head, tail := rawBody(t, s, source.Requests)
		if n < size || n > size+1024 || !strings.Contains(head, `"service":"xxx`) || !strings.HasSuffix(tail, `"values":[]}]}}`) {
			t.Errorf("body of %d bytes, %q...%q", n, head, tail)
		}
	})
}

func TestDownAndUp(t *testing.T) {
	s := start(t)
	matrix(t, s, source.Requests) // a keep-alive connection now exists
	s.Down()
	_, _, _, err := client(t, s).QueryRange(context.Background(), query(source.Requests), rng)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("err = %v, want connection refused", err)
	}
	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	if m := matrix(t, s, source.Requests); len(m) != len(services) {
		t.Errorf("after Up: %d series", len(m))
	}
}

func TestBadRequests(t *testing.T) {
	s := start(t)
	tests := []struct {
		name string
		form url.Values
		want string
	}{
		{"unknown metric", url.Values{"query": {"up"}, "start": {"0"}, "end": {"60"}, "step": {"15"}}, "names none of the recorded metrics"},
		{"bad start", url.Values{"query": {query(source.CPU)}, "start": {"soon"}, "end": {"60"}, "step": {"15"}}, `parameter \"start\"`},
		{"end before start", url.Values{"query": {query(source.CPU)}, "start": {"60"}, "end": {"0"}, "step": {"15"}}, "before start"},
		{"too many points", url.Values{"query": {query(source.CPU)}, "start": {"0"}, "end": {"86400"}, "step": {"1"}}, "11,000 points"},
		{"zero step", url.Values{"query": {query(source.CPU)}, "start": {"0"}, "end": {"60"}, "step": {"0"}}, `parameter \"step\"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.PostForm(s.URL()+"/api/v1/query_range", tc.form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"errorType":"bad_data"`) || !strings.Contains(string(body), tc.want) {
				t.Errorf("%d %s; want 400 bad_data naming %q", resp.StatusCode, body, tc.want)
			}
		})
	}
}

func TestSetRefusesFaultsItCannotApply(t *testing.T) {
	s := start(t)
	for _, f := range []Fault{
		{Kind: "nonsense"},
		{Kind: NaN, Service: "frontend"}, // not a service of this fake
		{Kind: Absent},
		{Kind: Slow},
		{Kind: HugeSeries},
		{Kind: Stale},
		{Kind: ServerError, Feature: "bogus"},
	} {
		if err := s.Set(f); err == nil {
			t.Errorf("Set(%v) accepted", f)
		}
	}
	if len(s.Faults()) != 0 {
		t.Errorf("a refused Set changed the faults: %v", s.Faults())
	}
}

// TestConcurrentSwitching flips faults while clients query (run with -race).
func TestConcurrentSwitching(t *testing.T) {
	s := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c := client(t, s)
			for ctx.Err() == nil {
				_, _, _, _ = c.QueryRange(ctx, query(source.Requests), rng)
			}
		})
	}
	faults := []Fault{{Kind: ServerError}, {Kind: NaN, Service: "alpha", Count: 2}, {Kind: Absent, Service: "beta"}, {Kind: NullData}}
	for i := 0; ctx.Err() == nil; i++ {
		set(t, s, faults[i%len(faults)])
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	if s.Queries() == 0 {
		t.Error("no query counted")
	}
}
