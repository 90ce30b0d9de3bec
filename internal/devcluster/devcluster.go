// Package devcluster starts a real NATS server (with JetStream) and a real
// etcd server inside the current process. `asymptote dev`, a coordinator
// started without external endpoints, and the integration tests all use it,
// so the single-machine mode runs the same code paths as a production
// deployment against external clusters.
package devcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"asymptote.dev/asymptote/internal/security"
)

// Config describes the embedded servers.
type Config struct {
	// DataDir holds the servers' state: DataDir/nats and DataDir/etcd.
	// Starting again on the same directory restores both.
	DataDir string
	// NATSHost and NATSPort are where NATS listens; port -1 picks a free
	// port, 0 means the NATS default (4222).
	NATSHost string
	NATSPort int
	// EtcdClientPort is etcd's client port on 127.0.0.1; 0 picks a free
	// port.
	EtcdClientPort int
	// Logger receives the servers' warnings and errors.
	Logger *slog.Logger
	// StartTimeout bounds how long Start waits for each server (default 30s).
	StartTimeout time.Duration
	// NATSSyncInterval is how often the embedded JetStream flushes its
	// files to disk. Zero (the default) syncs every write before it is
	// acknowledged: a single server has no replica to recover from, so a
	// power cut would otherwise lose the outcomes acknowledged since the
	// last flush. A positive interval trades that window for throughput
	// (docs/operations.md, "What survives what").
	NATSSyncInterval time.Duration
	// Security, when set, is a bundle from `asymptote secure init`: NATS
	// then requires TLS with client certificates and lets in only the
	// bundle's identities, each with its permissions (its
	// nats-auth.conf), and etcd serves clients over TLS and requires a
	// client certificate from the bundle's CA (`asymptote dev -secure`).
	Security *security.Bundle
}

// Cluster is a running pair of embedded servers.
type Cluster struct {
	// NATS is the embedded NATS server.
	NATS *natsserver.Server
	// Etcd is the embedded etcd server.
	Etcd *embed.Etcd
	// NATSURL is the client URL of the NATS server.
	NATSURL string
	// EtcdEndpoints are the client URLs of the etcd server.
	EtcdEndpoints []string
}

// Start starts etcd, then NATS, and waits until both accept clients.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("devcluster: DataDir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if cfg.NATSHost == "" {
		cfg.NATSHost = "127.0.0.1"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("devcluster: %w", err)
	}
	e, endpoint, err := startEtcd(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ns, err := startNATS(cfg)
	if err != nil {
		e.Close()
		return nil, err
	}
	return &Cluster{NATS: ns, Etcd: e, NATSURL: ns.ClientURL(), EtcdEndpoints: []string{endpoint}}, nil
}

// startEtcd starts the embedded etcd. A port picked as free can be taken
// by another process before etcd binds it; then, unless the client port
// was given, it picks again, up to three times.
func startEtcd(ctx context.Context, cfg Config) (*embed.Etcd, string, error) {
	for attempt := 1; ; attempt++ {
		e, endpoint, err := startEtcdOnce(ctx, cfg)
		if err == nil || attempt == 3 || cfg.EtcdClientPort != 0 || !addrInUse(err) {
			return e, endpoint, err
		}
		_ = os.Remove(filepath.Join(cfg.DataDir, "etcd-client-port"))
	}
}

// addrInUse reports whether err is a listener's "address already in use".
func addrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

