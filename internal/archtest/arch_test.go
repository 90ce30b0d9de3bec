package archtest

import (
	"bytes"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "asymptote.dev/asymptote"

// rule constrains the transitive imports of the packages matching pattern.
// With allow set, every dependency outside the standard library and this
// module must start with one of its prefixes; deny lists prefixes that must
// not appear at all.
type rule struct {
	pattern  string
	required bool // fail, rather than skip, when no package matches
	allow    []string
	deny     []string
	why      string
}

var rules = []rule{
	{
		pattern:  module + "/sweep",
		required: true,
		allow:    []string{"gonum.org/v1/gonum/", "go.yaml.in/yaml/v3"},
		why:      "the spec and trial model is pure: the coordinator, CLI and tools all embed it; it reads specs with the YAML library alone",
	},
	{
		pattern: module + "/scaling",
		allow:   []string{"gonum.org/v1/gonum/"},
		why:     "scaling-law fitting is pure numerics",
	},
	{
		pattern:  module + "/internal/api",
		required: true,
		deny:     []string{"github.com/nats-io/", "go.etcd.io/etcd/", "github.com/hashicorp/go-plugin", module + "/internal/bus", module + "/internal/store"},
		why:      "the stored documents and the client API's requests and replies are plain data: the leader, the HTTP API, the analysis and the strategies read them, and the bus carries them",
	},
	{
		pattern:  module + "/strategy",
		required: true,
		deny:     []string{"github.com/nats-io/", "go.etcd.io/etcd/", "github.com/hashicorp/go-plugin", module + "/internal/store", module + "/internal/bus", module + "/coordinator", module + "/agent"},
		why:      "adaptive searches are functions of a study's spec and trial records: the leader applies what they decide, and they are tested without a cluster",
	},
	{
		pattern: module + "/plugins/sdk",
		deny:    []string{"github.com/nats-io/", "go.etcd.io/etcd/", "go.etcd.io/bbolt"},
		why:     "method authors link the SDK; it must not drag in the control plane",
	},
	{
		pattern:  module + "/internal/httpapi",
		required: true,
		deny:     []string{module + "/coordinator", module + "/agent", "github.com/hashicorp/go-plugin"},
		why:      "the HTTP API reads etcd and the bus and relays writes to the leader; it runs beside any coordinator, never inside its state",
	},
	{
		pattern:  module + "/internal/export",
		required: true,
		deny:     []string{"go.etcd.io/etcd/", module + "/coordinator", module + "/agent"},
		why:      "export formats records; the CLI and the HTTP API share it",
	},
	{
		pattern:  module + "/internal/resource",
		required: true,
		allow:    []string{},
		why:      "the resource type and its fit rule are shared by the pure spec model, the bus, the leader and the agent, so they need only the standard library",
	},
	{
		pattern:  module + "/internal/backoff",
		required: true,
		allow:    []string{},
		why:      "the retry pacing is shared by the coordinator and the agent; it needs only the standard library",
	},
	{
		pattern:  module + "/internal/health",
		required: true,
		allow:    []string{},
		why:      "the health endpoints serve coordinators and agents alike; each passes its own checks in, so the handler needs only the standard library",
	},
	{
		pattern:  module + "/internal/checkpoint",
		required: true,
		deny:     []string{"go.etcd.io/etcd/", module + "/coordinator", module + "/agent"},
		why:      "checkpoint storage is the layer the agent and the leader share: the agent writes and reads checkpoints without etcd, and neither side's code may leak into it",
	},
	{
		pattern:  module + "/internal/security",
		required: true,
		deny:     []string{"go.etcd.io/etcd/server/", "github.com/nats-io/nats-server/", "github.com/hashicorp/go-plugin", module + "/coordinator", module + "/agent", module + "/internal/node"},
		why:      "connection settings and the bootstrap are read by every command, agents' included: they use the client libraries, nkeys and the standard library's crypto, never a server or the control plane",
	},
	{
		pattern:  module + "/cmd/asymptote",
		required: true,
		deny:     []string{"k8s.io/api/", "k8s.io/apimachinery/"},
		why:      "the Kubernetes API types are for the manifests' test (deploy/kubernetes) alone; the binary runs under Kubernetes without linking its API",
	},
	{
		pattern:  module + "/slurm",
		required: true,
		deny:     []string{"go.etcd.io/etcd/", "github.com/nats-io/", module + "/coordinator", module + "/agent", module + "/internal/store", module + "/internal/bus"},
		why:      "the SLURM provisioner only submits: it reads the cluster's status through a function it is given and runs SLURM's commands, so etcd and the leader never hear of SLURM",
	},
	{
		pattern:  module + "/internal/checkpoint/diskspeed",
		required: true,
		allow:    []string{"golang.org/x/sys/unix"},
		why:      "the disk floor is measured the same way by the store's Go benchmarks and by asymptote bench; it must stay plain files and the standard library, or it would measure more than the disk",
	},
	{
		pattern: module + "/agent/...",
		deny:    []string{"go.etcd.io/etcd/client/"},
		why:     "agents talk to the coordinator over NATS only; etcd is the coordinator's",
	},
}

// pkg is one entry of go list -deps.
type pkg struct {
	path     string
	standard bool
	imports  []string
}

func TestDependencyRules(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	for _, r := range rules {
		t.Run(strings.TrimPrefix(r.pattern, module+"/"), func(t *testing.T) {
			t.Parallel()
			roots := goList(t, goTool, "{{if .Dir}}{{.ImportPath}}{{end}}", r.pattern) // a missing package has no Dir
			if len(roots) == 0 {
				if r.required {
					t.Fatalf("%s matches no package, but the rule requires it to exist", r.pattern)
				}
				t.Logf("%s does not exist yet; skipping its rule", r.pattern)
				return
			}
			deps := map[string]pkg{}
			for _, line := range goList(t, goTool, "{{.ImportPath}}\t{{.Standard}}\t{{join .Imports \" \"}}", "-deps", r.pattern) {
				f := strings.SplitN(line, "\t", 3)
				if len(f) != 3 {
					t.Fatalf("unexpected go list line %q", line)
				}
				deps[f[0]] = pkg{path: f[0], standard: f[1] == "true", imports: strings.Fields(f[2])}
			}
			var bad []string
			for _, p := range deps {
				if reason := r.violation(p); reason != "" {
					bad = append(bad, p.path+" ("+reason+", imported by "+importers(deps, p.path)+")")
				}
			}
			sort.Strings(bad)
			for _, b := range bad {
				t.Errorf("%s depends on %s; the rule exists because %s", r.pattern, b, r.why)
			}
		})
	}
}

// violation says why p breaks the rule, or returns "".
func (r rule) violation(p pkg) string {
	for _, d := range r.deny {
		if strings.HasPrefix(p.path, d) || p.path == strings.TrimSuffix(d, "/") {
			return "denied"
		}
	}
	if r.allow == nil || p.standard || p.path == module || strings.HasPrefix(p.path, module+"/") {
		return ""
	}
	for _, a := range r.allow {
		if strings.HasPrefix(p.path, a) {
			return ""
		}
	}
	return "only the standard library and " + strings.Join(r.allow, ", ") + " are allowed"
}

// importers lists the packages in deps that import path directly.
func importers(deps map[string]pkg, path string) string {
	var out []string
	for _, p := range deps {
		for _, imp := range p.imports {
			if imp == path {
				out = append(out, p.path)
			}
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "the package itself"
	}
	return strings.Join(out, ", ")
}

// goList runs go list -e with the given format and arguments and returns
// its output lines. A pattern that matches nothing gives no lines; -e keeps
// a package another change has left broken from hiding its imports.
func goList(t *testing.T, goTool, format string, args ...string) []string {
	t.Helper()
	cmd := exec.Command(goTool, append([]string{"list", "-e", "-f", format}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "matched no packages") || strings.Contains(stderr.String(), "no required module provides") || strings.Contains(stderr.String(), "directory not found") {
			return nil
		}
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var lines []string
	// Trim newlines only: a package without imports ends its line in an
	// empty field.
	for _, l := range strings.Split(strings.Trim(string(out), "\n"), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestRuleViolation checks the rule logic itself on made-up packages, so a
// rule that can never fire does not pass silently.
func TestRuleViolation(t *testing.T) {
	t.Parallel()
	pure := rule{allow: []string{"gonum.org/v1/gonum/"}}
	sdk := rule{deny: []string{"github.com/nats-io/", "go.etcd.io/bbolt"}}
	tests := []struct {
		r    rule
		p    pkg
		want bool
	}{
		{pure, pkg{path: "strings", standard: true}, false},
		{pure, pkg{path: "gonum.org/v1/gonum/mat"}, false},
		{pure, pkg{path: module + "/sweep"}, false},
		{pure, pkg{path: "github.com/google/go-cmp/cmp"}, true},
		{pure, pkg{path: "gonum.org/v1/plot"}, true},
		{sdk, pkg{path: "github.com/nats-io/nats.go"}, true},
		{sdk, pkg{path: "go.etcd.io/bbolt"}, true},
		{sdk, pkg{path: "go.etcd.io/bboltx"}, true}, // prefix rules are plain prefixes
		{sdk, pkg{path: "github.com/hashicorp/go-plugin"}, false},
	}
	for _, tt := range tests {
		if got := tt.r.violation(tt.p) != ""; got != tt.want {
			t.Errorf("violation(%s) = %t, want %t", tt.p.path, got, tt.want)
		}
	}
}

// importRule forbids the packages matching pattern, except those listed,
// to import what deny lists directly (a prefix, or the package itself).
// Unlike a rule it constrains direct imports only: the excepted package
// exists to be imported in their place.
type importRule struct {
	pattern string
	except  []string
	deny    []string
	why     string
}

var importRules = []importRule{
	{
		pattern: module + "/internal/...",
		except:  []string{module + "/internal/node"},
		deny:    []string{module + "/coordinator", module + "/agent", module + "/bench"},
		why:     "internal/node is the one place that starts coordinators and agents; the test harness and the rest of internal/ go through it",
	},
}

func TestImportRules(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	for _, r := range importRules {
		t.Run(strings.TrimPrefix(r.pattern, module+"/"), func(t *testing.T) {
			t.Parallel()
			lines := goList(t, goTool, "{{.ImportPath}}\t{{join .Imports \" \"}}", r.pattern)
			if len(lines) == 0 {
				t.Fatalf("%s matches no package", r.pattern)
			}
			for _, line := range lines {
				path, imports, _ := strings.Cut(line, "\t")
				for _, imp := range r.denied(path, strings.Fields(imports)) {
					t.Errorf("%s imports %s; the rule exists because %s", path, imp, r.why)
				}
			}
		})
	}
}

// denied returns the imports of the package path that r forbids.
func (r importRule) denied(path string, imports []string) []string {
	for _, e := range r.except {
		if path == e {
			return nil
		}
	}
	var bad []string
	for _, imp := range imports {
		for _, d := range r.deny {
			if imp == d || strings.HasPrefix(imp, d+"/") {
				bad = append(bad, imp)
				break
			}
		}
	}
	return bad
}

// TestImportRuleDenied checks the direct-import logic on made-up imports.
func TestImportRuleDenied(t *testing.T) {
	t.Parallel()
	r := importRules[0]
	tests := []struct {
		path    string
		imports []string
		want    int
	}{
		{module + "/internal/clustertest", []string{module + "/internal/node", "testing"}, 0},
		{module + "/internal/clustertest", []string{module + "/coordinator"}, 1},
		{module + "/internal/x", []string{module + "/agent/methodmgr", module + "/bench"}, 2},
		{module + "/internal/x", []string{module + "/agentsdk"}, 0},
		{module + "/internal/node", []string{module + "/coordinator", module + "/agent"}, 0},
	}
	for _, tt := range tests {
		if got := len(r.denied(tt.path, tt.imports)); got != tt.want {
			t.Errorf("denied(%s, %v): %d imports, want %d", tt.path, tt.imports, got, tt.want)
		}
	}
}
