// Package pki generates the small certificate authorities Foresight needs
// without a cluster: the demo mode's CA and the test control plane's CAs.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// CA is a self-signed certificate authority held in memory.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// PEM is Cert, PEM-encoded.
	PEM []byte
}

// NewCA creates a CA valid from now (with a minute of slack) for ten years.
func NewCA(commonName string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating %s key: %w", commonName, err)
	}
	cert, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: commonName, NotBefore: now}, key)
	if err != nil {
		return nil, fmt.Errorf("generating %s certificate: %w", commonName, err)
	}
	return &CA{Cert: cert, Key: key, PEM: EncodeCert(cert)}, nil
}

// WriteCert writes the CA certificate to path.
func (ca *CA) WriteCert(path string) error {
	if err := certutil.WriteCert(path, ca.PEM); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// Issue signs template (see Sign), writes both files (the key with mode
// 0600) and returns their PEM encodings.
func (ca *CA) Issue(template x509.Certificate, certFile, keyFile string, now time.Time) (certPEM, keyPEM []byte, err error) {
	certPEM, keyPEM, err = ca.Sign(template, now)
	if err != nil {
		return nil, nil, err
	}
	if err := certutil.WriteCert(certFile, certPEM); err != nil {
		return nil, nil, fmt.Errorf("writing %s: %w", certFile, err)
	}
	if err := keyutil.WriteKey(keyFile, keyPEM); err != nil {
		return nil, nil, fmt.Errorf("writing %s: %w", keyFile, err)
	}
	return certPEM, keyPEM, nil
}

// Sign signs template for a fresh key valid for a year from now (a minute
// of slack for clients whose clock is behind) and returns the certificate
// and key, PEM-encoded.
func (ca *CA) Sign(template x509.Certificate, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generating serial number: %w", err)
	}
	template.SerialNumber = serial
	template.NotBefore = now.Add(-time.Minute).UTC()
	template.NotAfter = now.Add(ValidFor).UTC()
	template.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, &template, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing certificate for %q: %w", template.Subject.CommonName, err)
	}
	keyPEM, err = keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding key: %w", err)
	}
	return EncodeCert(&x509.Certificate{Raw: der}), keyPEM, nil
}

// ValidFor is how long an issued certificate is valid.
const ValidFor = 365 * 24 * time.Hour

// EncodeCert PEM-encodes a certificate.
func EncodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: certutil.CertificateBlockType, Bytes: c.Raw})
}

// WriteKubeconfig writes a single-context kubeconfig for server, trusting
// caPEM; certPEM/keyPEM (may be nil) authenticate the user. name names the
// cluster, user and context.
func WriteKubeconfig(path, name, server string, caPEM, certPEM, keyPEM []byte) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}
