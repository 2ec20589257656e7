package adapter

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
	genericapiserver "k8s.io/apiserver/pkg/server"

	"github.com/foresightscale/foresight/adapter/respcache"
	"github.com/foresightscale/foresight/forecaster/snapshot"
)

// newResponseCacheCounter returns foresight_api_response_cache_requests_total.
func newResponseCacheCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "foresight_api_response_cache_requests_total",
		Help: "Requests to the metrics APIs by how they were answered: hit (an external-metric GET answered from the answer kept for this forecast, after authentication and authorisation), miss (through the API server's handler chain, its answer kept) and chain (through the chain, not cacheable: another path or method, or a caller not plainly allowed).",
	}, []string{"result"})
	for _, r := range []string{respcache.ResultHit, respcache.ResultMiss, respcache.ResultChain} {
		c.WithLabelValues(r)
	}
	return c
}

// responseCacheConfig is the cache of the external metrics API with the
// completed API server configuration's own authenticator, authorizer and
// request-info resolver. It returns a configuration respcache.New refuses
// (serving through the chain alone) where the cache would skip something
// the chain does: audiences to check or audit events to write.
func responseCacheConfig(c *genericapiserver.Config, reader snapshot.Reader, requests *prometheus.CounterVec, log *slog.Logger) respcache.Config {
	if len(c.Authentication.APIAudiences) > 0 || c.AuditBackend != nil {
		log.Info("response cache off: the API server checks token audiences or writes audit events for every request")
		return respcache.Config{}
	}
	cfg := respcache.Config{
		PathPrefix:    "/apis/external.metrics.k8s.io/",
		Source:        snapshotSource{reader: reader},
		Authenticator: c.Authentication.Authenticator,
		Authorizer:    c.Authorization.Authorizer,
		RequestInfo:   c.RequestInfoResolver,
		Requests:      requests,
	}
	if c.SecureServing != nil && c.SecureServing.ClientCA != nil {
		cfg.Identity.CABundles = c.SecureServing.ClientCA.CurrentCABundleContent
	}
	if rh := c.Authentication.RequestHeaderConfig; rh != nil {
		cfg.Identity.Headers = headerrequest.StringSliceProviderFunc(func() []string {
			var names []string
			for _, p := range []headerrequest.StringSliceProvider{rh.UsernameHeaders, rh.UIDHeaders, rh.GroupHeaders} {
				if p != nil {
					names = append(names, p.Value()...)
				}
			}
			return names
		})
		if rh.ExtraHeaderPrefixes != nil {
			cfg.Identity.HeaderPrefixes = rh.ExtraHeaderPrefixes
		}
	}
	return cfg
}

// snapshotSource versions answers by the snapshot they are computed from.
type snapshotSource struct{ reader snapshot.Reader }

func (s snapshotSource) Version() any { return s.reader.Latest() }

// ValidUntil is when the next of the snapshot's still fresh predictions
// expires: from then on the providers leave it out.
func (s snapshotSource) ValidUntil(version any, now time.Time) time.Time {
	snap, _ := version.(*snapshot.Snapshot)
	if snap == nil {
		return time.Time{}
	}
	var next time.Time
	for _, p := range snap.Predictions {
		if p.ExpiresAt.After(now) && (next.IsZero() || p.ExpiresAt.Before(next)) {
			next = p.ExpiresAt
		}
	}
	return next
}
