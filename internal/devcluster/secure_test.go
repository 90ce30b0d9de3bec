package devcluster_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"asymptote.dev/asymptote/internal/devcluster"
	"asymptote.dev/asymptote/internal/security"
)

// TestSecure: with a bundle, the embedded servers run as a secure
// deployment's do. NATS refuses a client without credentials and takes
// the viewer's, with its permissions; etcd refuses a client without a
// certificate and takes the coordinator's.
func TestSecure(t *testing.T) {
	b, err := security.Init(security.Plan{Dir: filepath.Join(t.TempDir(), "secure")})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := devcluster.Start(t.Context(), devcluster.Config{DataDir: t.TempDir(), NATSPort: -1, Logger: slog.New(slog.DiscardHandler), Security: b})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if !strings.HasPrefix(cl.EtcdEndpoints[0], "https://") {
		t.Errorf("etcd at %s, want https", cl.EtcdEndpoints[0])
	}

	dial := func(sec security.NATS) (*nats.Conn, error) {
		opts, err := sec.Options()
		if err != nil {
			t.Fatal(err)
		}
		return nats.Connect(cl.NATSURL, append(opts, nats.NoReconnect(), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))...)
	}
	viewer := b.NATS("viewer")
	if nc, err := dial(security.NATS{CA: viewer.CA, Cert: viewer.Cert, Key: viewer.Key}); err == nil {
		nc.Close()
		t.Error("a client without credentials connected")
	} else if !strings.Contains(err.Error(), "Authorization Violation") {
		t.Errorf("a client without credentials: %v, want an authorization violation", err)
	}
	nc, err := dial(viewer)
	if err != nil {
		t.Fatalf("the viewer: %v", err)
	}
	defer nc.Close()
	if err := nc.Publish("asymptote.api.submit", nil); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nc.LastError(); err == nil || !strings.Contains(err.Error(), `Publish to "asymptote.api.submit"`) {
		t.Errorf("the viewer's submit: %v, want a permissions violation", err)
	}

	put := func(sec security.Etcd) error {
		tc, _, _, err := sec.Client()
		if err != nil {
			t.Fatal(err)
		}
		cli, err := clientv3.New(clientv3.Config{Endpoints: cl.EtcdEndpoints, TLS: tc, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err = cli.Put(ctx, "/asymptote/x", "v")
		return err
	}
	if err := put(b.Etcd("coordinator")); err != nil {
		t.Errorf("the coordinator's certificate: %v", err)
	}
	if err := put(security.Etcd{CA: viewer.CA}); err == nil {
		t.Error("etcd took a client without a certificate")
	}
}
