package source

import (
	"fmt"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// NewPrometheusAPI returns a Prometheus HTTP API client configured exactly as
// the Prometheus source's own (TLS and authentication from c.HTTP, the tenant
// header, the c.MaxResponseBytes bound on every answer), for callers that need
// queries the source does not make, such as call-graph discovery's instant
// queries. It is built by NewPrometheus itself so the two can never drift
// apart; c.Queries are validated as for the source. The client does not bound
// a query's duration: callers pass a context with a deadline.
func NewPrometheusAPI(c PrometheusConfig) (v1.API, error) {
	p, err := NewPrometheus(c, nil)
	if err != nil {
		return nil, fmt.Errorf("prometheus API client: %w", err)
	}
	return p.api, nil
}
