// Package respcache answers repeated GETs of the external metrics API from
// responses encoded once per forecast, in front of the API server's handler
// chain.
//
// The chain (k8s.io/apiserver) re-verifies the client certificate chain,
// runs a dozen filters and encodes the list again on every request, which is
// most of a GET's cost; yet every answer is a function of the request URI,
// the negotiated encoding and the published snapshot, which changes once per
// cycle. So the first GET of a URI per snapshot goes through the whole chain
// and its 200 answer is kept. Later GETs of that URI are authenticated and
// authorised with the chain's own authenticator, request-info resolver and
// authorizer (the certificate verification is remembered per certificate
// chain for a few seconds, as the delegated token and authorisation caches
// already do), then answered with the kept bytes. Anything else — another
// method or path, impersonation, an upgrade, a caller the authenticator or
// authorizer does not plainly allow — goes through the whole chain, which
// gives the usual 401 or 403.
package respcache

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/endpoints/filters"
	"k8s.io/apiserver/pkg/endpoints/request"
)

// Limits of what one snapshot's cache holds: a few URIs per HPA is the
// usual load, so these only bound a caller who asks for many selectors.
const (
	MaxEntries    = 4096
	MaxEntryBytes = 1 << 20
	MaxTotalBytes = 16 << 20
)

// Results of a request, the result label of the requests counter.
const (
	ResultHit  = "hit"  // answered from the cache
	ResultMiss = "miss" // through the chain; its answer is kept if it can be
	// ResultChain: through the chain, and not for the cache (another
	// method or path, or a caller not plainly allowed).
	ResultChain = "chain"
)

// Source is what the answers are computed from.
type Source interface {
	// Version identifies the data answers are computed from now; two
	// calls return == values while the data is unchanged.
	Version() any
	// ValidUntil is when answers computed from version at now may change
	// although version does not (a prediction expiring); zero means never.
	ValidUntil(version any, now time.Time) time.Time
}

// Config is what the handler needs from the API server's configuration.
type Config struct {
	// PathPrefix selects the requests the cache serves, such as
	// "/apis/external.metrics.k8s.io/".
	PathPrefix string
	Source     Source

	Authenticator authenticator.Request
	Authorizer    authorizer.UnconditionalAuthorizer
	RequestInfo   request.RequestInfoResolver
	// Identity is what the authenticator's answer depends on besides the
	// request: the trusted CA bundles and the front proxy's header names.
	Identity IdentityConfig

	// Requests counts requests by result; nil counts nothing.
	Requests *prometheus.CounterVec
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// New returns next behind the cache. Without an authenticator, authorizer,
// request-info resolver or source it returns next unchanged: the cache never
// answers a request it cannot check as the chain would.
func New(next http.Handler, cfg Config) http.Handler {
	if cfg.Authenticator == nil || cfg.Authorizer == nil || cfg.RequestInfo == nil || cfg.Source == nil || cfg.PathPrefix == "" {
		return next
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &handler{next: next, cfg: cfg, users: newUserCache(cfg.Authenticator, cfg.Identity)}
	if cfg.Requests != nil {
		h.hit, h.miss, h.chain = cfg.Requests.WithLabelValues(ResultHit), cfg.Requests.WithLabelValues(ResultMiss), cfg.Requests.WithLabelValues(ResultChain)
	}
	return h
}

type handler struct {
	next  http.Handler
	cfg   Config
	users *userCache
	gen   atomic.Pointer[generation]

	hit, miss, chain prometheus.Counter
}

// generation is one version's answers.
type generation struct {
	version    any
	validUntil time.Time // zero: until the version changes

	mu      sync.RWMutex
	entries map[string]*entry
	bytes   int
}

// entry is one kept answer.
type entry struct {
	header http.Header
	body   []byte
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !cacheable(r, h.cfg.PathPrefix) {
		count(h.chain)
		h.next.ServeHTTP(w, r)
		return
	}
	now := h.cfg.Now()
	gen := h.generation(now)
	key := cacheKey(r)
	if e := gen.get(key); e != nil {
		if h.allowed(r, now) {
			count(h.hit)
			e.write(w)
			return
		}
		count(h.chain)
		h.next.ServeHTTP(w, r)
		return
	}
	count(h.miss)
	rec := &recorder{ResponseWriter: w}
	h.next.ServeHTTP(rec, r)
	if e := rec.entry(); e != nil {
		gen.put(key, e)
	}
}

func count(c prometheus.Counter) {
	if c != nil {
		c.Inc()
	}
}

// cacheable reports whether r is a GET the cache may answer: under the
// prefix, without impersonation or a protocol upgrade, not a watch.
func cacheable(r *http.Request, prefix string) bool {
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, prefix) {
		return false
	}
	if r.Header.Get("Upgrade") != "" || r.URL.Query().Has("watch") {
		return false
	}
	for name := range r.Header {
		if strings.HasPrefix(name, "Impersonate-") {
			return false
		}
	}
	return true
}

// cacheKey is what an answer depends on besides the data: the request
// target and the negotiated representation.
func cacheKey(r *http.Request) string {
	return r.URL.RequestURI() + "\x00" + strings.Join(r.Header.Values("Accept"), ",") + "\x00" + strings.Join(r.Header.Values("Accept-Encoding"), ",")
}

// generation returns the current version's answers, starting a new
// generation when the version changed or its answers expired.
func (h *handler) generation(now time.Time) *generation {
	version := h.cfg.Source.Version()
	g := h.gen.Load()
	if g != nil && g.version == version && (g.validUntil.IsZero() || now.Before(g.validUntil)) {
		return g
	}
	g = &generation{version: version, validUntil: h.cfg.Source.ValidUntil(version, now), entries: map[string]*entry{}}
	h.gen.Store(g)
	return g
}

func (g *generation) get(key string) *entry {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.entries[key]
}

func (g *generation) put(key string, e *entry) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.entries[key]; ok || len(g.entries) >= MaxEntries || g.bytes+len(e.body) > MaxTotalBytes {
		return
	}
	g.entries[key] = e
	g.bytes += len(e.body)
}

