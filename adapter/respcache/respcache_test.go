package respcache

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/endpoints/filters"
	"k8s.io/apiserver/pkg/endpoints/request"
)

const prefix = "/apis/external.metrics.k8s.io/"

// world is a fake API server: certificates name users (by the subject's
// common name, when the certificate is one of the trusted ones), the front
// proxy's certificate lets X-Remote-User name one, and the authorizer
// allows some users. The chain (next) authenticates and authorises with the
// same fakes and answers with the data's version, so a wrong cache answer
// shows as another body.
type world struct {
	trusted  map[*x509.Certificate]bool
	proxy    *x509.Certificate
	allowed  sets.Set[string]
	version  atomic.Int64
	expires  time.Time
	authns   atomic.Int64
	chains   atomic.Int64
	chainErr int // status the chain answers an allowed caller with; 0 is 200
}

func newWorld() *world {
	w := &world{trusted: map[*x509.Certificate]bool{}, allowed: sets.New("hpa")}
	w.proxy = w.cert("front-proxy", true)
	return w
}

func (w *world) cert(cn string, trusted bool) *x509.Certificate {
	c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, Raw: []byte("cert:" + cn + fmt.Sprint(len(w.trusted))), NotAfter: time.Now().Add(time.Hour)}
	w.trusted[c] = trusted
	return c
}

func (w *world) AuthenticateRequest(r *http.Request) (*authenticator.Response, bool, error) {
	w.authns.Add(1)
	if tok := r.Header.Get("Authorization"); tok != "" {
		name, ok := strings.CutPrefix(tok, "Bearer ")
		if !ok {
			return nil, false, fmt.Errorf("bad token")
		}
		return &authenticator.Response{User: &user.DefaultInfo{Name: name}}, true, nil
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || !w.trusted[r.TLS.PeerCertificates[0]] {
		return nil, false, nil
	}
	c := r.TLS.PeerCertificates[0]
	if c == w.proxy {
		if u := r.Header.Get("X-Remote-User"); u != "" {
			return &authenticator.Response{User: &user.DefaultInfo{Name: u, Groups: r.Header.Values("X-Remote-Group")}}, true, nil
		}
		return nil, false, nil
	}
	return &authenticator.Response{User: &user.DefaultInfo{Name: c.Subject.CommonName}}, true, nil
}

func (w *world) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	if a.GetUser() != nil && w.allowed.Has(a.GetUser().GetName()) {
		return authorizer.DecisionAllow, "", nil
	}
	return authorizer.DecisionNoOpinion, "", nil
}

func (w *world) Version() any { return w.version.Load() }

func (w *world) ValidUntil(any, time.Time) time.Time { return w.expires }

// ServeHTTP is the whole chain.
func (w *world) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.chains.Add(1)
	rw.Header().Set("Audit-Id", fmt.Sprint(w.chains.Load()))
	resp, ok, err := w.AuthenticateRequest(r)
	if err != nil || !ok {
		http.Error(rw, "Unauthorized", http.StatusUnauthorized)
		return
	}
	info, err := resolver().NewRequestInfo(r)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	attrs, err := filters.GetAuthorizerAttributes(request.WithRequestInfo(request.WithUser(r.Context(), resp.User), info))
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	if d, _, _ := w.Authorize(r.Context(), attrs); d != authorizer.DecisionAllow {
		http.Error(rw, "Forbidden", http.StatusForbidden)
		return
	}
	if w.chainErr != 0 {
		http.Error(rw, "boom", w.chainErr)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Get("huge") != "" {
		_, _ = rw.Write([]byte(strings.Repeat("x", MaxEntryBytes+1)))
		return
	}
	fmt.Fprintf(rw, `{"uri":%q,"accept":%q,"version":%d}`, r.URL.RequestURI(), r.Header.Get("Accept"), w.version.Load())
}

func resolver() *request.RequestInfoFactory {
	return &request.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")}
}

func (w *world) handler(now func() time.Time, counter *prometheus.CounterVec) http.Handler {
	return New(w, Config{PathPrefix: prefix, Source: w, Authenticator: w, Authorizer: w, RequestInfo: resolver(),
		Identity: IdentityConfig{CABundles: func() []byte { return []byte("ca") }}, Requests: counter, Now: now})
}

type call struct {
	method, uri string
	cert        *x509.Certificate
	header      map[string]string
}

func (c call) do(h http.Handler) *httptest.ResponseRecorder {
	method := c.method
	if method == "" {
		method = http.MethodGet
	}
	r := httptest.NewRequest(method, c.uri, nil)
	if c.cert != nil {
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.cert}}
	}
	for k, v := range c.header {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func newCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total"}, []string{"result"})
}

