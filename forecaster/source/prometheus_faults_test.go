package source_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/foresightscale/foresight/forecaster/source"
)

// Answers issue 12's fault matrix found to crash or exhaust the process.
func TestPrometheusFetchRefusesHostileAnswers(t *testing.T) {
	longLabel := strings.Repeat("x", 100_000)
	tests := []struct {
		name     string
		handle   func(http.ResponseWriter, *http.Request)
		wantKind source.ErrorKind
		wantText string
	}{
		// A proxy answering 200 with an empty body used to panic in a goroutine
		// (value.Type() on a nil value) and take the whole process down.
		{"empty object", reply(`{}`), source.ErrBadData, "no result"},
		{"success without data", reply(`{"status":"success"}`), source.ErrBadData, "no result"},
		{"null data", reply(`{"status":"success","data":null}`), source.ErrBadData, "no result"},
		{"null", reply(`null`), source.ErrBadData, "no result"},
		{"null series", reply(`{"status":"success","data":{"resultType":"matrix","result":[null]}}`), source.ErrBadData, "null series"},
		{"huge label set", reply(matrixJSON(series{map[string]string{"pod": longLabel}, []float64{1}})), source.ErrBadData, "bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prom := newFakePrometheus(t, tt.handle)
			p, _ := newSource(t, configFor(prom.URL))
			_, err := p.Fetch(context.Background(), testQuery())
			var fe *source.FetchError
			if !errors.As(err, &fe) || fe.Kind != tt.wantKind || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("err = %v; want a %s FetchError containing %q", err, tt.wantKind, tt.wantText)
			}
			if len(err.Error()) > 2000 {
				t.Errorf("error message is %d bytes long; a label set must not be echoed whole", len(err.Error()))
			}
		})
	}
}

// An answer beyond maxResponseBytes is refused before it is decoded, with or
// without a Content-Length, and memory stays bounded while it streams in.
func TestPrometheusFetchRefusesOversizedAnswers(t *testing.T) {
	const limit = 64 << 10
	valid := matrixJSON(series{map[string]string{"service": "frontend"}, []float64{1, 2, 3}})
	// Pad a valid answer with whitespace: only its size is wrong.
	padded := func(n int) string { return valid[:len(valid)-1] + strings.Repeat(" ", n) + "}" }
	tests := []struct {
		name   string
		handle func(http.ResponseWriter, *http.Request)
		ok     bool
	}{
		{"under the limit", reply(padded(limit - len(valid) - 10)), true},
		{"over the limit with Content-Length", reply(padded(limit + 1)), false},
		{"over the limit streamed", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, valid[:len(valid)-1])
			chunk := strings.Repeat(" ", 32<<10)
			// 64 MiB streamed without a length: must stop long before the end.
			for range 2048 {
				if _, err := fmt.Fprint(w, chunk); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
			fmt.Fprint(w, "}")
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prom := newFakePrometheus(t, tt.handle)
			cfg := configFor(prom.URL)
			cfg.MaxResponseBytes = limit
			p, _ := newSource(t, cfg)
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			data, err := p.Fetch(context.Background(), testQuery())
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if tt.ok {
				if err != nil || len(data[source.Requests]["frontend"]) != 3 {
					t.Fatalf("an answer under the limit: %v, %v", data, err)
				}
				return
			}
			var fe *source.FetchError
			if !errors.As(err, &fe) || fe.Kind != source.ErrBadResponse || !strings.Contains(err.Error(), "maxResponseBytes") {
				t.Fatalf("err = %v; want a bad_response naming maxResponseBytes", err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
				t.Errorf("allocated %d MiB reading a refused answer", grew>>20)
			}
		})
	}
}

func TestPrometheusConfigMaxResponseBytes(t *testing.T) {
	for _, tt := range []struct {
		value int64
		ok    bool
	}{{0, true}, {1024, true}, {source.DefaultMaxResponseBytes, true}, {1 << 30, true}, {-1, false}, {10, false}, {1<<30 + 1, false}} {
		cfg := configFor("http://127.0.0.1:9090")
		cfg.MaxResponseBytes = tt.value
		err := cfg.Validate()
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), "maxResponseBytes")) {
			t.Errorf("maxResponseBytes %d: %v, want ok=%v", tt.value, err, tt.ok)
		}
	}
}

// BenchmarkPrometheusFetchLargestAnswer measures what one answer just under
// the default maxResponseBytes costs to decode (B/op): the bound's memory
// worst case per concurrently fetched feature.
func BenchmarkPrometheusFetchLargestAnswer(b *testing.B) {
	var ss []series
	values := make([]float64, 3)
	for i := 0; ; i++ {
		ss = append(ss, series{map[string]string{"service": fmt.Sprintf("service-%06d", i)}, values})
		if i%1000 == 0 && len(matrixJSON(ss...)) > source.DefaultMaxResponseBytes-200_000 {
			break
		}
	}
	body := matrixJSON(ss...)
	b.Logf("answer: %d series, %.1f MiB", len(ss), float64(len(body))/(1<<20))
	prom := httptestServer(b, reply(body))
	cfg := configFor(prom)
	p, err := source.NewPrometheus(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	q := testQuery()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Fetch(context.Background(), q); err != nil {
			b.Fatal(err)
		}
	}
}

func httptestServer(b *testing.B, handle http.HandlerFunc) string {
	srv := httptest.NewServer(handle)
	b.Cleanup(srv.Close)
	return srv.URL
}
