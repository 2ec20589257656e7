package source

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"testing"
	"time"
)

// answerTransport answers every request with one status and body, so the
// fuzzer drives the whole client path (HTTP, envelope, matrix, conversion)
// without a network round trip.
type answerTransport struct {
	status int
	body   []byte
}

func (a answerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: a.status, Status: http.StatusText(a.status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": []string{"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(a.body)),
		ContentLength: int64(len(a.body)),
		Request:       req,
	}, nil
}

// FuzzPrometheusAnswer feeds arbitrary answers to Fetch: it must never panic,
// fail only with a classified FetchError of bounded length, and on success
// return only the services asked for with samples that are NaN (missing) or
// finite and non-negative.
func FuzzPrometheusAnswer(f *testing.F) {
	for _, seed := range []string{
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"service":"frontend"},"values":[[1712404800,"1"],[1712404830,"NaN"],[1712404860,"+Inf"]]},{"metric":{"service":"other"},"values":[[1712404800,"-3"]]}]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"service":"cart"},"values":[[1712404800,"1e41"],[1712404830,"-1e25"]]}]}}`,
		`{}`, `null`, `{"status":"success"}`, `{"status":"success","data":null}`,
		`{"status":"success","data":{"resultType":"matrix","result":[null]}}`,
		`{"status":"success","data":{"resultType":"vector","result":[]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[]}]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"service":"frontend"},"histograms":[[1712404800,{"count":"1","sum":"1","buckets":[]}]]}]}}`,
		`{"status":"error","errorType":"timeout","error":"query timed out"}`,
		`<html>bad gateway</html>`,
	} {
		f.Add(200, []byte(seed))
	}
	f.Add(503, []byte(`{"status":"error","errorType":"timeout","error":"query timed out"}`))
	f.Add(502, []byte(`<html>bad gateway</html>`))
	f.Add(422, []byte(`{"status":"error","errorType":"execution","error":"many-to-many"}`))

	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 599 {
			status = 200
		}
		cfg := DefaultPrometheusConfig()
		cfg.URL = "http://127.0.0.1:9090"
		p, err := NewPrometheus(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		p.client.Transport = &limitBodyRoundTripper{limit: 1 << 20, next: answerTransport{status: status, body: body}}
		start := time.Unix(1712404800, 0)
		q := Query{Namespace: "shop", Services: []string{"frontend", "cart"}, Features: []Feature{Requests, Latency},
			Start: start, End: start.Add(time.Minute), Step: 30 * time.Second}
		data, err := p.Fetch(context.Background(), q)
		if err != nil {
			var fe *FetchError
			if !errors.As(err, &fe) {
				t.Fatalf("unclassified error %T: %v", err, err)
			}
			if len(err.Error()) > 4096 {
				t.Fatalf("error of %d bytes: the answer is echoed", len(err.Error()))
			}
			return
		}
		for feat, bySvc := range data {
			for svc, samples := range bySvc {
				if svc != "frontend" && svc != "cart" {
					t.Fatalf("%s: service %q was not asked for", feat, svc)
				}
				for _, s := range samples {
					if !math.IsNaN(s.Value) && (math.IsInf(s.Value, 0) || s.Value < 0) {
						t.Fatalf("%s/%s: sample %v passed through", feat, svc, s.Value)
					}
				}
			}
		}
	})
}
