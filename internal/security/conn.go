// Package security holds what makes asymptote's connections encrypted and
// authenticated: the NATS and etcd client settings every command takes
// (TLS with a CA and an optional client certificate, NATS credentials as an
// nkey seed or a JWT .creds file, etcd users), and the bootstrap that
// writes a CA, certificates, an nkey per identity and a NATS server
// configuration whose permissions give each identity exactly its job
// (`asymptote secure init`, docs/security.md).
//
// It writes no cryptography of its own: certificates come from the
// standard library's crypto/x509 and crypto/ecdsa, nkeys from
// github.com/nats-io/nkeys, and the servers enforce everything.
package security

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// NATS is how a process authenticates to NATS and verifies the server.
// The zero value is a plaintext, anonymous connection, as `asymptote dev`
// uses on loopback. Each field is a flag of every command that connects
// (docs/security.md); errors name the flag.
type NATS struct {
	// CA is a PEM file of the certificate authorities that sign the
	// server's certificate (-nats-ca). Setting it requires TLS.
	CA string
	// Cert and Key are this client's PEM certificate and key, for servers
	// that verify clients (-nats-cert, -nats-key); both or neither.
	Cert, Key string
	// NKey is a file holding this identity's nkey seed (-nats-nkey).
	NKey string
	// Creds is a JWT .creds file, for servers run in operator mode
	// (-nats-creds). At most one of NKey and Creds.
	Creds string
	// Inbox is the prefix of this connection's reply subjects
	// (-nats-inbox, default _INBOX). The generated server configuration
	// lets each identity receive replies only under its own prefix, so no
	// identity can read another's replies.
	Inbox string
}

// Secure reports whether any of the settings is given.
func (c NATS) Secure() bool { return c != NATS{} }

// Options returns the nats.go options for the settings, after reading and
// checking every file, so a bad path is reported before anything dials.
func (c NATS) Options() ([]nats.Option, error) {
	var opts []nats.Option
	tc, err := tlsConfig("nats", c.CA, c.Cert, c.Key)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	if c.NKey != "" && c.Creds != "" {
		return nil, errors.New("-nats-nkey and -nats-creds are both given: give the one your server expects (an nkey seed for servers with users listed in their config, a .creds file for operator mode)")
	}
	if c.NKey != "" {
		opt, err := nkeyOption(c.NKey)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt)
	}
	if c.Creds != "" {
		if err := checkCreds(c.Creds); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.Inbox != "" {
		if err := checkInbox(c.Inbox); err != nil {
			return nil, err
		}
		opts = append(opts, nats.CustomInboxPrefix(c.Inbox))
	}
	return opts, nil
}

// nkeyOption reads a seed file and signs the server's nonce with it.
func nkeyOption(path string) (nats.Option, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-nats-nkey %s: %w", path, err)
	}
	kp, err := parseSeed(b)
	if err != nil {
		return nil, fmt.Errorf("-nats-nkey %s: %w", path, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("-nats-nkey %s: %w", path, err)
	}
	return nats.Nkey(pub, func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) }), nil
}

// parseSeed reads a user nkey seed: the first line starting with SU, so
// that seed files with comments, as `asymptote secure init` and nk write
// them, are read.
func parseSeed(b []byte) (nkeys.KeyPair, error) {
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "SU") {
			continue
		}
		kp, err := nkeys.FromSeed([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("the user seed does not decode (%w); write the seed that `asymptote secure init` made (a line starting with SU)", err)
		}
		return kp, nil
	}
	return nil, errors.New("no user nkey seed (a line starting with SU) in the file; give the .nk file that `asymptote secure init` wrote for this identity")
}

// checkCreds checks that a .creds file holds a user JWT and a seed, as
// nats.UserCredentials would read them on every connect.
func checkCreds(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("-nats-creds %s: %w", path, err)
	}
	s := string(b)
	for _, want := range []string{"-----BEGIN NATS USER JWT-----", "-----BEGIN USER NKEY SEED-----"} {
		if !strings.Contains(s, want) {
			return fmt.Errorf("-nats-creds %s: no %q block; give a .creds file as `nsc generate creds` writes it", path, strings.Trim(want, "-"))
		}
	}
	if _, err := nkeys.ParseDecoratedNKey(b); err != nil {
		return fmt.Errorf("-nats-creds %s: the seed: %w", path, err)
	}
	if _, err := nkeys.ParseDecoratedJWT(b); err != nil {
		return fmt.Errorf("-nats-creds %s: the JWT: %w", path, err)
	}
	return nil
}