// TestCacheAnswersOnlyWhatTheChainWould: every answer equals the chain's;
// the chain runs once per URI and version for allowed callers, and on
// every request of anyone else.
func TestCacheAnswersOnlyWhatTheChainWould(t *testing.T) {
	w := newWorld()
	hpa, stranger, forged := w.cert("hpa", true), w.cert("nobody", true), w.cert("hpa", false)
	now := time.Now()
	counter := newCounter()
	h := w.handler(func() time.Time { return now }, counter)
	uri := prefix + "v1beta1/namespaces/shop/foresight_predicted_replicas?labelSelector=service%3Dcart"

	steps := []struct {
		name       string
		call       call
		change     func()
		wantStatus int
		wantChain  bool
	}{
		{name: "first GET goes through the chain", call: call{uri: uri, cert: hpa}, wantStatus: 200, wantChain: true},
		{name: "second GET is a hit", call: call{uri: uri, cert: hpa}, wantStatus: 200},
		{name: "a caller the authorizer does not allow", call: call{uri: uri, cert: stranger}, wantStatus: 403, wantChain: true},
		{name: "no certificate", call: call{uri: uri}, wantStatus: 401, wantChain: true},
		{name: "an untrusted certificate with an allowed name", call: call{uri: uri, cert: forged}, wantStatus: 401, wantChain: true},
		{name: "a bearer token of an allowed user", call: call{uri: uri, header: map[string]string{"Authorization": "Bearer hpa"}}, wantStatus: 200},
		{name: "a bearer token of another", call: call{uri: uri, header: map[string]string{"Authorization": "Bearer nobody"}}, wantStatus: 403, wantChain: true},
		{name: "front proxy naming an allowed user", call: call{uri: uri, cert: w.proxy, header: map[string]string{"X-Remote-User": "hpa"}}, wantStatus: 200},
		{name: "front proxy naming another user", call: call{uri: uri, cert: w.proxy, header: map[string]string{"X-Remote-User": "nobody"}}, wantStatus: 403, wantChain: true},
		{name: "front proxy naming nobody", call: call{uri: uri, cert: w.proxy}, wantStatus: 401, wantChain: true},
		{name: "impersonation", call: call{uri: uri, cert: hpa, header: map[string]string{"Impersonate-User": "x"}}, wantStatus: 200, wantChain: true},
		{name: "another Accept is another answer", call: call{uri: uri, cert: hpa, header: map[string]string{"Accept": "application/yaml"}}, wantStatus: 200, wantChain: true},
		{name: "another selector is another answer", call: call{uri: uri + "x", cert: hpa}, wantStatus: 200, wantChain: true},
		{name: "POST", call: call{method: http.MethodPost, uri: uri, cert: hpa}, wantStatus: 200, wantChain: true},
		{name: "watch", call: call{uri: uri + "&watch=true", cert: hpa}, wantStatus: 200, wantChain: true},
		{name: "another API", call: call{uri: "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/services/cart/x", cert: hpa}, wantStatus: 200, wantChain: true},
		{name: "a new snapshot", change: func() { w.version.Add(1) }, call: call{uri: uri, cert: hpa}, wantStatus: 200, wantChain: true},
		{name: "then a hit again", call: call{uri: uri, cert: hpa}, wantStatus: 200},
		{name: "a prediction expiring", change: func() { w.expires = now.Add(time.Second); w.version.Add(1) }, call: call{uri: uri, cert: hpa}, wantStatus: 200, wantChain: true},
		{name: "before it expires", call: call{uri: uri, cert: hpa}, wantStatus: 200},
		{name: "once it has expired", change: func() { now = now.Add(time.Second) }, call: call{uri: uri, cert: hpa}, wantStatus: 200, wantChain: true},
		{name: "an error is not kept", change: func() { w.version.Add(1); w.chainErr = 500 }, call: call{uri: uri, cert: hpa}, wantStatus: 500, wantChain: true},
		{name: "nor repeated", change: func() { w.chainErr = 0 }, call: call{uri: uri, cert: hpa}, wantStatus: 200, wantChain: true},
		{name: "an answer over MaxEntryBytes is not kept", call: call{uri: uri + "&huge=1", cert: hpa}, wantStatus: 200, wantChain: true},
		{name: "nor served from the cache", call: call{uri: uri + "&huge=1", cert: hpa}, wantStatus: 200, wantChain: true},
	}
	for _, s := range steps {
		if s.change != nil {
			s.change()
		}
		before := w.chains.Load()
		got := s.call.do(h)
		want := s.call.do(w) // the chain alone
		if got.Code != s.wantStatus || got.Code != want.Code {
			t.Errorf("%s: status %d (the chain alone: %d), want %d", s.name, got.Code, want.Code, s.wantStatus)
		}
		if got.Body.String() != want.Body.String() || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
			t.Errorf("%s: answered %q (%s), the chain alone %q (%s)", s.name, got.Body.String(), got.Header().Get("Content-Type"), want.Body.String(), want.Header().Get("Content-Type"))
		}
		if ran := w.chains.Load()-before > 1; ran != s.wantChain {
			t.Errorf("%s: the chain ran %v, want %v", s.name, ran, s.wantChain)
		}
		if !s.wantChain && got.Header().Get("Audit-Id") != "" {
			t.Errorf("%s: a hit repeated the chain's per-request Audit-Id %q", s.name, got.Header().Get("Audit-Id"))
		}
	}
	if hits := testutil.ToFloat64(counter.WithLabelValues(ResultHit)); hits != 5 {
		t.Errorf("hits counted: %v, want 5", hits)
	}
}

