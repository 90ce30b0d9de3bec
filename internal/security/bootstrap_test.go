package security

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestInit checks what a bundle holds: the NATS configuration parses with
// the server's own parser and lists one user per identity with the
// permissions of its role; the certificates chain to the CA, the server's
// names its hosts; secrets are private.
func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "b")
	b, err := Init(Plan{Dir: dir, Hosts: []string{"nats-1", "10.0.0.5"}, Agents: []string{"gpu-01", "gpu-02"}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, id := range b.Identities {
		names = append(names, id.Name)
	}
	if want := []string{"coordinator", "operator", "submitter", "viewer", "agent-gpu-01", "agent-gpu-02"}; !slices.Equal(names, want) {
		t.Errorf("identities %v, want %v", names, want)
	}
	conf := filepath.Join(t.TempDir(), "server.conf")
	rel, _ := filepath.Rel(filepath.Dir(conf), filepath.Join(dir, NATSAuthFile))
	if err := os.WriteFile(conf, []byte("port: 4222\ninclude "+rel+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := natsserver.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("the NATS server does not read %s: %v", NATSAuthFile, err)
	}
	if o.TLSConfig == nil || o.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("TLS %+v; want TLS with client certificates required and verified", o.TLSConfig)
	}
	if len(o.Nkeys) != len(b.Identities) {
		t.Fatalf("%d nkey users, want %d", len(o.Nkeys), len(b.Identities))
	}
	byKey := map[string]*natsserver.NkeyUser{}
	for _, u := range o.Nkeys {
		byKey[u.Nkey] = u
	}
	for _, id := range b.Identities {
		kp, err := parseSeed([]byte(read(t, dir, NKeyFile(id.Name))))
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := kp.PublicKey()
		u := byKey[pub]
		if u == nil {
			t.Errorf("%s: its nkey %s is not a user of the server", id.Name, pub)
			continue
		}
		want := id.Permissions()
		if !slices.Equal(u.Permissions.Publish.Allow, want.Publish) || !slices.Equal(u.Permissions.Subscribe.Allow, want.Subscribe) || (u.Permissions.Response != nil) != want.Responses {
			t.Errorf("%s: the server reads publish %v, subscribe %v, responses %v; want %+v", id.Name, u.Permissions.Publish.Allow, u.Permissions.Subscribe.Allow, u.Permissions.Response != nil, want)
		}
		env := read(t, dir, EnvFile(id.Name))
		for _, line := range []string{"ASYMPTOTE_NATS_NKEY=" + filepath.Join(dir, NKeyFile(id.Name)), "ASYMPTOTE_NATS_INBOX=_INBOX." + id.Name, "ASYMPTOTE_NATS_URL=tls://nats-1:4222"} {
			if !strings.Contains(env, line+"\n") {
				t.Errorf("%s: no %s", EnvFile(id.Name), line)
			}
		}
		if hasEtcd := strings.Contains(env, "ASYMPTOTE_ETCD_CERT="); hasEtcd != (id.Role == RoleCoordinator) {
			t.Errorf("%s: etcd credentials %v; only the coordinator is an etcd client", id.Name, hasEtcd)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(read(t, dir, CAFile)))
	server := cert(t, dir, ServerFile)
	if _, err := server.Verify(x509.VerifyOptions{Roots: pool, DNSName: "nats-1"}); err != nil {
		t.Errorf("server certificate for nats-1: %v", err)
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: pool, DNSName: "10.0.0.5"}); err != nil {
		t.Errorf("server certificate for 10.0.0.5: %v", err)
	}
	client := cert(t, dir, CertFile("coordinator"))
	if _, err := client.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil || client.Subject.CommonName != "asymptote-coordinator" {
		t.Errorf("coordinator's client certificate %q: %v", client.Subject.CommonName, err)
	}
	for _, f := range []string{CAKeyFile, ServerKeyFile, KeyFile("viewer"), NKeyFile("viewer"), EnvFile("viewer")} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", f, fi.Mode(), err)
		}
	}
	script := read(t, dir, EtcdScriptFile)
	for _, want := range []string{"role grant-permission asymptote --prefix=true readwrite /asymptote/", "user add asymptote-coordinator --no-password", "auth enable"} {
		if !strings.Contains(script, want) {
			t.Errorf("%s lacks %q", EtcdScriptFile, want)
		}
	}
}