func checkInbox(p string) error {
	if strings.ContainsAny(p, "*> \t\r\n") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, "..") {
		return fmt.Errorf("-nats-inbox %q: want subject tokens without wildcards, such as _INBOX.agent-gpu-01", p)
	}
	return nil
}

// Etcd is how a coordinator authenticates to etcd and verifies it. The
// zero value is plaintext and anonymous.
type Etcd struct {
	// CA, Cert and Key are as for NATS (-etcd-ca, -etcd-cert, -etcd-key).
	// With etcd's --client-cert-auth, the certificate's common name is
	// the etcd user, so no password is needed.
	CA, Cert, Key string
	// User and PasswordFile are an etcd user and a file holding its
	// password (-etcd-user, -etcd-password-file).
	User, PasswordFile string
}

// Secure reports whether any of the settings is given.
func (c Etcd) Secure() bool { return c != Etcd{} }

// Client returns the TLS configuration (nil for plaintext), user and
// password for the etcd client, after reading and checking every file.
func (c Etcd) Client() (tc *tls.Config, user, password string, err error) {
	if tc, err = tlsConfig("etcd", c.CA, c.Cert, c.Key); err != nil {
		return nil, "", "", err
	}
	if (c.User == "") != (c.PasswordFile == "") {
		return nil, "", "", errors.New("-etcd-user and -etcd-password-file go together: give both, or neither and authenticate by client certificate (-etcd-cert)")
	}
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, "", "", fmt.Errorf("-etcd-password-file %s: %w", c.PasswordFile, err)
		}
		password = strings.TrimRight(string(b), "\r\n")
		if password == "" {
			return nil, "", "", fmt.Errorf("-etcd-password-file %s: the file is empty", c.PasswordFile)
		}
	}
	return tc, c.User, password, nil
}

// tlsConfig builds a client TLS configuration from the flags of one
// server (prefix nats or etcd), or nil when none is given.
func tlsConfig(prefix, ca, cert, key string) (*tls.Config, error) {
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("-%s-ca %s: %w", prefix, ca, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("-%s-ca %s: no PEM certificate in the file; give the ca.pem that `asymptote secure init` wrote", prefix, ca)
		}
		tc.RootCAs = pool
	}
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("-%s-cert and -%s-key go together: give both (the client certificate and its key) or neither", prefix, prefix)
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("-%s-cert %s, -%s-key %s: %w", prefix, cert, prefix, key, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// Probe opens one TLS connection to each endpoint with the settings, to
// report a refused or untrusted certificate by name: the etcd client only
// ever says that etcd did not answer. A server that accepts the handshake
// and the client certificate is silent until spoken to, so waiting a
// moment for an alert tells the two apart. Probe returns nil without TLS
// and for endpoints it cannot reach (etcd may start later).
func (c Etcd) Probe(ctx context.Context, endpoints []string) error {
	tc, _, _, err := c.Client()
	if err != nil || tc == nil {
		return err
	}
	var errs []error
	for _, ep := range endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			continue
		}
		cfg := tc.Clone()
		cfg.ServerName = u.Hostname()
		d := tls.Dialer{Config: cfg, NetDialer: &net.Dialer{Timeout: 2 * time.Second}}
		conn, err := d.DialContext(ctx, "tcp", u.Host)
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			continue // not up: the client retries
		}
		if err == nil {
			_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = nil
			}
		}
		if closedEarly(err) {
			// A member starting or stopping closes the connection
			// without a word; one that refuses a certificate says so
			// (an alert). The client retries the first.
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("etcd at %s refused the TLS connection: %w (check -etcd-ca is the CA of etcd's certificate, and -etcd-cert is a current certificate from the CA etcd trusts)", ep, err))
		}
	}
	return errors.Join(errs...)
}

// closedEarly reports whether err is a connection closed or reset
// without a TLS alert.
func closedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}
