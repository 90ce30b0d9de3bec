package security

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"asymptote.dev/asymptote/internal/store"
)

// Plan says what Init writes.
type Plan struct {
	// Dir receives every file; it is created private (0700).
	Dir string
	// Hosts are the names and addresses the servers' certificate is
	// valid for (default localhost and 127.0.0.1).
	Hosts []string
	// Agents are node IDs to write agent identities for, besides those
	// already in Dir.
	Agents []string
	// Teams are teams to write submitter-TEAM and viewer-TEAM identities
	// for, besides those already in Dir; the default team's submitter
	// and viewer are always written.
	Teams []string
	// Rotate names identities whose nkey and client certificate are made
	// anew; the old ones stop working once the NATS server reloads its
	// configuration.
	Rotate []string
	// Revoke names agent identities to remove: their files go, and the
	// NATS configuration no longer lists them.
	Revoke []string
	// NATSURL is the URL written into the identities' environment files
	// (default tls://FIRST-HOST:4222).
	NATSURL string
	// Valid is how long new leaf certificates last (default a year); the
	// CA lasts ten years.
	Valid time.Duration
	// Now is the certificates' start (default time.Now); tests set it.
	Now func() time.Time
}

// Bundle is what Init wrote.
type Bundle struct {
	Dir        string
	Identities []Identity
	// Written lists the files written or rewritten, relative to Dir.
	Written []string
}

// NATS returns the NATS settings of the identity name, as its environment
// file gives them.
func (b *Bundle) NATS(name string) NATS {
	return NATS{
		CA: filepath.Join(b.Dir, CAFile), Cert: filepath.Join(b.Dir, CertFile(name)), Key: filepath.Join(b.Dir, KeyFile(name)),
		NKey: filepath.Join(b.Dir, NKeyFile(name)), Inbox: Identity{Name: name}.Inbox(),
	}
}

// Identity returns the identity name of the bundle, and false when it
// has none of that name.
func (b *Bundle) Identity(name string) (Identity, bool) {
	for _, id := range b.Identities {
		if id.Name == name {
			return id, true
		}
	}
	return Identity{}, false
}

// Etcd returns the etcd settings of the identity name: its client
// certificate, whose common name is its etcd user.
func (b *Bundle) Etcd(name string) Etcd {
	return Etcd{CA: filepath.Join(b.Dir, CAFile), Cert: filepath.Join(b.Dir, CertFile(name)), Key: filepath.Join(b.Dir, KeyFile(name))}
}

// File names in a bundle directory.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
	// NATSAuthFile is the TLS and authorization part of a NATS server
	// configuration; include it from the server's own file.
	NATSAuthFile = "nats-auth.conf"
	// NATSRouteTLSFile is the TLS block of a NATS cluster's routes:
	// include it inside the cluster block.
	NATSRouteTLSFile = "nats-route-tls.conf"
	// EtcdScriptFile holds the etcdctl commands that set up etcd's RBAC.
	EtcdScriptFile = "etcd-rbac.sh"
)

// CertFile, KeyFile, NKeyFile and EnvFile name an identity's files.
func CertFile(name string) string { return name + ".pem" }
func KeyFile(name string) string  { return name + "-key.pem" }
func NKeyFile(name string) string { return name + ".nk" }
func EnvFile(name string) string  { return name + ".env" }

// etcdUser is the etcd user (and client certificate common name) of an
// identity; only the coordinator and etcd's root have one.
func etcdUser(name string) string { return "asymptote-" + name }

// EtcdRole is the etcd role limited to the deployment's key prefix.
const EtcdRole = "asymptote"