func cert(t *testing.T, dir, name string) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode([]byte(read(t, dir, name)))
	if blk == nil {
		t.Fatalf("%s: no PEM", name)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestInitAgain: running Init again keeps every key, adds new agents, and
// rotates exactly the identities asked for.
func TestInitAgain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "b")
	if _, err := Init(Plan{Dir: dir, Agents: []string{"gpu-01"}}); err != nil {
		t.Fatal(err)
	}
	files := []string{CAFile, CAKeyFile, ServerFile, NKeyFile("viewer"), CertFile("viewer"), NKeyFile("agent-gpu-01"), CertFile("agent-gpu-01")}
	before := map[string]string{}
	for _, f := range files {
		before[f] = read(t, dir, f)
	}
	b, err := Init(Plan{Dir: dir, Agents: []string{"gpu-02"}, Rotate: []string{"agent-gpu-01"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Identities) != 6 {
		t.Errorf("%d identities, want the 4 fixed ones and both agents", len(b.Identities))
	}
	for _, f := range files {
		rotated := strings.HasPrefix(f, "agent-gpu-01")
		if changed := read(t, dir, f) != before[f]; changed != rotated {
			t.Errorf("%s changed %v, want %v", f, changed, rotated)
		}
	}
	if !strings.Contains(read(t, dir, NATSAuthFile), "# agent-gpu-02 (agent)") {
		t.Error("the new agent is not in the NATS configuration")
	}
	// HTTP tokens: kept across runs, new when rotated, listed by hash.
	viewer, submitter := read(t, dir, HTTPTokenFile("viewer")), read(t, dir, HTTPTokenFile("submitter"))
	if _, err := Init(Plan{Dir: dir, Rotate: []string{"viewer"}}); err != nil {
		t.Fatal(err)
	}
	if read(t, dir, HTTPTokenFile("viewer")) == viewer || read(t, dir, HTTPTokenFile("submitter")) != submitter {
		t.Error("rotating viewer should give it a new HTTP token and keep submitter's")
	}
	list := read(t, dir, HTTPTokensFile)
	for _, name := range []string{"operator", "submitter", "viewer"} {
		sum := sha256.Sum256([]byte(strings.TrimSpace(read(t, dir, HTTPTokenFile(name)))))
		if !strings.Contains(list, name+" "+name+" "+hex.EncodeToString(sum[:])) {
			t.Errorf("%s lacks %s's token hash:\n%s", HTTPTokensFile, name, list)
		}
	}
	if strings.Contains(list, "coordinator") || strings.Contains(list, "agent-") || strings.Contains(list, strings.TrimSpace(viewer)) {
		t.Errorf("%s lists a coordinator, an agent or a token itself:\n%s", HTTPTokensFile, list)
	}
	bad := []struct {
		plan Plan
		want string
	}{
		{Plan{Dir: dir, Rotate: []string{"agent-gpu-09"}}, "-rotate agent-gpu-09: no such identity"},
		{Plan{Dir: dir, Revoke: []string{"viewer"}}, "only agents can be revoked"},
		{Plan{Dir: dir, Revoke: []string{"agent-gpu-09"}}, "-revoke agent-gpu-09: no such identity"},
		{Plan{Dir: dir, Agents: []string{"gpu.01"}}, `agent node ID "gpu.01"`},
	}
	for _, tt := range bad {
		if _, err := Init(tt.plan); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Init(%+v): %v, want %q", tt.plan, err, tt.want)
		}
	}
}

