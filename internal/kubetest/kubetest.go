// Package kubetest starts a real Kubernetes control plane on loopback for
// end-to-end tests: etcd, kube-apiserver (RBAC, aggregation layer, generated
// CAs) and kube-controller-manager (deployment, replicaset, HPA and
// resource-quota controllers with a short sync period). There is no kubelet: pods stay
// Pending, which an HPA on an External metric does not need.
//
// The binaries come from hack/kube-binaries.sh (built from the Go module
// proxy into a cache). Without them the tests skip, unless
// FORESIGHT_REQUIRE_KUBE is set, when they fail.
package kubetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/keyutil"

	"github.com/foresightscale/foresight/internal/pki"
	"github.com/foresightscale/foresight/internal/testenv"
	"github.com/foresightscale/foresight/internal/testproc"
)

// EnvRequire makes missing binaries a failure instead of a skip.
const EnvRequire = "FORESIGHT_REQUIRE_KUBE"

// EnvBinDir overrides where the binaries are looked up.
const EnvBinDir = "FORESIGHT_KUBE_BIN"

// Cluster is a running control plane.
type Cluster struct {
	Dir string
	// URL is the apiserver's base URL; Kubeconfig is an admin kubeconfig
	// (system:masters) for it.
	URL        string
	Kubeconfig string
	Config     *rest.Config
	Client     kubernetes.Interface
	// CAFile is the cluster CA (serving and client certificates);
	// FrontProxyCAFile is the aggregation layer's request-header CA.
	CAFile           string
	FrontProxyCAFile string
	BinDir           string
}

