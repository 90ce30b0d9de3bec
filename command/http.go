package command

import (
	"fmt"
	"io"
	"net"
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

// listen opens the listener of the HTTP API on o's address, or returns
// nil when -http is off. When the default port is taken (another dev on
// the host), it listens on a free one instead and says so; a port asked
// for by name must be free.
func (o *httpOptions) listen(stderr io.Writer) (net.Listener, error) {
	addr := o.addr
	if !o.set {
		addr = defaultHTTPAddr
	}
	if addr == "" || addr == "off" {
		return nil, nil
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
		return nil, usagef("-http %s: %v; pick a free address, or -http off", addr, err)
	}
	return ln, nil
}

// httpURL is the URL of the HTTP API served on ln ("" when there is none).
func httpURL(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return "http://" + ln.Addr().String()
}

// healthUsage is the -health flag's help, shared by `coordinator` and
// `agent`.
const healthUsage = "`address` to serve liveness (/livez) and readiness (/readyz) on, such as :8471, for a scheduler's probes (docs/kubernetes.md); default: none"

// listenHealth opens the listener of the health endpoints on addr, or
// returns nil when addr is empty or off.
func listenHealth(addr string) (net.Listener, error) {
	if addr == "" || addr == "off" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usagef("-health %s: %v; pick a free address such as :8471, or leave -health out", addr, err)
	}
	return ln, nil
}
