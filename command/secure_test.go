package command

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"asymptote.dev/asymptote/internal/security"
	"asymptote.dev/asymptote/internal/security/securitytest"
)

// TestSecureInit runs `asymptote secure init` twice: the second run adds
// an agent and keeps the CA; a bad invocation is a usage error.
func TestSecureInit(t *testing.T) {
	clearAsymptoteEnv(t)
	dir := filepath.Join(t.TempDir(), "secure")
	code, out, errs := runCLI(t, "secure", "init", dir, "-agents", "gpu-01")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"identities: coordinator, operator, submitter, viewer, agent-gpu-01", "nats-auth.conf", "etcd-rbac.sh"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errs = runCLI(t, "secure", "init", dir, "-agents", "gpu-02"); code != 0 || !strings.Contains(out, "agent-gpu-01, agent-gpu-02") {
		t.Fatalf("second run: exit %d: %s%s", code, out, errs)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); string(again) != string(ca) {
		t.Error("the second run replaced the CA")
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"secure", dir}, "want: asymptote secure init DIR"},
		{[]string{"secure", "init", dir, "-rotate", "nobody"}, "-rotate nobody: no such identity"},
		{[]string{"secure", "init", dir, "-valid", "-1h"}, "-valid -1h0m0s: want a positive duration"},
	} {
		if code, _, errs := runCLI(t, tt.args...); code != 2 || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tt.args, code, errs, tt.want)
		}
	}
}

// TestSecurityFlagErrors: a bad security file is a usage error naming its
// flag, from the environment as from the command line, before anything
// connects.
func TestSecurityFlagErrors(t *testing.T) {
	clearAsymptoteEnv(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"status", "-nats-ca", missing}, want: "-nats-ca " + missing},
		{args: []string{"status"}, env: map[string]string{"ASYMPTOTE_NATS_NKEY": missing}, want: "-nats-nkey " + missing},
		{args: []string{"agent", "-nats-cert", missing, "-node-id", "a1", "-data-dir", t.TempDir()}, want: "-nats-cert and -nats-key go together"},
		{args: []string{"coordinator", "-nats-url", "tls://127.0.0.1:1", "-etcd-endpoints", "https://127.0.0.1:1", "-etcd-user", "u"}, want: "-etcd-user and -etcd-password-file go together"},
		{args: []string{"coordinator", "-etcd-ca", missing}, want: "for external servers"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, _, errs := runCLI(t, tt.args...)
			if code != 2 || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, %q; want 2 and %q", code, errs, tt.want)
			}
		})
	}
}

// TestSecureNATSConfig parses deploy/nats/secure.conf, laid out as
// docs/security.md says (/etc/nats/ beside common.conf, the bundle in
// /etc/asymptote/secure/), with the embedded server's parser: TLS with
// client certificates for clients and routes, and one user per identity.
func TestSecureNATSConfig(t *testing.T) {
	clearAsymptoteEnv(t)
	etc := t.TempDir()
	bundle := filepath.Join(etc, "asymptote", "secure")
	if code, _, errs := runCLI(t, "secure", "init", bundle, "-agents", "gpu-01,gpu-02"); code != 0 {
		t.Fatal(errs)
	}
	natsDir := filepath.Join(etc, "nats")
	if err := os.MkdirAll(natsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"secure.conf", "common.conf"} {
		b, err := os.ReadFile(filepath.Join("..", "deploy", "nats", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, natsDir, f, string(b))
	}
	o, err := natsserver.ProcessConfigFile(filepath.Join(natsDir, "secure.conf"))
	if err != nil {
		t.Fatalf("deploy/nats/secure.conf: %v", err)
	}
	if o.TLSConfig == nil || o.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("clients: TLS %+v, want client certificates required and verified", o.TLSConfig)
	}
	if o.Cluster.TLSConfig == nil || o.Cluster.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("routes: TLS %+v, want certificates verified both ways", o.Cluster.TLSConfig)
	}
	if len(o.Nkeys) != 6 || o.HTTPHost != "127.0.0.1" || o.MaxPayload != 8<<20 {
		t.Errorf("%d nkey users (want 6), monitoring on %q (want 127.0.0.1), max_payload %d (common.conf's 8MB)", len(o.Nkeys), o.HTTPHost, o.MaxPayload)
	}
}

// TestDevSecure runs a study through `asymptote dev -secure`: every
// process connects as its own identity over TLS, and the identities'
// environment files name the servers dev started.
func TestDevSecure(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs embedded servers and plugin processes")
	}
	clearAsymptoteEnv(t)
	dir := t.TempDir()
	spec := writeFile(t, dir, "study.yaml", `name: secure-dev
method: synthetic
objective: {metric: val_loss, direction: minimize}
space:
  params: {range: [1e6, 1e8], count: 3, scale: log}
fixed: {unique_tokens: 2e9, epochs: 1, noise: 0.01}
derived: {tokens: unique_tokens * epochs}
resources: {cpu: 0.25, memory: 64MiB}
`)
	data := filepath.Join(dir, "data")
	code, out, errs := runCLI(t, "dev", spec, "-secure", "-data-dir", data, "-nats-port", "-1", "-http", "off", "-agents", "2")
	if code != 0 || !strings.Contains(out, "3 of 3 trials succeeded") {
		t.Fatalf("dev -secure: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	url := regexp.MustCompile(`NATS at (tls://127\.0\.0\.1:\d+)`).FindStringSubmatch(errs)
	if url == nil {
		t.Fatalf("dev printed no TLS NATS URL:\n%s", errs)
	}
	for _, id := range []string{"submitter", "agent-dev-1", "agent-dev-2"} {
		env, err := os.ReadFile(filepath.Join(data, "secure", id+".env"))
		if err != nil || !strings.Contains(string(env), "ASYMPTOTE_NATS_URL="+url[1]+"\n") {
			t.Errorf("%s.env: %v, want ASYMPTOTE_NATS_URL=%s:\n%s", id, err, url[1], env)
		}
	}
}

// TestCoordinatorEtcdRefused: a coordinator whose etcd refuses its
// certificate says so and exits, instead of waiting on an etcd that will
// never answer it.
func TestCoordinatorEtcdRefused(t *testing.T) {
	clearAsymptoteEnv(t)
	b, err := security.Init(security.Plan{Dir: filepath.Join(t.TempDir(), "secure")})
	if err != nil {
		t.Fatal(err)
	}
	endpoint := securitytest.StartEtcd(t, b)
	other, err := security.Init(security.Plan{Dir: filepath.Join(t.TempDir(), "other")})
	if err != nil {
		t.Fatal(err)
	}
	sec := other.Etcd("coordinator")
	sec.CA = b.Etcd("coordinator").CA // trusts etcd, but etcd does not trust it
	code, _, errs := runCLI(t, "coordinator", "-nats-url", "nats://127.0.0.1:1", "-etcd-endpoints", endpoint,
		"-etcd-ca", sec.CA, "-etcd-cert", sec.Cert, "-etcd-key", sec.Key)
	if code != 1 || !strings.Contains(errs, "refused the TLS connection") || !strings.Contains(errs, "bad certificate") && !strings.Contains(errs, "unknown certificate authority") {
		t.Errorf("exit %d, %q; want 1 and etcd's refusal of the certificate", code, errs)
	}
	t.Logf("the user sees: %s", errs)
}