// Binary returns the path of a control-plane binary, skipping (or, with
// FORESIGHT_REQUIRE_KUBE, failing) the test when it is missing.
func Binary(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv(EnvBinDir)
	if dir == "" {
		out, err := exec.Command("bash", filepath.Join(testenv.RepoRoot(t), "hack", "kube-binaries.sh"), "--print").Output()
		if err != nil {
			t.Fatalf("hack/kube-binaries.sh --print: %v", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("%s not built (%v): run hack/kube-binaries.sh (about 30 min cold)", name, err)
		if os.Getenv(EnvRequire) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// startAttempts bounds the retries when a port picked as free was taken by
// another process (test packages run in parallel) before etcd or the
// apiserver bound it.
const startAttempts = 3

// Start brings the control plane up in a temporary directory and tears it
// down when the test ends, also when it fails.
func Start(t testing.TB) *Cluster {
	t.Helper()
	etcdBin, apiBin, kcmBin := Binary(t, "etcd"), Binary(t, "kube-apiserver"), Binary(t, "kube-controller-manager")
	for attempt := 1; ; attempt++ {
		c, err := startOnce(t, etcdBin, apiBin, kcmBin)
		if err == nil {
			return c
		}
		if attempt == startAttempts || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("control plane: a port was taken between picking and binding it; retrying with other ports (attempt %d of %d)", attempt+1, startAttempts)
	}
}

// startOnce is one attempt of Start. Processes it started stay registered
// for teardown at the end of the test even when it fails.
func startOnce(t testing.TB, etcdBin, apiBin, kcmBin string) (*Cluster, error) {
	t.Helper()
	c := &Cluster{Dir: t.TempDir()}
	c.BinDir = filepath.Dir(apiBin)
	ports := make([]int, 3)
	var err error
	for i := range ports {
		if ports[i], err = testproc.FreePort(); err != nil {
			return nil, err
		}
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	c.URL = loopbackURL("https", apiPort)
	certs, err := c.writeCertificates()
	if err != nil {
		return nil, err
	}

	etcd := c.start(t, "etcd", etcdBin,
		"--name=default", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+loopbackURL("http", etcdClient), "--advertise-client-urls="+loopbackURL("http", etcdClient),
		"--listen-peer-urls="+loopbackURL("http", etcdPeer), "--initial-advertise-peer-urls="+loopbackURL("http", etcdPeer),
		"--initial-cluster=default="+loopbackURL("http", etcdPeer), "--log-level=warn")
	if err := etcd.WaitFor("etcd health", 60*time.Second, 100*time.Millisecond, func() error {
		return httpOK(loopbackURL("http", etcdClient) + "/health")
	}); err != nil {
		return nil, fmt.Errorf("%v\n%s", err, etcd.Output())
	}

	api := c.start(t, "kube-apiserver", apiBin,
		"--etcd-servers="+loopbackURL("http", etcdClient),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		// The default reconciler refuses a loopback advertise address.
		"--endpoint-reconciler-type=none",
		"--cert-dir="+filepath.Join(c.Dir, "apiserver-certs"),
		"--tls-cert-file="+certs.serving, "--tls-private-key-file="+certs.servingKey,
		"--client-ca-file="+c.CAFile,
		"--service-account-key-file="+certs.saPublic, "--service-account-signing-key-file="+certs.saPrivate,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		"--requestheader-client-ca-file="+c.FrontProxyCAFile, "--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file="+certs.proxyClient, "--proxy-client-key-file="+certs.proxyClientKey,
		"--enable-priority-and-fairness=false",
	)
	if c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig); err != nil {
		return nil, err
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return nil, err
	}
	if err := api.WaitFor("apiserver /readyz", 120*time.Second, 200*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	}); err != nil {
		return nil, fmt.Errorf("%v\n%s", err, tail(api.Output(), 40))
	}

	c.start(t, "kube-controller-manager", kcmBin,
		"--kubeconfig="+c.Kubeconfig, "--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--leader-elect=false", "--secure-port=0",
		"--service-account-private-key-file="+certs.saPrivate, "--root-ca-file="+c.CAFile,
		"--controllers=deployment,replicaset,horizontalpodautoscaling,serviceaccount,serviceaccount-token,namespace,garbagecollector,resourcequota",
		"--horizontal-pod-autoscaler-sync-period=5s",
		// Each controller acts as its own ServiceAccount, as in kubeadm and
		// managed clusters: the HPA reads metrics as
		// kube-system:horizontal-pod-autoscaler, subject to RBAC.
		"--use-service-account-credentials",
	)
	return c, nil
}

// start runs one component and registers its teardown; its output is
// logged when the test fails.
func (c *Cluster) start(t testing.TB, name, bin string, args ...string) *testproc.Process {
	t.Helper()
	p, err := testproc.Start(name, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s output (last lines):\n%s", name, tail(p.Output(), 30))
		}
	})
	return p
}

type certFiles struct {
	serving, servingKey, proxyClient, proxyClientKey, saPublic, saPrivate string
}

// writeCertificates creates the cluster CA, the front-proxy CA, the serving,
// admin and front-proxy client certificates, the service-account key pair and
// the admin kubeconfig.
func (c *Cluster) writeCertificates() (certFiles, error) {
	now := time.Now()
	f := func(name string) string { return filepath.Join(c.Dir, name) }
	files := certFiles{
		serving: f("apiserver.crt"), servingKey: f("apiserver.key"),
		proxyClient: f("front-proxy-client.crt"), proxyClientKey: f("front-proxy-client.key"),
		saPublic: f("sa.pub"), saPrivate: f("sa.key"),
	}
	ca, err := pki.NewCA("foresight-test-ca", now)
	if err != nil {
		return files, err
	}
	c.CAFile = f("ca.crt")
	if err := ca.WriteCert(c.CAFile); err != nil {
		return files, err
	}
	frontProxy, err := pki.NewCA("foresight-test-front-proxy-ca", now)
	if err != nil {
		return files, err
	}
	c.FrontProxyCAFile = f("front-proxy-ca.crt")
	if err := frontProxy.WriteCert(c.FrontProxyCAFile); err != nil {
		return files, err
	}
	if _, _, err := ca.Issue(x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, files.serving, files.servingKey, now); err != nil {
		return files, fmt.Errorf("apiserver serving certificate: %w", err)
	}
	if _, _, err := frontProxy.Issue(x509.Certificate{
		Subject:     pkix.Name{CommonName: "front-proxy-client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, files.proxyClient, files.proxyClientKey, now); err != nil {
		return files, fmt.Errorf("front-proxy client certificate: %w", err)
	}
	adminCert, adminKey, err := ca.Issue(x509.Certificate{
		Subject:     pkix.Name{CommonName: "foresight-test-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, f("admin.crt"), f("admin.key"), now)
	if err != nil {
		return files, fmt.Errorf("admin certificate: %w", err)
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return files, err
	}
	saPEM, err := keyutil.MarshalPrivateKeyToPEM(saKey)
	if err != nil {
		return files, err
	}
	if err := keyutil.WriteKey(files.saPrivate, saPEM); err != nil {
		return files, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return files, err
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	if err := os.WriteFile(files.saPublic, pubPEM, 0o600); err != nil {
		return files, err
	}
	c.Kubeconfig = f("admin.kubeconfig")
	return files, pki.WriteKubeconfig(c.Kubeconfig, "admin", c.URL, ca.PEM, adminCert, adminKey)
}

func loopbackURL(scheme string, port int) string {
	return scheme + "://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

func httpOK(url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