// allowed authenticates and authorises r as the chain's authentication and
// authorisation filters would; anything but a plain allow is false.
func (h *handler) allowed(r *http.Request, now time.Time) bool {
	resp, ok := h.users.authenticate(r, now)
	if !ok {
		return false
	}
	info, err := h.cfg.RequestInfo.NewRequestInfo(r)
	if err != nil {
		return false
	}
	ctx := request.WithRequestInfo(request.WithUser(r.Context(), resp.User), info)
	attrs, err := filters.GetAuthorizerAttributes(ctx)
	if err != nil {
		return false
	}
	return authorize(ctx, h.cfg.Authorizer, attrs)
}

func authorize(ctx context.Context, authz authorizer.UnconditionalAuthorizer, attrs authorizer.Attributes) bool {
	decision, _, err := authz.Authorize(ctx, attrs)
	return err == nil && decision == authorizer.DecisionAllow
}

// Headers the chain sets per request, not kept with an answer.
var perRequestHeaders = []string{"Audit-Id", "Date", "Content-Length", "X-Kubernetes-Pf-Flowschema-Uid", "X-Kubernetes-Pf-Prioritylevel-Uid"}

func (e *entry) write(w http.ResponseWriter) {
	h := w.Header()
	for name, values := range e.header {
		h[name] = values
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(e.body)
}

// recorder passes the chain's answer through and keeps a copy of a 200 of
// at most MaxEntryBytes.
type recorder struct {
	http.ResponseWriter
	status   int
	header   http.Header
	body     bytes.Buffer
	tooLarge bool
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
		r.header = r.ResponseWriter.Header().Clone()
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if r.status == http.StatusOK && !r.tooLarge {
		if r.body.Len()+len(p) > MaxEntryBytes {
			r.tooLarge = true
			r.body = bytes.Buffer{}
		} else {
			r.body.Write(p)
		}
	}
	return r.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController and the API server's response
// writer decorators reach the connection's own writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush passes a flush through; a flushed answer is still kept whole.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// entry is the kept answer, or nil when it is not one to keep.
func (r *recorder) entry() *entry {
	if r.status != http.StatusOK || r.tooLarge || r.body.Len() == 0 {
		return nil
	}
	header := r.header
	for _, name := range perRequestHeaders {
		header.Del(name)
	}
	return &entry{header: header, body: bytes.Clone(r.body.Bytes())}
}