// Init writes, or completes, a bundle in p.Dir: a CA and a server
// certificate (kept when present), and for each identity a client
// certificate, an nkey seed and an environment file; then the NATS
// authorization and the etcd RBAC commands for all of them. Running it
// again adds new agents and rotates or revokes what p asks, and keeps
// everything else.
func Init(p Plan) (*Bundle, error) {
	if p.Dir == "" {
		return nil, errors.New("secure init: give the directory to write to")
	}
	if len(p.Hosts) == 0 {
		p.Hosts = []string{"localhost", "127.0.0.1"}
	}
	if p.NATSURL == "" {
		p.NATSURL = "tls://" + net.JoinHostPort(p.Hosts[0], "4222")
	}
	if p.Valid == 0 {
		p.Valid = 365 * 24 * time.Hour
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("secure init: %w", err)
	}
	dir, err := filepath.Abs(p.Dir)
	if err != nil {
		return nil, err
	}
	w := &writer{dir: dir}
	ids, err := identities(dir, p)
	if err != nil {
		return nil, err
	}
	for _, name := range p.Revoke {
		for _, f := range []string{CertFile(name), KeyFile(name), NKeyFile(name), EnvFile(name)} {
			if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
	}
	ca, err := w.authority(p)
	if err != nil {
		return nil, err
	}
	if err := w.leaf(ca, "server", ServerFile, ServerKeyFile, p, false); err != nil {
		return nil, err
	}
	// etcd's root user authenticates by this certificate to run the RBAC
	// commands; it is no identity of the bus.
	if err := w.leaf(ca, "root", CertFile("etcd-root"), KeyFile("etcd-root"), p, false); err != nil {
		return nil, err
	}
	keys := map[string]string{}
	for _, id := range ids {
		rotate := slices.Contains(p.Rotate, id.Name)
		if err := w.leaf(ca, etcdUser(id.Name), CertFile(id.Name), KeyFile(id.Name), p, rotate); err != nil {
			return nil, err
		}
		pub, err := w.nkey(id, rotate)
		if err != nil {
			return nil, err
		}
		keys[id.Name] = pub
		if err := w.env(id, p.NATSURL); err != nil {
			return nil, err
		}
	}
	if err := w.httpTokens(ids, p.Rotate); err != nil {
		return nil, err
	}
	if err := w.file(NATSAuthFile, []byte(natsAuth(dir, ids, keys)), 0o600); err != nil {
		return nil, err
	}
	if err := w.file(NATSRouteTLSFile, []byte(routeTLS(dir)), 0o600); err != nil {
		return nil, err
	}
	if err := w.file(EtcdScriptFile, []byte(etcdScript(dir)), 0o700); err != nil {
		return nil, err
	}
	return &Bundle{Dir: dir, Identities: ids, Written: w.written}, nil
}

// identities are the fixed ones, the agents already in dir and those p
// adds, less those p revokes; rotating a name that is none of them is an
// error.
func identities(dir string, p Plan) ([]Identity, error) {
	ids := slices.Clone(fixedIdentities)
	existing, err := named(dir, "agent-")
	if err != nil {
		return nil, err
	}
	nodes := append(slices.Clone(p.Agents), existing...)
	slices.Sort(nodes)
	for _, n := range slices.Compact(nodes) {
		id, err := Agent(n)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if existing, err = named(dir, "submitter-"); err != nil {
		return nil, err
	}
	teams := append(slices.Clone(p.Teams), existing...)
	slices.Sort(teams)
	for _, team := range slices.Compact(teams) {
		tids, err := Team(team)
		if err != nil {
			return nil, err
		}
		ids = append(ids, tids...)
	}
	for _, name := range p.Revoke {
		if !strings.HasPrefix(name, "agent-") {
			return nil, fmt.Errorf("-revoke %s: only agents can be revoked; rotate the others (-rotate %s)", name, name)
		}
		if !slices.ContainsFunc(ids, func(id Identity) bool { return id.Name == name }) {
			return nil, fmt.Errorf("-revoke %s: no such identity in %s", name, dir)
		}
		ids = slices.DeleteFunc(ids, func(id Identity) bool { return id.Name == name })
	}
	for _, name := range p.Rotate {
		if !slices.ContainsFunc(ids, func(id Identity) bool { return id.Name == name }) {
			return nil, fmt.Errorf("-rotate %s: no such identity; the identities are coordinator, operator, submitter, viewer, submitter-TEAM, viewer-TEAM and agent-NODE", name)
		}
	}
	sortIdentities(ids)
	return ids, nil
}

// named returns what follows prefix in the names of the identities whose
// nkey seeds are in dir: the node IDs of "agent-", the teams of
// "submitter-".
func named(dir, prefix string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, NKeyFile(prefix+"*")))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), prefix), ".nk")
	}
	return out, nil
}

