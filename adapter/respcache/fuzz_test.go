package respcache

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// FuzzCache: whatever the request and whoever sends it, after an allowed
// caller has filled the cache for the same target, the answer (status and
// body) equals the chain's own.
func FuzzCache(f *testing.F) {
	f.Add("/apis/external.metrics.k8s.io/v1beta1/namespaces/a/m?labelSelector=service%3Dx", "", "GET", uint8(0), "hpa", false)
	f.Add("/apis/external.metrics.k8s.io/v1beta1/namespaces/a/m", "application/json", "GET", uint8(1), "", true)
	f.Add("/apis/external.metrics.k8s.io/v1beta1/namespaces/a/m", "", "GET", uint8(3), "nobody", false)
	f.Add("/apis/external.metrics.k8s.io/v1beta1", "", "HEAD", uint8(4), "hpa", false)
	f.Add("/apis/external.metrics.k8s.io/../api/v1/secrets", "", "GET", uint8(2), "hpa", false)
	f.Fuzz(func(t *testing.T, target, accept, method string, who uint8, name string, bump bool) {
		u, err := url.ParseRequestURI(target)
		if err != nil || !validMethod(method) {
			return
		}
		w := newWorld()
		certs := []*x509.Certificate{w.cert("hpa", true), w.cert("nobody", true), w.cert("hpa", false), w.proxy}
		h := w.handler(func() time.Time { return time.Unix(1e9, 0) }, nil)
		request := func(method string, who uint8) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Method, r.URL, r.RequestURI = method, u, u.RequestURI()
			if accept != "" {
				r.Header.Set("Accept", accept)
			}
			switch who := int(who) % 6; {
			case who < len(certs):
				r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{certs[who]}}
				if certs[who] == w.proxy && name != "" {
					r.Header.Set("X-Remote-User", name)
				}
			case who == 4 && name != "":
				r.Header.Set("Authorization", "Bearer "+name)
			}
			return r
		}
		h.ServeHTTP(httptest.NewRecorder(), request(http.MethodGet, 0)) // an allowed caller fills the cache
		if bump {
			w.version.Add(1)
		}
		got, want := httptest.NewRecorder(), httptest.NewRecorder()
		h.ServeHTTP(got, request(method, who))
		w.ServeHTTP(want, request(method, who))
		if got.Code != want.Code || got.Body.String() != want.Body.String() {
			t.Fatalf("%s %q by %d (%q): cache answered %d %q, the chain %d %q", method, target, who, name, got.Code, got.Body.String(), want.Code, want.Body.String())
		}
	})
}

func validMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}
