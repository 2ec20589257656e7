package adapter

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
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

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating demo CA key: %w", err)
	}
	ca, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: "foresight-demo-ca", NotBefore: now}, caKey)
	if err != nil {
		return nil, fmt.Errorf("generating demo CA certificate: %w", err)
	}
	caPEM := pemCert(ca)
	if err := certutil.WriteCert(d.CAFile, caPEM); err != nil {
		return nil, fmt.Errorf("writing demo CA %s: %w", d.CAFile, err)
	}

	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if !host.IsLoopback() {
		ips = append(ips, host)
	}
	if _, _, err := writeLeaf(ca, caKey, d.ServingCertFile, d.ServingKeyFile, now, x509.Certificate{
		Subject:     pkix.Name{CommonName: "foresight"},
		DNSNames:    []string{"localhost"},
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return nil, fmt.Errorf("demo serving certificate: %w", err)
	}
	clientPEM, clientKeyPEM, err := writeLeaf(ca, caKey, d.ClientCertFile, d.ClientKeyFile, now, x509.Certificate{
		Subject:     pkix.Name{CommonName: DemoUser, Organization: []string{demoGroup}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("demo client certificate: %w", err)
	}

	if err := writeKubeconfig(d.Kubeconfig, d.ServerURL, caPEM, clientPEM, clientKeyPEM); err != nil {
		return nil, err
	}
	if err := writeKubeconfig(d.UnreachableKubeconfig, unreachableServer, caPEM, nil, nil); err != nil {
		return nil, err
	}
	return d, nil
}

// writeLeaf signs template with the CA for a fresh key, writes both and
// returns their PEM encodings.
func writeLeaf(ca *x509.Certificate, caKey crypto.Signer, certFile, keyFile string, now time.Time, template x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generating serial number: %w", err)
	}
	template.SerialNumber = serial
	// A little slack for clients whose clock is behind ours.
	template.NotBefore = now.Add(-time.Minute).UTC()
	template.NotAfter = now.Add(365 * 24 * time.Hour).UTC()
	template.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, &template, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("signing certificate for %q: %w", template.Subject.CommonName, err)
	}
	certPEM = pemCert(&x509.Certificate{Raw: der})
	keyPEM, err = keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding key: %w", err)
	}
	if err := certutil.WriteCert(certFile, certPEM); err != nil {
		return nil, nil, fmt.Errorf("writing %s: %w", certFile, err)
	}
	if err := keyutil.WriteKey(keyFile, keyPEM); err != nil {
		return nil, nil, fmt.Errorf("writing %s: %w", keyFile, err)
	}
	return certPEM, keyPEM, nil
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: certutil.CertificateBlockType, Bytes: c.Raw})
}

// writeKubeconfig writes a single-context kubeconfig; certPEM/keyPEM may be
// nil for one that carries no credentials.
func writeKubeconfig(path, server string, caPEM, certPEM, keyPEM []byte) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[DemoUser] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[DemoUser] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts[DemoUser] = &clientcmdapi.Context{Cluster: DemoUser, AuthInfo: DemoUser}
	cfg.CurrentContext = DemoUser
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}
