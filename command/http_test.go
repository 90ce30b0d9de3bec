package command

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"asymptote.dev/asymptote/internal/security"
)

// TestHTTPSecurity serves HTTPS with the certificate 'secure init' wrote,
// as a coordinator given its .env does, and refuses half a pair or a bad
// token file with the flag to fix.
func TestHTTPSecurity(t *testing.T) {
	b, err := security.Init(security.Plan{Dir: filepath.Join(t.TempDir(), "secure")})
	if err != nil {
		t.Fatal(err)
	}
	opts := httpSecurity{
		tokens: filepath.Join(b.Dir, security.HTTPTokensFile),
		cert:   filepath.Join(b.Dir, security.ServerFile),
		key:    filepath.Join(b.Dir, security.ServerKeyFile),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, tokens, err := opts.apply(ln)
	if err != nil {
		t.Fatal(err)
	}
	if tokens == nil {
		t.Fatal("no tokens loaded from the bundle's http-tokens")
	}
	u := httpURL(ln)
	if !strings.HasPrefix(u, "https://") {
		t.Fatalf("URL %s, want https://", u)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	ca, err := os.ReadFile(filepath.Join(b.Dir, security.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(u + "/")
	if err != nil {
		t.Fatalf("HTTPS with the deployment's CA: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Errorf("body %q", body)
	}
	// Go's TLS server answers plain HTTP with a 400 saying so.
	if resp, err := http.Get("http://" + ln.Addr().String() + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the HTTPS port: status %d, want 400", resp.StatusCode)
		}
	}

	for _, bad := range []struct {
		opts httpSecurity
		want string
	}{
		{httpSecurity{cert: opts.cert}, "-http-cert and -http-key go together"},
		{httpSecurity{cert: opts.cert, key: opts.cert}, "-http-cert"},
		{httpSecurity{tokens: opts.cert}, "-http-tokens"},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := bad.opts.apply(ln); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: err = %v, want it to say %q", bad.opts, err, bad.want)
		}
	}
}