func startEtcdOnce(ctx context.Context, cfg Config) (*embed.Etcd, string, error) {
	ec := embed.NewConfig()
	ec.Name = "asymptote-dev"
	ec.Dir = filepath.Join(cfg.DataDir, "etcd")
	clientPort := cfg.EtcdClientPort
	var err error
	if clientPort == 0 {
		// A restarted dev cluster must come back on the port it had, so
		// the port is remembered in the data directory.
		clientPort, err = rememberedPort(filepath.Join(cfg.DataDir, "etcd-client-port"))
		if err != nil {
			return nil, "", err
		}
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", clientPort)}
	if b := cfg.Security; b != nil {
		cu.Scheme = "https"
		ec.ClientTLSInfo.CertFile = filepath.Join(b.Dir, security.ServerFile)
		ec.ClientTLSInfo.KeyFile = filepath.Join(b.Dir, security.ServerKeyFile)
		ec.ClientTLSInfo.TrustedCAFile = filepath.Join(b.Dir, security.CAFile)
		ec.ClientTLSInfo.ClientCertAuth = true
	}
	pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", peerPort)}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	ec.InitialCluster = ec.Name + "=" + pu.String()
	ec.ListenMetricsUrls = nil
	ec.LogLevel = "error"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// A dev cluster keeps a bounded history: compact hourly and allow a
	// database large enough for studies of a few hundred thousand trials.
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"
	ec.QuotaBackendBytes = 4 << 30
	// etcd keeps its raft log in memory until a snapshot, 10,000 entries
	// by default, and 5,000 after one for followers to catch up. The
	// leader's entries are transactions of up to 100 trial records (about
	// 50 KB), so a large study held hundreds of MB there; a single member
	// has no follower to catch up.
	ec.SnapshotCount = 1000
	ec.SnapshotCatchUpEntries = 100
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, "", fmt.Errorf("devcluster: start etcd in %s: %w", ec.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, "", fmt.Errorf("devcluster: etcd: %w", err)
	case <-time.After(cfg.StartTimeout):
		e.Server.Stop()
		e.Close()
		return nil, "", fmt.Errorf("devcluster: etcd did not become ready within %s", cfg.StartTimeout)
	case <-ctx.Done():
		e.Close()
		return nil, "", ctx.Err()
	}
	return e, cu.String(), nil
}

func startNATS(cfg Config) (*natsserver.Server, error) {
	opts := &natsserver.Options{
		ServerName: "asymptote-dev",
		Host:       cfg.NATSHost,
		Port:       cfg.NATSPort,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "nats"),
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 8 << 20,
	}
	if cfg.NATSSyncInterval > 0 {
		opts.SyncInterval = cfg.NATSSyncInterval
	} else {
		opts.SyncAlways = true
	}
	if b := cfg.Security; b != nil {
		// The same TLS and users a real server reads from the bundle.
		auth, err := natsserver.ProcessConfigFile(filepath.Join(b.Dir, security.NATSAuthFile))
		if err != nil {
			return nil, fmt.Errorf("devcluster: %w", err)
		}
		opts.TLS, opts.TLSConfig, opts.TLSVerify, opts.TLSTimeout = auth.TLS, auth.TLSConfig, auth.TLSVerify, auth.TLSTimeout
		opts.Nkeys = auth.Nkeys
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("devcluster: nats: %w", err)
	}
	ns.SetLoggerV2(&natsLogger{log: cfg.Logger.With("component", "nats")}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(cfg.StartTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("devcluster: nats did not accept connections on %s:%d within %s (is the port in use? choose another with --nats-port)", cfg.NATSHost, cfg.NATSPort, cfg.StartTimeout)
	}
	return ns, nil
}

// Close stops NATS, then etcd, and waits for both.
func (c *Cluster) Close() error {
	c.NATS.Shutdown()
	c.NATS.WaitForShutdown()
	c.Etcd.Close()
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("devcluster: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// rememberedPort returns the port stored in path, or picks a free one and
// stores it.
func rememberedPort(path string) (int, error) {
	if b, err := os.ReadFile(path); err == nil {
		var p int
		if _, err := fmt.Sscanf(string(b), "%d", &p); err == nil && p > 0 {
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
				l.Close()
				return p, nil
			}
		}
	}
	p, err := freePort()
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(path, fmt.Appendf(nil, "%d\n", p), 0o600); err != nil {
		return 0, fmt.Errorf("devcluster: %w", err)
	}
	return p, nil
}

// natsLogger forwards the embedded NATS server's warnings and errors to
// slog.
type natsLogger struct{ log *slog.Logger }

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Tracef(format string, v ...any)  {}
