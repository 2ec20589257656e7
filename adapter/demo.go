package adapter

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/foresightscale/foresight/internal/pki"
)

// DemoUser is the common name of the demo client certificate. Its group,
// system:masters, is always allowed by the library's authorizer, so demo
// requests need no SubjectAccessReview and hence no cluster.
const (
	DemoUser  = "foresight-demo"
	demoGroup = "system:masters"
)

// unreachableServer is where the kubeconfigs the library insists on point in
// demo mode. The library only parses them at start-up; nothing listens on
// loopback port 1, so a stray request fails at once instead of hanging.
const unreachableServer = "https://127.0.0.1:1"

// DemoCredentials are the files demo mode writes so that kubectl and curl can
// talk to the adapter without a cluster. They are regenerated on every start.
type DemoCredentials struct {
	Dir string
	// CAFile signs both the serving and the client certificate; clients trust
	// it for the server, and the server accepts client certificates it signed.
	CAFile          string
	ServingCertFile string
	ServingKeyFile  string
	ClientCertFile  string
	ClientKeyFile   string
	// Kubeconfig points kubectl at ServerURL with the client certificate.
	Kubeconfig string
	// UnreachableKubeconfig is handed to the library as lister kubeconfig.
	UnreachableKubeconfig string
	// ServerURL is the external metrics API server's base URL.
	ServerURL string
}

// ExternalMetricPath is the API path of one external metric in a namespace.
func ExternalMetricPath(namespace, metric string) string {
	return "/apis/external.metrics.k8s.io/v1beta1/namespaces/" + url.PathEscape(namespace) + "/" + url.PathEscape(metric)
}

// KubectlCommand is a shell command that reads metric in namespace through
// the demo kubeconfig.
func (d *DemoCredentials) KubectlCommand(namespace, metric string) string {
	return "kubectl --kubeconfig " + shellQuote(d.Kubeconfig) + " get --raw " + shellQuote(ExternalMetricPath(namespace, metric))
}

// CurlCommand is a shell command that reads metric in namespace with curl and
// the demo client certificate.
func (d *DemoCredentials) CurlCommand(namespace, metric string) string {
	return "curl --cacert " + shellQuote(d.CAFile) + " --cert " + shellQuote(d.ClientCertFile) +
		" --key " + shellQuote(d.ClientKeyFile) + " " + shellQuote(d.ServerURL+ExternalMetricPath(namespace, metric))
}

// shellQuote leaves plain words alone and single-quotes anything else, so the
// printed commands can be pasted even when a path holds spaces.
func shellQuote(s string) string {
	plain := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./:=@%+,", r))
	}) < 0
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// defaultDemoDir is a per-user directory (not a shared, guessable /tmp path,
// which another local user could pre-create).
func defaultDemoDir() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		dir, tmpErr := os.MkdirTemp("", "foresight-demo-")
		if tmpErr != nil {
			return "", fmt.Errorf("no user cache directory (%v) and no temporary directory: %w", err, tmpErr)
		}
		return dir, nil
	}
	return filepath.Join(cache, "foresight", "demo"), nil
}

// writeDemoCredentials generates a CA, a serving certificate for host (plus
// localhost and the loopback addresses) and a system:masters client
// certificate, and writes them with the kubeconfigs into dir.
func writeDemoCredentials(dir string, host net.IP, port int, now time.Time) (*DemoCredentials, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating demo directory %s: %w", dir, err)
	}
	d := &DemoCredentials{
		Dir:                   dir,
		CAFile:                filepath.Join(dir, "ca.crt"),
		ServingCertFile:       filepath.Join(dir, "serving.crt"),
		ServingKeyFile:        filepath.Join(dir, "serving.key"),
		ClientCertFile:        filepath.Join(dir, "client.crt"),
		ClientKeyFile:         filepath.Join(dir, "client.key"),
		Kubeconfig:            filepath.Join(dir, "kubeconfig"),
		UnreachableKubeconfig: filepath.Join(dir, "unreachable.kubeconfig"),
		ServerURL:             "https://" + net.JoinHostPort(host.String(), strconv.Itoa(port)),
	}

	ca, err := pki.NewCA("foresight-demo-ca", now)
	if err != nil {
		return nil, fmt.Errorf("demo CA: %w", err)
	}
	if err := ca.WriteCert(d.CAFile); err != nil {
		return nil, err
	}
	caPEM := ca.PEM

	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if !host.IsLoopback() {
		ips = append(ips, host)
	}
	if _, _, err := ca.Issue(x509.Certificate{
		Subject:     pkix.Name{CommonName: "foresight"},
		DNSNames:    []string{"localhost"},
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, d.ServingCertFile, d.ServingKeyFile, now); err != nil {
		return nil, fmt.Errorf("demo serving certificate: %w", err)
	}
	clientPEM, clientKeyPEM, err := ca.Issue(x509.Certificate{
		Subject:     pkix.Name{CommonName: DemoUser, Organization: []string{demoGroup}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, d.ClientCertFile, d.ClientKeyFile, now)
	if err != nil {
		return nil, fmt.Errorf("demo client certificate: %w", err)
	}

	if err := pki.WriteKubeconfig(d.Kubeconfig, DemoUser, d.ServerURL, caPEM, clientPEM, clientKeyPEM); err != nil {
		return nil, err
	}
	if err := pki.WriteKubeconfig(d.UnreachableKubeconfig, DemoUser, unreachableServer, caPEM, nil, nil); err != nil {
		return nil, err
	}
	return d, nil
}
