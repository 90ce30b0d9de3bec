package security

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

// TestBadSettings: every bad or missing file, and every flag given without
// its partner, is an error that names the flag and says what to give.
func TestBadSettings(t *testing.T) {
	b, err := Init(Plan{Dir: filepath.Join(t.TempDir(), "b")})
	if err != nil {
		t.Fatal(err)
	}
	in := func(f string) string { return filepath.Join(b.Dir, f) }
	junk := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(junk, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	natsTests := []struct {
		name string
		sec  NATS
		want []string
	}{
		{"missing CA", NATS{CA: missing}, []string{"-nats-ca", missing, "no such file"}},
		{"CA not PEM", NATS{CA: junk}, []string{"-nats-ca", "no PEM certificate", "ca.pem"}},
		{"cert without key", NATS{Cert: in(CertFile("viewer"))}, []string{"-nats-cert and -nats-key go together"}},
		{"key of another cert", NATS{Cert: in(CertFile("viewer")), Key: in(KeyFile("submitter"))}, []string{"-nats-cert", "-nats-key", "private key does not match"}},
		{"missing nkey", NATS{NKey: missing}, []string{"-nats-nkey", missing}},
		{"nkey without seed", NATS{NKey: junk}, []string{"-nats-nkey", "no user nkey seed", "secure init"}},
		{"nkey and creds", NATS{NKey: in(NKeyFile("viewer")), Creds: junk}, []string{"-nats-nkey and -nats-creds are both given"}},
		{"creds without JWT", NATS{Creds: junk}, []string{"-nats-creds", "NATS USER JWT", "nsc generate creds"}},
		{"creds missing", NATS{Creds: missing}, []string{"-nats-creds", missing}},
		{"inbox wildcard", NATS{Inbox: "_INBOX.>"}, []string{"-nats-inbox", "without wildcards"}},
		{"inbox trailing dot", NATS{Inbox: "_INBOX."}, []string{"-nats-inbox"}},
	}
	for _, tt := range natsTests {
		t.Run("nats/"+tt.name, func(t *testing.T) {
			_, err := tt.sec.Options()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	etcdTests := []struct {
		name string
		sec  Etcd
		want []string
	}{
		{"missing CA", Etcd{CA: missing}, []string{"-etcd-ca", missing}},
		{"key without cert", Etcd{Key: in(KeyFile("coordinator"))}, []string{"-etcd-cert and -etcd-key go together"}},
		{"user without password", Etcd{User: "asymptote"}, []string{"-etcd-user and -etcd-password-file go together"}},
		{"password file missing", Etcd{User: "asymptote", PasswordFile: missing}, []string{"-etcd-password-file", missing}},
	}
	for _, tt := range etcdTests {
		t.Run("etcd/"+tt.name, func(t *testing.T) {
			_, _, _, err := tt.sec.Client()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// And the files Init wrote are good.
	id := Identity{Name: "viewer"}
	good := NATS{CA: in(CAFile), Cert: in(CertFile(id.Name)), Key: in(KeyFile(id.Name)), NKey: in(NKeyFile(id.Name)), Inbox: id.Inbox()}
	if opts, err := good.Options(); err != nil || len(opts) != 3 {
		t.Errorf("the bundle's viewer settings: %d options, %v", len(opts), err)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tc, user, password, err := Etcd{CA: in(CAFile), Cert: in(CertFile("coordinator")), Key: in(KeyFile("coordinator")), User: "u", PasswordFile: pw}.Client()
	if err != nil || tc == nil || len(tc.Certificates) != 1 || user != "u" || password != "s3cret" {
		t.Errorf("etcd settings: tls %v, user %q, password %q, %v", tc != nil, user, password, err)
	}
}

// FuzzSeed feeds arbitrary seed and .creds files to the readers: they
// return an error or a key, never panic, and a key they return signs.
func FuzzSeed(f *testing.F) {
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	f.Add([]byte("# comment\n" + string(seed) + "\n"))
	f.Add([]byte("SU\n"))
	f.Add([]byte("-----BEGIN NATS USER JWT-----\neyJ\n------END NATS USER JWT------\n-----BEGIN USER NKEY SEED-----\n" + string(seed) + "\n------END USER NKEY SEED------\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if kp, err := parseSeed(b); err == nil {
			if _, err := kp.Sign([]byte("nonce")); err != nil {
				t.Errorf("a parsed seed does not sign: %v", err)
			}
		}
		path := filepath.Join(t.TempDir(), "x.creds")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = checkCreds(path)
		_, _ = NATS{NKey: path}.Options()
	})
}

// FuzzTLSFiles feeds arbitrary CA, certificate and key files to the TLS
// loaders of both servers' flags: an error naming the flag, or a
// configuration, never a panic.
func FuzzTLSFiles(f *testing.F) {
	b, err := Init(Plan{Dir: filepath.Join(f.TempDir(), "b")})
	if err != nil {
		f.Fatal(err)
	}
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(b.Dir, name))
		if err != nil {
			f.Fatal(err)
		}
		return data
	}
	f.Add(read(CAFile), read(CertFile("viewer")), read(KeyFile("viewer")))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []byte{}, []byte("junk"))
	f.Fuzz(func(t *testing.T, ca, cert, key []byte) {
		dir := t.TempDir()
		write := func(name string, data []byte) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		caPath, certPath, keyPath := write("ca.pem", ca), write("cert.pem", cert), write("key.pem", key)
		if _, err := (NATS{CA: caPath, Cert: certPath, Key: keyPath}).Options(); err != nil && !strings.Contains(err.Error(), "-nats-") {
			t.Errorf("error names no flag: %v", err)
		}
		if _, _, _, err := (Etcd{CA: caPath, Cert: certPath, Key: keyPath}).Client(); err != nil && !strings.Contains(err.Error(), "-etcd-") {
			t.Errorf("error names no flag: %v", err)
		}
	})
}
