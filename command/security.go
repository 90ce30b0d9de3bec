package command

import (
	"flag"
	"strings"

	"asymptote.dev/asymptote/internal/security"
)

// natsSecurityFlags are the TLS and credential flags of every command that
// connects to NATS (docs/security.md).
type natsSecurityFlags struct{ security.NATS }

func (f *natsSecurityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.CA, "nats-ca", "", "PEM `file` of the CA that signs the NATS servers' certificates; verifies the server over TLS")
	fs.StringVar(&f.Cert, "nats-cert", "", "PEM `file` of this client's TLS certificate, for servers that verify clients (with -nats-key)")
	fs.StringVar(&f.Key, "nats-key", "", "PEM `file` of the key of -nats-cert")
	fs.StringVar(&f.NKey, "nats-nkey", "", "`file` with this identity's NATS nkey seed (asymptote secure init writes one per identity)")
	fs.StringVar(&f.Creds, "nats-creds", "", "NATS JWT credentials `file` (.creds), for servers in operator mode")
	fs.StringVar(&f.Inbox, "nats-inbox", "", "`prefix` of this connection's reply subjects (default _INBOX); a secure server lets each identity receive replies only under its own, such as _INBOX.viewer")
}

// etcdSecurityFlags are the coordinator's TLS and credential flags for
// etcd.
type etcdSecurityFlags struct{ security.Etcd }

func (f *etcdSecurityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.CA, "etcd-ca", "", "PEM `file` of the CA that signs the etcd servers' certificates; verifies etcd over TLS")
	fs.StringVar(&f.Cert, "etcd-cert", "", "PEM `file` of the coordinator's etcd client certificate (with -etcd-key); with etcd's --client-cert-auth its common name is the etcd user")
	fs.StringVar(&f.Key, "etcd-key", "", "PEM `file` of the key of -etcd-cert")
	fs.StringVar(&f.User, "etcd-user", "", "etcd `user` to authenticate as by password (with -etcd-password-file)")
	fs.StringVar(&f.PasswordFile, "etcd-password-file", "", "`file` holding the password of -etcd-user")
}

// connectHint says what to check after a client failed to connect.
func connectHint(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "Authorization Violation") || strings.Contains(s, "authorization violation"):
		return "the server refused this identity: give -nats-nkey or -nats-creds of an identity it lists (docs/security.md), or set ASYMPTOTE_NATS_NKEY"
	case strings.Contains(s, "tls"):
		return "TLS failed: check -nats-ca is the CA that signed the server's certificate, and give -nats-cert and -nats-key (a current client certificate from the same CA) if the server verifies clients"
	case strings.Contains(s, "secure connection required"):
		return "the server requires TLS: give -nats-ca (or use a tls:// URL)"
	}
	return "is 'asymptote dev' or a coordinator running? set -nats-url or ASYMPTOTE_NATS_URL"
}
