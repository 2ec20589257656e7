package respcache

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
)

// UserTTL is how long an authentication by client certificate is
// remembered: the delegated token and authorisation caches keep their
// answers 10 s too, so the cache adds no staleness of a new kind.
const UserTTL = 10 * time.Second

// maxUsers bounds the remembered authentications; the cache starts over
// when it is full (callers are a handful of controllers and the front
// proxy's users).
const maxUsers = 1024

// Standard front-proxy headers the chain's authentication filter reads
// besides the configured ones.
var (
	standardIdentityHeaders  = []string{"X-Remote-User", "X-Remote-Uid", "X-Remote-Group"}
	standardIdentityPrefixes = []string{"X-Remote-Extra-"}
)

// IdentityConfig is what an authentication depends on besides the
// request's certificates and headers.
type IdentityConfig struct {
	// CABundles returns the trusted client and front-proxy CA bundles;
	// when they change every remembered authentication is dropped. Nil
	// means none can change.
	CABundles func() []byte
	// Header names (exact) and prefixes the front-proxy authenticator
	// reads, beyond the standard X-Remote-* ones. Nil means none.
	Headers, HeaderPrefixes headerrequest.StringSliceProvider
}

// userCache remembers, per certificate chain and identity headers, whom
// the authenticator said a request came from.
type userCache struct {
	auth     authenticator.Request
	identity IdentityConfig

	mu      sync.Mutex
	bundles []byte
	users   map[[sha256.Size]byte]cachedUser
}

type cachedUser struct {
	resp    *authenticator.Response
	expires time.Time
}

func newUserCache(auth authenticator.Request, identity IdentityConfig) *userCache {
	return &userCache{auth: auth, identity: identity, users: map[[sha256.Size]byte]cachedUser{}}
}

// authenticate returns whom r comes from, asking the authenticator unless
// the same certificate chain with the same identity headers was
// authenticated less than UserTTL ago. A request with a bearer token (its
// own cache is the token authenticator's) or without a client certificate
// always asks.
func (c *userCache) authenticate(r *http.Request, now time.Time) (*authenticator.Response, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || r.Header.Get("Authorization") != "" || r.Header.Get("Sec-Websocket-Protocol") != "" {
		resp, ok, err := c.auth.AuthenticateRequest(r)
		return resp, ok && err == nil && resp != nil
	}
	key := c.key(r)
	c.mu.Lock()
	c.dropIfCAChanged()
	u, found := c.users[key]
	c.mu.Unlock()
	if found && now.Before(u.expires) {
		return u.resp, true
	}
	resp, ok, err := c.auth.AuthenticateRequest(r)
	if !ok || err != nil || resp == nil {
		return nil, false
	}
	expires := now.Add(UserTTL)
	for _, cert := range r.TLS.PeerCertificates {
		if cert.NotAfter.Before(expires) {
			expires = cert.NotAfter
		}
	}
	c.mu.Lock()
	if len(c.users) >= maxUsers {
		clear(c.users)
	}
	c.users[key] = cachedUser{resp: resp, expires: expires}
	c.mu.Unlock()
	return resp, true
}

// dropIfCAChanged forgets every authentication when the trusted bundles
// changed. Called with mu held.
func (c *userCache) dropIfCAChanged() {
	if c.identity.CABundles == nil {
		return
	}
	if b := c.identity.CABundles(); !bytes.Equal(b, c.bundles) {
		c.bundles = bytes.Clone(b)
		clear(c.users)
	}
}

// key hashes everything the authenticators read from r: the presented
// certificate chain and the identity headers, names and values.
func (c *userCache) key(r *http.Request) [sha256.Size]byte {
	h := sha256.New()
	for _, cert := range r.TLS.PeerCertificates {
		writeField(h, cert.Raw)
	}
	names := slices.Clone(standardIdentityHeaders)
	prefixes := slices.Clone(standardIdentityPrefixes)
	if c.identity.Headers != nil {
		names = append(names, c.identity.Headers.Value()...)
	}
	if c.identity.HeaderPrefixes != nil {
		prefixes = append(prefixes, c.identity.HeaderPrefixes.Value()...)
	}
	var read []string
	for name := range r.Header {
		if identityHeader(name, names, prefixes) {
			read = append(read, name)
		}
	}
	slices.Sort(read)
	for _, name := range read {
		writeField(h, []byte(name))
		for _, v := range r.Header[name] {
			writeField(h, []byte(v))
		}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

func identityHeader(name string, names, prefixes []string) bool {
	for _, n := range names {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	for _, p := range prefixes {
		if len(name) >= len(p) && strings.EqualFold(name[:len(p)], p) {
			return true
		}
	}
	return false
}

// writeField writes b length-prefixed, so that fields cannot run into each
// other.
func writeField(h interface{ Write([]byte) (int, error) }, b []byte) {
	n := len(b)
	_, _ = h.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	_, _ = h.Write(b)
}