type writer struct {
	dir     string
	written []string
}

func (w *writer) path(name string) string { return filepath.Join(w.dir, name) }

func (w *writer) exists(name string) bool {
	_, err := os.Stat(w.path(name))
	return err == nil
}

// file writes name atomically with perm.
func (w *writer) file(name string, data []byte, perm fs.FileMode) error {
	tmp := w.path(name + ".tmp")
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("secure init: %w", err)
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, w.path(name)); err != nil {
		return fmt.Errorf("secure init: %w", err)
	}
	w.written = append(w.written, name)
	return nil
}

type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// authority loads the CA in the directory, or makes one.
func (w *writer) authority(p Plan) (*authority, error) {
	if w.exists(CAFile) {
		pair, err := tls.LoadX509KeyPair(w.path(CAFile), w.path(CAKeyFile))
		if err != nil {
			return nil, fmt.Errorf("secure init: the CA in %s: %w", w.dir, err)
		}
		cert, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return nil, err
		}
		key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("secure init: the CA key in %s is not ECDSA", w.dir)
		}
		return &authority{cert: cert, key: key}, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := p.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "asymptote CA", Organization: []string{"asymptote"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if err := w.pair(CAFile, CAKeyFile, der, key); err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key}, nil
}

// leaf issues a certificate signed by ca to common name cn, unless one is
// already there and renew is false. The server's certificate is valid
// for p.Hosts; the others are client certificates.
func (w *writer) leaf(ca *authority, cn, certFile, keyFile string, p Plan, renew bool) error {
	if !renew && w.exists(certFile) && w.exists(keyFile) {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := p.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"asymptote"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(p.Valid),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if certFile == ServerFile {
		// etcd members also dial each other with it.
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		for _, h := range p.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return err
	}
	return w.pair(certFile, keyFile, der, key)
}

func (w *writer) pair(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := w.file(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return w.file(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

// nkey returns the identity's public nkey, making a seed unless one is
// there and rotate is false.
func (w *writer) nkey(id Identity, rotate bool) (string, error) {
	name := NKeyFile(id.Name)
	if !rotate && w.exists(name) {
		b, err := os.ReadFile(w.path(name))
		if err != nil {
			return "", err
		}
		kp, err := parseSeed(b)
		if err != nil {
			return "", fmt.Errorf("secure init: %s: %w", w.path(name), err)
		}
		return kp.PublicKey()
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", err
	}
	seed, err := kp.Seed()
	if err != nil {
		return "", err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", err
	}
	text := fmt.Sprintf("# asymptote %s (%s): NATS nkey seed, public key %s. Keep it secret.\n%s\n", id.Name, id.Role, pub, seed)
	return pub, w.file(name, []byte(text), 0o600)
}

// env writes the identity's environment file: the ASYMPTOTE_ variables
// its commands read (source it with `set -a; . FILE; set +a`, or give it
// to systemd as EnvironmentFile).
func (w *writer) env(id Identity, natsURL string) error {
	lines := []string{
		"# asymptote " + string(id.Role) + " identity " + id.Name + " (docs/security.md)",
		"ASYMPTOTE_NATS_URL=" + natsURL,
		"ASYMPTOTE_NATS_CA=" + w.path(CAFile),
		"ASYMPTOTE_NATS_CERT=" + w.path(CertFile(id.Name)),
		"ASYMPTOTE_NATS_KEY=" + w.path(KeyFile(id.Name)),
		"ASYMPTOTE_NATS_NKEY=" + w.path(NKeyFile(id.Name)),
		"ASYMPTOTE_NATS_INBOX=" + id.Inbox(),
	}
	switch id.Role {
	case RoleCoordinator:
		lines = append(lines,
			"ASYMPTOTE_ETCD_CA="+w.path(CAFile),
			"ASYMPTOTE_ETCD_CERT="+w.path(CertFile(id.Name)),
			"ASYMPTOTE_ETCD_KEY="+w.path(KeyFile(id.Name)),
			"ASYMPTOTE_HTTP_TOKENS="+w.path(HTTPTokensFile),
			"ASYMPTOTE_HTTP_CERT="+w.path(ServerFile),
			"ASYMPTOTE_HTTP_KEY="+w.path(ServerKeyFile))
	case RoleAgent:
		lines = append(lines, "ASYMPTOTE_NODE_ID="+id.Node)
	case RoleOperator, RoleSubmitter, RoleViewer:
		// The client calls the API on this identity's own subjects.
		lines = append(lines, "ASYMPTOTE_TEAM="+id.Team, "ASYMPTOTE_IDENTITY="+id.Name)
	}
	if usesHTTP(id.Role) {
		// The Python client's token (docs/python.md).
		lines = append(lines, "ASYMPTOTE_TOKEN_FILE="+w.path(HTTPTokenFile(id.Name)))
	}
	return w.file(EnvFile(id.Name), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// natsAuth is the TLS and authorization blocks of the NATS server
// configuration: TLS required, client certificates verified against the
// CA, and one nkey user per identity with its permissions.
func natsAuth(dir string, ids []Identity, keys map[string]string) string {
	var b strings.Builder
	b.WriteString("# Written by `asymptote secure init`; include it from the NATS server's\n")
	b.WriteString("# configuration. Each identity is an nkey user with the subjects of its\n")
	b.WriteString("# job and no others (docs/security.md). Rewrite it with secure init and\n")
	b.WriteString("# reload the server (nats-server --signal reload) to add, rotate or\n# revoke an identity.\n\n")
	fmt.Fprintf(&b, "tls {\n  cert_file: %q\n  key_file: %q\n  ca_file: %q\n  verify: true\n  timeout: 2\n}\n\n",
		filepath.Join(dir, ServerFile), filepath.Join(dir, ServerKeyFile), filepath.Join(dir, CAFile))
	b.WriteString("authorization {\n  users: [\n")
	for _, id := range ids {
		natsUser(&b, id, keys[id.Name])
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// routeTLS is the TLS block of the routes between NATS servers: each
// presents the server certificate and verifies the other's.
func routeTLS(dir string) string {
	return fmt.Sprintf("# Written by `asymptote secure init`: the routes between NATS servers use\n# TLS both ways. Include it inside the cluster block.\ntls {\n  cert_file: %q\n  key_file: %q\n  ca_file: %q\n  verify: true\n  timeout: 2\n}\n",
		filepath.Join(dir, ServerFile), filepath.Join(dir, ServerKeyFile), filepath.Join(dir, CAFile))
}

// etcdScript is the etcdctl commands (etcd 3.4's etcdctl and newer) that
// give the coordinator a role limited to the deployment's key prefix, and
// the flags etcd needs for client certificates.
func etcdScript(dir string) string {
	q := func(f string) string { return shellQuote(filepath.Join(dir, f)) }
	return fmt.Sprintf(`#!/bin/sh
# Written by `+"`asymptote secure init`"+` (docs/security.md). Run etcd with TLS and
# client certificates, for example:
#
#   etcd --cert-file %[1]s --key-file %[2]s \
#     --trusted-ca-file %[3]s --client-cert-auth \
#     --listen-client-urls https://0.0.0.0:2379 --advertise-client-urls https://HOST:2379 ...
#
# then run this script once, with ETCD_ENDPOINTS set (default
# https://127.0.0.1:2379). With --client-cert-auth a certificate's common
# name is its etcd user: %[5]s for the coordinator, root for
# this script. The coordinator's role may read and write %[6]s only.
set -eu
export ETCDCTL_API=3
e() {
  etcdctl --endpoints "${ETCD_ENDPOINTS:-https://127.0.0.1:2379}" \
    --cacert %[3]s --cert %[4]s --key %[7]s "$@"
}
e user get root >/dev/null 2>&1 || e user add root --no-password
e user grant-role root root
e role get %[8]s >/dev/null 2>&1 || e role add %[8]s
e role grant-permission %[8]s --prefix=true readwrite %[6]s
e user get %[5]s >/dev/null 2>&1 || e user add %[5]s --no-password
e user grant-role %[5]s %[8]s
e auth enable
`, q(ServerFile), q(ServerKeyFile), q(CAFile), q(CertFile("etcd-root")), etcdUser("coordinator"), store.Prefix, q(KeyFile("etcd-root")), EtcdRole)
}

func shellQuote(s string) string {
	if !strings.ContainsAny(s, " '\"$`\\") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
