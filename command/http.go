package command

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"

	"asymptote.dev/asymptote/internal/httpapi"
)

// defaultHTTPAddr is where coordinators serve the HTTP API unless told
// otherwise: loopback only, since without -http-tokens it serves anyone.
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
	switch ln.(type) {
	case nil:
		return ""
	case httpsListener:
		return "https://" + ln.Addr().String()
	}
	return "http://" + ln.Addr().String()
}

// httpSecurity are the HTTP API's tokens and TLS certificate, shared by
// `coordinator` and `dev`.
type httpSecurity struct {
	tokens, cert, key string
}

func (o *httpSecurity) register(fs *flag.FlagSet) {
	fs.StringVar(&o.tokens, "http-tokens", "", "`file` of the tokens the HTTP API and dashboard accept (NAME ROLE SHA256 lines; 'asymptote secure init' writes http-tokens); default: none needed, so keep -http on loopback")
	fs.StringVar(&o.cert, "http-cert", "", "TLS certificate `file` for the HTTP API (with -http-key): serve HTTPS; default: plain HTTP")
	fs.StringVar(&o.key, "http-key", "", "TLS private key `file` for the HTTP API (with -http-cert)")
}

// httpsListener marks a listener that serves TLS.
type httpsListener struct{ net.Listener }

// apply loads the tokens and wraps ln in TLS as the flags ask. It closes
// ln when it fails.
func (o *httpSecurity) apply(ln net.Listener) (net.Listener, *httpapi.Tokens, error) {
	if ln == nil {
		return nil, nil, nil
	}
	fail := func(err error) (net.Listener, *httpapi.Tokens, error) {
		ln.Close()
		return nil, nil, err
	}
	var tokens *httpapi.Tokens
	if o.tokens != "" {
		t, err := httpapi.LoadTokens(o.tokens)
		if err != nil {
			return fail(usagef("-http-tokens: %v", err))
		}
		tokens = t
	}
	if (o.cert == "") != (o.key == "") {
		return fail(usagef("-http-cert and -http-key go together: give both, or neither for plain HTTP"))
	}
	if o.cert != "" {
		pair, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return fail(usagef("-http-cert %s, -http-key %s: %v", o.cert, o.key, err))
		}
		ln = httpsListener{tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})}
	}
	return ln, tokens, nil
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
