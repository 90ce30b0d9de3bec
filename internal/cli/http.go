package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"asymptote.dev/asymptote/internal/dashboard"
	"asymptote.dev/asymptote/internal/httpapi"
)

// defaultHTTPAddr is where coordinators serve the HTTP API unless told
// otherwise: loopback only, until the API authenticates.
const defaultHTTPAddr = "127.0.0.1:8470"

// httpOptions is the -http flag shared by `coordinator` and `dev`.
type httpOptions struct {
	addr string
	set  bool // given on the command line or in the environment
}

func (o *httpOptions) String() string { return o.addr }
func (o *httpOptions) Set(v string) error {
	o.addr, o.set = v, true
	return nil
}

// serveHTTP serves the HTTP API on o's address until ctx ends, and
// returns its URL ("" when -http is off). When the default port is taken
// (another dev on the host), it serves on a free one instead and says so;
// a port asked for by name must be free.
func (o *httpOptions) serve(ctx context.Context, g *group, stderr io.Writer, etcd *clientv3.Client, nc *nats.Conn, log *slog.Logger) (string, error) {
	addr := o.addr
	if !o.set {
		addr = defaultHTTPAddr
	}
	if addr == "" || addr == "off" {
		return "", nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil && !o.set {
		host, _, _ := net.SplitHostPort(addr)
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err == nil {
			fmt.Fprintf(stderr, "HTTP API: %s is taken; serving on %s instead (-http ADDR chooses)\n", addr, ln.Addr())
		}
	}
	if err != nil {
		return "", usagef("-http %s: %v; pick a free address, or -http off", addr, err)
	}
	api, err := httpapi.New(httpapi.Config{Etcd: etcd, NATS: nc, Logger: log, UI: dashboard.Handler()})
	if err != nil {
		ln.Close()
		return "", err
	}
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	g.Go("http api", func() error {
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return "http://" + ln.Addr().String(), nil
}
