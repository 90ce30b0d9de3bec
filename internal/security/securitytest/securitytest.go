// Package securitytest starts the servers of a secure deployment for
// tests: a real nats-server (the Debian package) with the configuration
// `asymptote secure init` writes, and an embedded etcd that requires TLS
// client certificates. A missing nats-server fails the test, naming the
// package to install; nothing is skipped.
package securitytest

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/security"
)

// NATS is a running nats-server.
type NATS struct {
	// URL is its client URL (tls://127.0.0.1:PORT).
	URL string
	cmd *exec.Cmd
}

// StartNATS starts nats-server on a free loopback port with JetStream and
// the bundle's TLS and authorization, and stops it at cleanup.
func StartNATS(t testing.TB, b *security.Bundle) *NATS {
	t.Helper()
	dir := t.TempDir()
	// nats-server reads an include relative to the including file.
	auth, err := filepath.Rel(dir, filepath.Join(b.Dir, security.NATSAuthFile))
	if err != nil {
		t.Fatal(err)
	}
	return StartNATSWith(t, dir, fmt.Sprintf("include %q\n", auth))
}

// StartNATSWith starts nats-server with its configuration file in dir:
// a free loopback port, JetStream, and conf for the rest.
func StartNATSWith(t testing.TB, dir, conf string) *NATS {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Fatalf("nats-server is not installed (apt-get install nats-server, or scripts/install-test-deps.sh): %v", err)
	}
	port := FreePort(t)
	path := filepath.Join(dir, "nats.conf")
	text := fmt.Sprintf("listen: 127.0.0.1:%d\nmax_payload: 8MB\njetstream { store_dir: %q }\n%s", port, filepath.Join(dir, "store"), conf)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", path, "-l", filepath.Join(dir, "nats.log"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(filepath.Join(dir, "nats.log"))
			t.Fatalf("nats-server -c %s exited: %v\n%s%s", path, err, stderr.String(), log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "nats.log"))
			t.Fatalf("nats-server did not listen on %s within 10s: %v\n%s", addr, err, log)
		}
	}
	return &NATS{URL: "tls://" + addr, cmd: cmd}
}

// Reload makes the server read its configuration again (SIGHUP), as
// `nats-server --signal reload` does.
func (n *NATS) Reload(t testing.TB) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("reload nats-server: %v", err)
	}
}

// StartEtcd starts an embedded etcd that serves clients over TLS with the
// bundle's server certificate and requires client certificates signed by
// its CA. It returns the client URL and stops at cleanup.
func StartEtcd(t testing.TB, b *security.Bundle) string {
	t.Helper()
	ec := embed.NewConfig()
	ec.Name = "secure-test"
	ec.Dir = filepath.Join(t.TempDir(), "etcd")
	cu := url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", FreePort(t))}
	pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", FreePort(t))}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	ec.InitialCluster = ec.Name + "=" + pu.String()
	ec.ListenMetricsUrls = nil
	ec.LogLevel = "error"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	ec.ClientTLSInfo.CertFile = filepath.Join(b.Dir, security.ServerFile)
	ec.ClientTLSInfo.KeyFile = filepath.Join(b.Dir, security.ServerKeyFile)
	ec.ClientTLSInfo.TrustedCAFile = filepath.Join(b.Dir, security.CAFile)
	ec.ClientTLSInfo.ClientCertAuth = true
	e, err := embed.StartEtcd(ec)
	if err != nil {
		t.Fatalf("start etcd with TLS: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcd: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("etcd did not become ready within 30s")
	}
	return cu.String()
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// NATSOf returns the NATS settings of the bundle's identity name.
func NATSOf(b *security.Bundle, name string) security.NATS { return b.NATS(name) }

// EtcdOf returns the etcd settings of the bundle's identity name.
func EtcdOf(b *security.Bundle, name string) security.Etcd { return b.Etcd(name) }

// ClientOf returns c calling the API as the bundle's identity name: on its
// team's subjects, under its name, as its environment file has the
// command line do.
func ClientOf(t testing.TB, c *bus.Client, b *security.Bundle, name string) *bus.Client {
	t.Helper()
	id, ok := b.Identity(name)
	if !ok {
		t.Fatalf("the bundle has no identity %s", name)
	}
	scoped, err := c.As(id.Team, id.Name)
	if err != nil {
		t.Fatal(err)
	}
	return scoped
}
