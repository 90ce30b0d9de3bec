package security_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"asymptote.dev/asymptote/internal/security"
	"asymptote.dev/asymptote/internal/security/securitytest"
)

// account is an operator-mode NATS account: its key pair and signed JWT.
type account struct {
	kp  nkeys.KeyPair
	pub string
	jwt string
}

func newAccount(t *testing.T, operator nkeys.KeyPair) account {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	claims := jwt.NewAccountClaims(pub)
	claims.Name = "asymptote"
	token, err := claims.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	return account{kp: kp, pub: pub, jwt: token}
}

// creds writes a .creds file for a user of acct who may publish pub and
// subscribe to sub.
func creds(t *testing.T, acct account, pub, sub []string) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	upub, _ := kp.PublicKey()
	claims := jwt.NewUserClaims(upub)
	claims.Pub.Allow.Add(pub...)
	claims.Sub.Allow.Add(sub...)
	token, err := claims.Encode(acct.kp)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	b, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCredsFile runs -nats-creds against a nats-server in operator mode
// (a memory resolver) with the bundle's TLS: a viewer's .creds file
// connects and keeps to its permissions, and a user of an account the
// server does not know is refused.
func TestCredsFile(t *testing.T) {
	b := newBundle(t)
	operator, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	opPub, _ := operator.PublicKey()
	opJWT, err := jwt.NewOperatorClaims(opPub).Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	acct, system := newAccount(t, operator), newAccount(t, operator)
	p := func(f string) string { return filepath.Join(b.Dir, f) }
	// JetStream in operator mode needs a system account.
	srv := securitytest.StartNATSWith(t, t.TempDir(), fmt.Sprintf(
		"operator: %s\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: { %s: %s, %s: %s }\ntls { cert_file: %q, key_file: %q, ca_file: %q, verify: true }\n",
		opJWT, system.pub, acct.pub, acct.jwt, system.pub, system.jwt, p(security.ServerFile), p(security.ServerKeyFile), p(security.CAFile)))

	viewer := securitytest.NATSOf(b, "viewer")
	viewer.NKey = ""
	viewer.Creds = creds(t, acct, []string{"asymptote.api.status"}, []string{"_INBOX.viewer.>"})
	nc := mustDial(t, srv.URL, viewer)
	if err := nc.Publish("asymptote.api.status", nil); err != nil {
		t.Fatal(err)
	}
	if err := nc.refusal(t, "asymptote.api.status"); err != nil {
		t.Errorf("the viewer's creds may not ask for status: %v", err)
	}
	if err := nc.Publish("asymptote.api.submit", nil); err != nil {
		t.Fatal(err)
	}
	if err := nc.refusal(t, "asymptote.api.submit"); err == nil {
		t.Error("the viewer's creds may submit")
	}

	stranger := viewer
	stranger.Creds = creds(t, newAccount(t, operator), []string{">"}, []string{">"})
	if c, err := dial(srv.URL, stranger); err == nil {
		c.Close()
		t.Error("a user of an unknown account connected")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Errorf("a user of an unknown account: %v, want an authorization violation", err)
	}
}
