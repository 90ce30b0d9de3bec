package security_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"asymptote.dev/asymptote/internal/security"
	"asymptote.dev/asymptote/internal/security/securitytest"
)

// etcdClient dials endpoint with sec as the coordinator would.
func etcdClient(t *testing.T, endpoint string, sec security.Etcd) *clientv3.Client {
	t.Helper()
	tc, user, password, err := sec.Client()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 3 * time.Second, TLS: tc, Username: user, Password: password, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func put(cli *clientv3.Client, key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := cli.Put(ctx, key, "v")
	return err
}

// TestEtcdClientCertificates: the embedded etcd, serving TLS and requiring
// client certificates, takes the coordinator's and refuses a client
// without one, and one that does not trust its CA.
func TestEtcdClientCertificates(t *testing.T) {
	b := newBundle(t)
	endpoint := securitytest.StartEtcd(t, b)
	coordinator := securitytest.EtcdOf(b, "coordinator")
	if err := put(etcdClient(t, endpoint, coordinator), "/asymptote/x"); err != nil {
		t.Fatalf("the coordinator's certificate: %v", err)
	}
	if err := coordinator.Probe(t.Context(), []string{endpoint}); err != nil {
		t.Errorf("probe with the coordinator's certificate: %v", err)
	}
	other := newBundle(t)
	for name, tt := range map[string]struct {
		sec   security.Etcd
		probe string // what the probe, run by the coordinator at start, says
	}{
		"no client certificate": {security.Etcd{CA: coordinator.CA}, "certificate required"},
		"server not trusted":    {securitytest.EtcdOf(other, "coordinator"), "certificate signed by unknown authority"},
	} {
		t.Run(name, func(t *testing.T) {
			err := put(etcdClient(t, endpoint, tt.sec), "/asymptote/x")
			if err == nil {
				t.Fatal("the write went through")
			}
			err = tt.sec.Probe(t.Context(), []string{endpoint})
			if err == nil || !strings.Contains(err.Error(), tt.probe) || !strings.Contains(err.Error(), "refused the TLS connection") {
				t.Errorf("probe: %v, want it to say %q", err, tt.probe)
			}
			t.Logf("the coordinator logs: %v", err)
		})
	}
	// An endpoint nobody listens on is no refusal.
	if err := coordinator.Probe(t.Context(), []string{fmt.Sprintf("https://127.0.0.1:%d", securitytest.FreePort(t))}); err != nil {
		t.Errorf("probe of a closed port: %v", err)
	}
	// Nor is one that closes the connection without a word, as a member
	// starting or being stopped does (the coordinator used to exit on it,
	// blaming its certificates).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := coordinator.Probe(t.Context(), []string{"https://" + ln.Addr().String()}); err != nil {
		t.Errorf("probe of an endpoint that closes at once: %v", err)
	}
}

// TestEtcdRBAC runs the generated etcd-rbac.sh against Debian's etcd
// (3.4) with client certificates, then checks that the coordinator may
// write under the deployment's prefix and nowhere else, and that root's
// certificate still administers.
func TestEtcdRBAC(t *testing.T) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd is not installed (apt-get install etcd-server, or scripts/install-test-deps.sh): %v", err)
	}
	if _, err := exec.LookPath("etcdctl"); err != nil {
		t.Fatalf("etcdctl is not installed (apt-get install etcd-client): %v", err)
	}
	b := newBundle(t)
	p := func(f string) string { return filepath.Join(b.Dir, f) }
	client := fmt.Sprintf("https://127.0.0.1:%d", securitytest.FreePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", securitytest.FreePort(t))
	cmd := exec.Command(bin, "--name", "rbac", "--data-dir", filepath.Join(t.TempDir(), "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "rbac="+peer,
		"--cert-file", p(security.ServerFile), "--key-file", p(security.ServerKeyFile),
		"--trusted-ca-file", p(security.CAFile), "--client-cert-auth", "--log-level", "error")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	root := security.Etcd{CA: p(security.CAFile), Cert: p(security.CertFile("etcd-root")), Key: p(security.KeyFile("etcd-root"))}
	rootCli := etcdClient(t, client, root)
	deadline := time.Now().Add(20 * time.Second)
	for put(rootCli, "/ready") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("etcd did not serve within 20s:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	script := exec.Command("sh", p(security.EtcdScriptFile))
	script.Env = append(os.Environ(), "ETCD_ENDPOINTS="+client)
	if b, err := script.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", security.EtcdScriptFile, err, b)
	}
	coordinator := etcdClient(t, client, securitytest.EtcdOf(b, "coordinator"))
	if err := put(coordinator, "/asymptote/studies/s"); err != nil {
		t.Errorf("the coordinator writes under /asymptote/: %v", err)
	}
	err = put(coordinator, "/other-team/x")
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("the coordinator writes outside /asymptote/: %v, want permission denied", err)
	}
	t.Logf("outside the prefix the coordinator sees: %v", err)
	// A lease and an election key, as the leader election takes.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	lease, err := coordinator.Grant(ctx, 5)
	if err != nil {
		t.Fatalf("the coordinator grants a lease: %v", err)
	}
	if _, err := coordinator.Put(ctx, "/asymptote/leader/x", "c1", clientv3.WithLease(lease.ID)); err != nil {
		t.Errorf("the coordinator writes an election key with a lease: %v", err)
	}
	if err := put(rootCli, "/other-team/x"); err != nil {
		t.Errorf("root after auth enable: %v", err)
	}
	// A certificate from another CA is refused at the handshake.
	if err := put(etcdClient(t, client, securitytest.EtcdOf(newBundle(t), "coordinator")), "/asymptote/x"); err == nil {
		t.Error("a certificate from another CA wrote to etcd")
	}
}
