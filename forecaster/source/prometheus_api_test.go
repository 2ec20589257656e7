package source_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
)

// TestNewPrometheusAPI: the API client carries the source's settings: the
// tenant header on every request, the response-size bound, and the same
// validation of the configuration.
func TestNewPrometheusAPI(t *testing.T) {
	vector := `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"service":"a"},"value":[1,"2"]}]}}`
	tests := []struct {
		name       string
		tenant     string
		body       string
		maxBytes   int64
		wantTenant string
		wantErr    string
	}{
		{name: "tenant header sent", tenant: "team-a", body: vector, wantTenant: "team-a"},
		{name: "no tenant", body: vector},
		{name: "answer over the bound", body: vector[:len(vector)-2] + strings.Repeat(" ", 4096) + "}}", maxBytes: 1024, wantErr: "maxResponseBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotTenant atomic.Value
			gotTenant.Store("")
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotTenant.Store(r.Header.Get("X-Scope-OrgID"))
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			cfg := source.DefaultPrometheusConfig()
			cfg.URL, cfg.Tenant = srv.URL, tt.tenant
			if tt.maxBytes > 0 {
				cfg.MaxResponseBytes = tt.maxBytes
			}
			api, err := source.NewPrometheusAPI(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _, _, err = api.Query(ctx, "up", time.Unix(1, 0))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := gotTenant.Load().(string); got != tt.wantTenant {
				t.Errorf("X-Scope-OrgID = %q, want %q", got, tt.wantTenant)
			}
		})
	}
}

// TestNewPrometheusAPIRefusesBadConfig: the configuration is validated as
// for the source, and the error says which field is wrong.
func TestNewPrometheusAPIRefusesBadConfig(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"", "url: must be set"},
		{"ftp://127.0.0.1:9090", "scheme must be http or https"},
	} {
		cfg := source.DefaultPrometheusConfig()
		cfg.URL = tt.url
		if _, err := source.NewPrometheusAPI(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("URL %q: err = %v, want one containing %q", tt.url, err, tt.want)
		}
	}
}
