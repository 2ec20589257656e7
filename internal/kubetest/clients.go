package kubetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubectl runs the real kubectl against the cluster as admin and returns its
// standard output; stdin (may be nil) is fed to it.
func (c *Cluster) Kubectl(ctx context.Context, t testing.TB, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, Binary(t, "kubectl"), append([]string{"--kubeconfig=" + c.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("kubectl %v: %w\n%s", args, err, stderr.Bytes())
	}
	return out, nil
}

// MustKubectl is Kubectl that fails the test on an error.
func (c *Cluster) MustKubectl(ctx context.Context, t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	out, err := c.Kubectl(ctx, t, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// CRD is a third-party CRD file in a Go module on the proxy.
type CRD struct{ Module, Version, Path string }

// The third-party CRDs the manifests and the chart use, at the versions the
// docs name.
var (
	CertManagerCRDs = []CRD{
		{"github.com/cert-manager/cert-manager", "v1.21.2", "deploy/crds/cert-manager.io_issuers.yaml"},
		{"github.com/cert-manager/cert-manager", "v1.21.2", "deploy/crds/cert-manager.io_certificates.yaml"},
	}
	ServiceMonitorCRD = CRD{"github.com/prometheus-operator/prometheus-operator", "v0.85.0", "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"}
	PrometheusCRD     = CRD{"github.com/prometheus-operator/prometheus-operator", "v0.85.0", "example/prometheus-operator-crd/monitoring.coreos.com_prometheuses.yaml"}
)

// ApplyCRDs applies crds server-side (the Prometheus CRD is too large for
// client-side apply's last-applied annotation) and waits until every CRD
// of the cluster is established.
func (c *Cluster) ApplyCRDs(ctx context.Context, t testing.TB, crds ...CRD) {
	t.Helper()
	for _, crd := range crds {
		c.MustKubectl(ctx, t, nil, "apply", "--server-side", "-f", filepath.Join(GoModuleDir(ctx, t, crd.Module, crd.Version), crd.Path))
	}
	c.MustKubectl(ctx, t, nil, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
}

// ServiceAccountKubeconfig writes a kubeconfig that authenticates as the
// ServiceAccount namespace/name with a fresh bound token (one hour), the
// way a pod running as that account reaches the apiserver, and returns its
// path and the token.
func (c *Cluster) ServiceAccountKubeconfig(ctx context.Context, namespace, name string) (path, token string, err error) {
	expiry := int64(time.Hour / time.Second)
	tr, err := c.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		return "", "", fmt.Errorf("token for service account %s/%s: %w", namespace, name, err)
	}
	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		return "", "", err
	}
	user := "system:serviceaccount:" + namespace + ":" + name
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: c.URL, CertificateAuthorityData: ca}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: user}
	cfg.CurrentContext = "test"
	path = filepath.Join(c.Dir, "sa-"+namespace+"-"+name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, tr.Status.Token, nil
}

// GoModuleDir downloads module@version through the Go module proxy (or
// finds it in the module cache) and returns its directory: how tests get
// third-party CRDs (cert-manager, prometheus-operator, KEDA) without
// vendoring them.
func GoModuleDir(ctx context.Context, t testing.TB, module, version string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", module+"@"+version)
	// Outside any module, so the download cannot touch our go.mod.
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GO111MODULE=on")
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil || info.Dir == "" || err != nil {
		t.Fatalf("go mod download %s@%v: %v %s %s", module, version, err, info.Error, out)
	}
	return info.Dir
}
