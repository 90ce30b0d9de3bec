package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"asymptote.dev/asymptote/internal/security"
)

// natsServer is one nats-server process with JetStream on, as a
// standalone server or a member of a cluster.
type natsServer struct {
	name string
	port int
	*proc
}

// natsCluster is n nats-server processes routed to each other (or one
// standalone server when n is 1).
type natsCluster struct {
	servers []*natsServer
	// bundle, when set, is the deployment's secure init: the servers
	// require TLS and its identities, and opts connects as its
	// coordinator.
	bundle *security.Bundle
}

// opts returns the options of a connection with every right: none on a
// plain cluster, the coordinator identity's on a secure one.
func (c *natsCluster) opts(t testing.TB) []nats.Option {
	if c.bundle == nil {
		return nil
	}
	opts, err := c.bundle.NATS("coordinator").Options()
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// include returns an include line for the bundle's file name, relative to
// the server's directory sdir, as nats-server wants includes.
func (c *natsCluster) include(t testing.TB, sdir, name string) string {
	rel, err := filepath.Rel(sdir, filepath.Join(c.bundle.Dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("include %q\n", rel)
}

// startNATS starts n nats-server processes and waits until JetStream
// answers through them.
func startNATS(t testing.TB, dir string, n int, bundle *security.Bundle) *natsCluster {
	t.Helper()
	ports := freePorts(t, 2*n)
	c := &natsCluster{bundle: bundle}
	for i := range n {
		name := fmt.Sprintf("nats%d", i)
		sdir := filepath.Join(dir, name)
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf("server_name: %q\nlisten: \"127.0.0.1:%d\"\njetstream {\n  store_dir: %q\n}\n", name, ports[i], filepath.Join(sdir, "js"))
		if n > 1 {
			var routes []string
			for j := range n {
				if j != i {
					routes = append(routes, fmt.Sprintf("%q", fmt.Sprintf("nats://127.0.0.1:%d", ports[n+j])))
				}
			}
			routeTLS := ""
			if bundle != nil {
				routeTLS = c.include(t, sdir, security.NATSRouteTLSFile)
			}
			conf += fmt.Sprintf("cluster {\n  name: \"chaos\"\n  listen: \"127.0.0.1:%d\"\n  routes: [%s]\n%s}\n", ports[n+i], strings.Join(routes, ", "), routeTLS)
		}
		if bundle != nil {
			conf += c.include(t, sdir, security.NATSAuthFile)
		}
		path := filepath.Join(sdir, "nats.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		s := &natsServer{name: name, port: ports[i], proc: newProc(t, dir, name, []string{"nats-server", "-c", path})}
		s.start()
		c.servers = append(c.servers, s)
	}
	for _, s := range c.servers {
		if err := waitPort(s.port, 20*time.Second); err != nil {
			t.Fatalf("%s: %v\n%s", s.name, err, s.tail(2000))
		}
	}
	c.waitJetStream(t, 60*time.Second)
	return c
}

// URL returns the client URL list of every server.
func (c *natsCluster) URL() string {
	var urls []string
	for _, s := range c.servers {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", s.port))
	}
	return strings.Join(urls, ",")
}

// restart kills server i and starts it again after down.
func (c *natsCluster) restart(t testing.TB, i int, down time.Duration) {
	s := c.servers[i]
	s.kill()
	time.Sleep(down)
	s.start()
	if err := waitPort(s.port, 20*time.Second); err != nil {
		t.Errorf("%s did not come back: %v", s.name, err)
	}
}

// waitJetStream waits until the JetStream API answers (a cluster first
// elects its meta leader).
func (c *natsCluster) waitJetStream(t testing.TB, timeout time.Duration) {
	t.Helper()
	nc, err := nats.Connect(c.URL(), append(c.opts(t), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.RetryOnFailedConnect(true))...)
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("JetStream not ready after %s: %v\n%s", timeout, err, c.servers[0].tail(3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// etcdMember is one etcd process.
type etcdMember struct {
	name   string
	client int
	*proc
}

// etcdCluster is n etcd processes forming one cluster.
type etcdCluster struct {
	members []*etcdMember
	// bundle, when set, makes the members serve clients over TLS and
	// require client certificates; client then connects as etcd's root.
	bundle *security.Bundle
}

func (c *etcdCluster) scheme() string {
	if c.bundle != nil {
		return "https"
	}
	return "http"
}

// startEtcd starts an n-member etcd cluster with short election timings
// and waits until it serves a read.
func startEtcd(t testing.TB, dir string, n int, bundle *security.Bundle) *etcdCluster {
	t.Helper()
	ports := freePorts(t, 2*n)
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("etcd%d=http://127.0.0.1:%d", i, ports[n+i]))
	}
	c := &etcdCluster{bundle: bundle}
	for i := range n {
		name := fmt.Sprintf("etcd%d", i)
		client := fmt.Sprintf("%s://127.0.0.1:%d", c.scheme(), ports[i])
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[n+i])
		argv := []string{"etcd",
			"--name", name,
			"--data-dir", filepath.Join(dir, name),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", "chaos",
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--logger", "zap", "--log-level", "warn",
		}
		if bundle != nil {
			argv = append(argv, "--cert-file", filepath.Join(bundle.Dir, security.ServerFile), "--key-file", filepath.Join(bundle.Dir, security.ServerKeyFile),
				"--trusted-ca-file", filepath.Join(bundle.Dir, security.CAFile), "--client-cert-auth")
		}
		m := &etcdMember{name: name, client: ports[i], proc: newProc(t, dir, name, argv)}
		m.start()
		c.members = append(c.members, m)
	}
	cli := c.client(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Get(ctx, "/ready")
		cancel()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not ready: %v\n%s", err, c.members[0].tail(3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Endpoints returns the client URLs, comma-separated.
func (c *etcdCluster) Endpoints() string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, fmt.Sprintf("%s://127.0.0.1:%d", c.scheme(), m.client))
	}
	return strings.Join(eps, ",")
}

// client returns an etcd client on every member, closed at cleanup.
func (c *etcdCluster) client(t testing.TB) *clientv3.Client {
	t.Helper()
	cfg := clientv3.Config{Endpoints: strings.Split(c.Endpoints(), ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if c.bundle != nil {
		root := security.Etcd{CA: filepath.Join(c.bundle.Dir, security.CAFile), Cert: filepath.Join(c.bundle.Dir, security.CertFile("etcd-root")), Key: filepath.Join(c.bundle.Dir, security.KeyFile("etcd-root"))}
		tc, _, _, err := root.Client()
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// leader returns the index of the member that leads the raft group, or -1
// when none answers as leader.
func (c *etcdCluster) leader(cli *clientv3.Client) int {
	for i, m := range c.members {
		if !m.running() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := cli.Status(ctx, fmt.Sprintf("http://127.0.0.1:%d", m.client))
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	return -1
}

// restart kills member i and starts it again after down.
func (c *etcdCluster) restart(t testing.TB, i int, down time.Duration) {
	m := c.members[i]
	m.kill()
	time.Sleep(down)
	m.start()
	if err := waitPort(m.client, 20*time.Second); err != nil {
		t.Errorf("%s did not come back: %v", m.name, err)
	}
}