// TestPermissionsDocumented: docs/security.md's table names every subject
// each identity may publish and subscribe to, and the history reads.
func TestPermissionsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for line := range strings.Lines(string(doc)) {
		if name, ok := strings.CutPrefix(line, "| `"); ok {
			name, _, _ = strings.Cut(name, "`")
			rows[name] = line
		}
	}
	agent, err := Agent("NODE")
	if err != nil {
		t.Fatal(err)
	}
	team, err := Team("TEAM")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range append(append(slices.Clone(fixedIdentities), agent), team...) {
		row, ok := rows[id.Name]
		if !ok {
			t.Errorf("docs/security.md has no row for %s", id.Name)
			continue
		}
		p := id.Permissions()
		for _, s := range append(p.Publish, p.Subscribe...) {
			if slices.Contains(historyReads, s) || slices.Contains(checkpointStore, s) {
				if !strings.Contains(string(doc), "`"+s+"`") && !strings.Contains(string(doc), "`"+strings.TrimSuffix(s, ".>")+"` (and `.>`)") {
					t.Errorf("docs/security.md does not list the JetStream subject %s", s)
				}
				continue
			}
			if !strings.Contains(row, "`"+s+"`") && !(s == ">" && strings.Contains(row, "everything (`>`)")) {
				t.Errorf("docs/security.md's row for %s does not name %s", id.Name, s)
			}
		}
	}
}

// TestInitTeams: -teams writes a submitter and a viewer for each team,
// whose environment files name the team and the identity the command
// line calls the API as; running again keeps the teams; a name that
// cannot be a team is refused, naming it and what to give instead.
func TestInitTeams(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "b")
	if _, err := Init(Plan{Dir: dir, Teams: []string{"vision", "nlp"}}); err != nil {
		t.Fatal(err)
	}
	b, err := Init(Plan{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, id := range b.Identities {
		names = append(names, id.Name+"@"+id.Team)
	}
	want := []string{"coordinator@", "operator@_all", "submitter@default", "viewer@default",
		"submitter-nlp@nlp", "submitter-vision@vision", "viewer-nlp@nlp", "viewer-vision@vision"}
	if !slices.Equal(names, want) {
		t.Errorf("identities %v, want %v", names, want)
	}
	for name, lines := range map[string][]string{
		"viewer-nlp": {"ASYMPTOTE_TEAM=nlp", "ASYMPTOTE_IDENTITY=viewer-nlp", "ASYMPTOTE_NATS_INBOX=_INBOX.viewer-nlp"},
		"submitter":  {"ASYMPTOTE_TEAM=default", "ASYMPTOTE_IDENTITY=submitter"},
		"operator":   {"ASYMPTOTE_TEAM=_all", "ASYMPTOTE_IDENTITY=operator"},
	} {
		env := read(t, dir, EnvFile(name))
		for _, l := range lines {
			if !strings.Contains(env, l+"\n") {
				t.Errorf("%s lacks %s:\n%s", EnvFile(name), l, env)
			}
		}
	}
	// Each person's HTTP token carries the team, so the dashboard shows
	// it only its team's studies.
	tokens := read(t, dir, HTTPTokensFile)
	for name, team := range map[string]string{"viewer-nlp": "nlp", "submitter-vision": "vision", "submitter": "default", "operator": "_all"} {
		found := false
		for line := range strings.Lines(tokens) {
			f := strings.Fields(line)
			found = found || len(f) == 4 && f[0] == name && f[3] == team
		}
		if !found {
			t.Errorf("%s has no line for %s of team %s:\n%s", HTTPTokensFile, name, team, tokens)
		}
	}
	if env := read(t, dir, EnvFile("coordinator")); strings.Contains(env, "ASYMPTOTE_TEAM") {
		t.Errorf("the coordinator's environment names a team:\n%s", env)
	}
	for team, want := range map[string]string{
		"_all":    "reserved",
		"a.b":     "contains one of",
		"default": "always written, as submitter and viewer",
	} {
		_, err := Init(Plan{Dir: dir, Teams: []string{team}})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "team") {
			t.Errorf("team %q: %v, want an error saying %q", team, err, want)
		}
	}
}