// TestAuthenticationRemembered: one certificate chain with the same identity
// headers is authenticated once per UserTTL, and again when the trusted CA
// bundles change or the certificate expires sooner.
func TestAuthenticationRemembered(t *testing.T) {
	w := newWorld()
	hpa := w.cert("hpa", true)
	bundle := []byte("ca-1")
	now := time.Now()
	users := newUserCache(w, IdentityConfig{CABundles: func() []byte { return bundle }})
	authn := func(c call) (string, int64) {
		t.Helper()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if c.cert != nil {
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.cert}}
		}
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		before := w.authns.Load()
		resp, ok := users.authenticate(r, now)
		name := ""
		if ok {
			name = resp.User.GetName()
		}
		return name, w.authns.Load() - before
	}
	check := func(what string, c call, wantUser string, wantAsked int64) {
		t.Helper()
		if got, asked := authn(c); got != wantUser || asked != wantAsked {
			t.Errorf("%s: user %q, authenticator asked %d time(s); want %q, %d", what, got, asked, wantUser, wantAsked)
		}
	}
	check("first", call{cert: hpa}, "hpa", 1)
	check("again", call{cert: hpa}, "hpa", 0)
	check("front proxy as hpa", call{cert: w.proxy, header: map[string]string{"X-Remote-User": "hpa"}}, "hpa", 1)
	check("front proxy as another", call{cert: w.proxy, header: map[string]string{"X-Remote-User": "other"}}, "other", 1)
	check("front proxy as another, again", call{cert: w.proxy, header: map[string]string{"X-Remote-User": "other"}}, "other", 0)
	check("front proxy with a group added", call{cert: w.proxy, header: map[string]string{"X-Remote-User": "other", "X-Remote-Group": "g"}}, "other", 1)
	check("a header no authenticator reads", call{cert: hpa, header: map[string]string{"User-Agent": "x"}}, "hpa", 0)
	check("a bearer token is never remembered", call{cert: hpa, header: map[string]string{"Authorization": "Bearer hpa"}}, "hpa", 1)
	check("nor is a failure", call{cert: w.cert("x", false)}, "", 1)
	now = now.Add(UserTTL)
	check("after UserTTL", call{cert: hpa}, "hpa", 1)
	bundle = []byte("ca-2")
	check("after the CA bundles changed", call{cert: hpa}, "hpa", 1)
	short := w.cert("short", true)
	short.NotAfter = now.Add(time.Second)
	check("short-lived", call{cert: short}, "short", 1)
	now = now.Add(time.Second)
	check("short-lived, expired", call{cert: short}, "short", 1)
}

// TestNewWithoutWhatItNeeds serves through the chain alone.
func TestNewWithoutWhatItNeeds(t *testing.T) {
	w := newWorld()
	for _, cfg := range []Config{
		{PathPrefix: prefix, Source: w, Authorizer: w, RequestInfo: resolver()},
		{PathPrefix: prefix, Source: w, Authenticator: w, RequestInfo: resolver()},
		{PathPrefix: prefix, Source: w, Authenticator: w, Authorizer: w},
		{PathPrefix: prefix, Authenticator: w, Authorizer: w, RequestInfo: resolver()},
		{Source: w, Authenticator: w, Authorizer: w, RequestInfo: resolver()},
	} {
		if h := New(w, cfg); h != http.Handler(w) {
			t.Errorf("New(%+v) wrapped the chain", cfg)
		}
	}
}

// TestUsersBounded: a caller cycling through many certificates cannot grow
// the remembered authentications past maxUsers.
func TestUsersBounded(t *testing.T) {
	w := newWorld()
	users := newUserCache(w, IdentityConfig{})
	for i := range 3 * maxUsers {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{w.cert(fmt.Sprint("u", i), true)}}
		users.authenticate(r, time.Now())
		if len(users.users) > maxUsers {
			t.Fatalf("%d remembered authentications, bound %d", len(users.users), maxUsers)
		}
	}
}

// TestEntriesBounded: many distinct URIs stop being kept at MaxEntries.
func TestEntriesBounded(t *testing.T) {
	w := newWorld()
	hpa := w.cert("hpa", true)
	h := w.handler(nil, nil).(*handler)
	for i := range MaxEntries + 10 {
		call{uri: fmt.Sprintf("%sv1beta1/namespaces/a/m?labelSelector=s%%3D%d", prefix, i), cert: hpa}.do(h)
	}
	if n := len(h.gen.Load().entries); n != MaxEntries {
		t.Fatalf("%d entries kept, want the bound %d", n, MaxEntries)
	}
}
