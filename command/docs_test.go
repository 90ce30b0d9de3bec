package command

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// docFiles are the documents whose stated flag defaults are checked.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs found: %v", err)
	}
	return append(files, filepath.Join("..", "README.md"), filepath.Join("..", "deploy", "README.md"))
}

// docDefault is one default a document states for a flag.
type docDefault struct {
	where   string // file:line
	flag    string
	value   string
	context string // the text before it, which may name the command
}

var (
	// "`-lease-ttl`, default 4s", "`-queue` times them (default 1: ...)",
	// "`-data-dir` (default `.asymptote`)": a flag, then within the same
	// clause the word default and a value.
	flagThenDefault = regexp.MustCompile("`-([a-z][a-z0-9-]*)(?: [^`]*)?`([^`.|]{0,80}?)\\bdefault:? (`[^`]+`|[0-9][^),;|]*)")
	// "(`-queue 1`, the default)".
	valueIsDefault = regexp.MustCompile("`-([a-z][a-z0-9-]*) ([^`]+)`,? \\(?the default")
	// Prose that names a flag's setting without the flag.
	proseDefaults = []struct {
		re   *regexp.Regexp
		flag string
	}{
		{regexp.MustCompile(`lease TTL \(default ([^)]+)\)`), "lease-ttl"},
		{regexp.MustCompile(`heartbeat grace period \(default ([^)]+)\)`), "heartbeat-grace"},
		{regexp.MustCompile(`default (\d+(?:\.\d+)? ?s) lease`), "lease-ttl"},
		{regexp.MustCompile(`[Dd]efault lease (\d+(?:\.\d+)? ?s)\b`), "lease-ttl"},
	}
	// A table's flag cell: "`-max-trials` (at most ...)".
	flagCell = regexp.MustCompile("`-([a-z][a-z0-9-]*)`")
	// Table cells that state a default in words rather than a value.
	wordDefaults = map[string]bool{"etcd's request limit less 64 KiB": true}
)

// statedDefaults finds every flag default that the markdown in src
// states, in sentences and in tables with a "default" and a "flag"
// column. Code blocks are skipped.
func statedDefaults(file, src string) []docDefault {
	var out []docDefault
	lines := strings.Split(src, "\n")
	var para []string
	paraStart := 0
	// scan finds the defaults stated in text, which starts on line.
	scan := func(text string, line int) {
		add := func(flagName, value string, at int) {
			out = append(out, docDefault{
				where: fmt.Sprintf("%s:%d", file, line+1), flag: flagName,
				value: strings.TrimSpace(value), context: text[max(0, at-200):at],
			})
		}
		for _, m := range flagThenDefault.FindAllStringSubmatchIndex(text, -1) {
			add(text[m[2]:m[3]], text[m[6]:m[7]], m[0])
		}
		for _, m := range valueIsDefault.FindAllStringSubmatchIndex(text, -1) {
			add(text[m[2]:m[3]], text[m[4]:m[5]], m[0])
		}
		for _, p := range proseDefaults {
			for _, m := range p.re.FindAllStringSubmatchIndex(text, -1) {
				add(p.flag, text[m[2]:m[3]], m[0])
			}
		}
	}
	flush := func() {
		scan(strings.Join(para, " "), paraStart)
		para = nil
	}
	inCode := false
	var header []string
	for i, line := range lines {
		trim := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trim, "```"):
			flush()
			inCode = !inCode
		case inCode:
		case strings.HasPrefix(trim, "|"):
			flush()
			cells := strings.Split(strings.Trim(trim, "|"), "|")
			for j := range cells {
				cells[j] = strings.TrimSpace(cells[j])
			}
			scan(trim, i)
			if header == nil {
				header = cells
				continue
			}
			def, fl := -1, -1
			for j, h := range header {
				switch strings.ToLower(h) {
				case "default":
					def = j
				case "flag":
					fl = j
				}
			}
			if def < 0 || fl < 0 || len(cells) != len(header) || strings.HasPrefix(cells[0], "---") {
				continue
			}
			if m := flagCell.FindStringSubmatch(cells[fl]); m != nil {
				out = append(out, docDefault{where: fmt.Sprintf("%s:%d", file, i+1), flag: m[1], value: cells[def], context: trim})
			}
		case trim == "":
			header = nil
			flush()
		default:
			header = nil
			if len(para) == 0 {
				paraStart = i
			}
			para = append(para, trim)
		}
	}
	flush()
	return out
}

var (
	leadingDuration = regexp.MustCompile(`^(\d+(?:\.\d+)?) ?(ns|us|µs|ms|s|m|h)\b`)
	leadingNumber   = regexp.MustCompile(`^[0-9][0-9,]*(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?: ?(?:KiB|MiB|GiB|TiB|KB|MB|GB|TB))?`)
)

// sameDefault reports whether the documented value v is f's default.
func sameDefault(f *flag.Flag, v string) (bool, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "`") {
		v = strings.Trim(v, "`")
	}
	if f.DefValue == "" {
		// A default worked out at run time: the flag's help says what.
		return strings.Contains(f.Usage, v), nil
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return v == f.DefValue, nil
	}
	switch def := g.Get().(type) {
	case time.Duration:
		m := leadingDuration.FindStringSubmatch(v)
		if m == nil {
			return false, fmt.Errorf("%q is not a duration", v)
		}
		d, err := time.ParseDuration(m[1] + m[2])
		if err != nil {
			return false, err
		}
		want, _ := time.ParseDuration(f.DefValue)
		return d == want, nil
	case int, int64, uint, uint64, float64:
		m := leadingNumber.FindString(v)
		if m == "" {
			return false, fmt.Errorf("%q is not a number", v)
		}
		m = strings.ReplaceAll(m, ",", "")
		if _, isFloat := def.(float64); isFloat {
			got, err := strconv.ParseFloat(m, 64)
			want, _ := strconv.ParseFloat(f.DefValue, 64)
			return err == nil && got == want, err
		}
		got, err := parseBytes(m)
		want, _ := strconv.ParseInt(f.DefValue, 10, 64)
		return err == nil && got == want, err
	default:
		return v == f.DefValue, nil
	}
}

// TestDocumentedDefaults checks every flag default the docs state against
// the flag sets: a changed default must change the docs with it.
func TestDocumentedDefaults(t *testing.T) {
	clearAsymptoteEnv(t)
	t.Setenv("TMPDIR", "") // the agent's default data directory under /tmp, as documented
	all := allCommandFlags(t)
	checked := 0
	for _, file := range docFiles(t) {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range statedDefaults(filepath.Base(filepath.Dir(file))+"/"+filepath.Base(file), string(src)) {
			if wordDefaults[d.value] {
				continue
			}
			// The commands with the flag; those the context names, when
			// it names any.
			var having, named []string
			for cmd, fs := range all {
				if fs.Lookup(d.flag) == nil {
					continue
				}
				having = append(having, cmd)
				if strings.Contains(d.context, "asymptote "+cmd) {
					named = append(named, cmd)
				}
			}
			if len(having) == 0 {
				t.Errorf("%s: states a default for -%s, which no command has", d.where, d.flag)
				continue
			}
			if len(named) > 0 {
				having = named
			}
			sort.Strings(having)
			ok := false
			var defs []string
			for _, cmd := range having {
				f := all[cmd].Lookup(d.flag)
				same, err := sameDefault(f, d.value)
				if err != nil {
					t.Errorf("%s: -%s default %q: %v", d.where, d.flag, d.value, err)
				}
				ok = ok || same
				defs = append(defs, fmt.Sprintf("asymptote %s: %q", cmd, f.DefValue))
			}
			checked++
			t.Logf("%s: -%s default %q (%s)", d.where, d.flag, d.value, strings.Join(defs, ", "))
			if !ok {
				t.Errorf("%s: says -%s defaults to %q; the code says %s", d.where, d.flag, d.value, strings.Join(defs, ", "))
			}
		}
	}
	// The docs state a dozen or so; finding none means the parser broke.
	if checked < 8 {
		t.Errorf("checked only %d documented defaults; the patterns no longer find them", checked)
	}
	t.Logf("checked %d documented defaults", checked)
}

// TestStatedDefaultsParser checks the patterns on the forms the docs use.
func TestStatedDefaultsParser(t *testing.T) {
	src := "Timings: the leader lease (`-lease-ttl`, default 4s) bounds\nfailover.\n\n" +
		"accepts as many again (`-queue 1`, the default) and\n\n" +
		"- `asymptote dev STUDY.yaml` on the same `-data-dir` (default `.asymptote`)\n\n" +
		"within about the lease TTL (default 5s) when it dies.\n\n" +
		"```\nnot `-lease-ttl`, default 9s in code\n```\n\n" +
		"| what | default | flag |\n|---|---|---|\n| a spec | 256 KiB | `-max-spec-bytes` |\n\n" +
		"| who | after |\n|---|---|\n| a standby | within the lease TTL (default 4s) |\n"
	var got []string
	for _, d := range statedDefaults("x.md", src) {
		got = append(got, d.flag+"="+d.value)
	}
	want := []string{"lease-ttl=4s", "queue=1", "data-dir=`.asymptote`", "lease-ttl=5s", "max-spec-bytes=256 KiB", "lease-ttl=4s"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("statedDefaults = %q, want %q", got, want)
	}
}

// TestNATSConfigs parses the NATS configurations in deploy/nats with the
// embedded server's parser: the per-host one, and the three that run a
// cluster on one host, which must not share a port or a store directory
// and must route to one another.
func TestNATSConfigs(t *testing.T) {
	dir := filepath.Join("..", "deploy", "nats")
	load := func(name string) *natsserver.Options {
		t.Helper()
		o, err := natsserver.ProcessConfigFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return o
	}
	multi := load("cluster.conf")
	if multi.Port != 4222 || multi.Cluster.Port != 6222 || multi.StoreDir == "" || multi.Cluster.Name != "asymptote" {
		t.Errorf("cluster.conf: port %d, cluster %q port %d, store %q", multi.Port, multi.Cluster.Name, multi.Cluster.Port, multi.StoreDir)
	}
	// The shared settings reach every server through the include.
	const maxPayload = 8 << 20
	local, err := filepath.Glob(filepath.Join(dir, "local", "nats-*.conf"))
	if err != nil || len(local) != 3 {
		t.Fatalf("want three configs in deploy/nats/local, got %v (%v)", local, err)
	}
	ports := map[int]string{}
	stores := map[string]string{}
	names := map[string]bool{}
	servers := []*natsserver.Options{multi}
	for _, path := range local {
		name, _ := filepath.Rel(dir, path)
		o := load(name)
		servers = append(servers, o)
		if !o.JetStream || o.Cluster.Name != "asymptote" || names[o.ServerName] || o.ServerName == "" {
			t.Errorf("%s: jetstream %v, cluster %q, server name %q (each must be named, and differently)", name, o.JetStream, o.Cluster.Name, o.ServerName)
		}
		names[o.ServerName] = true
		for _, p := range []int{o.Port, o.Cluster.Port, o.HTTPPort} {
			if p <= 0 {
				t.Errorf("%s: a port is unset (client %d, cluster %d, http %d)", name, o.Port, o.Cluster.Port, o.HTTPPort)
			}
			if other, dup := ports[p]; dup {
				t.Errorf("%s and %s both use port %d", other, name, p)
			}
			ports[p] = name
		}
		if other, dup := stores[o.StoreDir]; dup || o.StoreDir == "" {
			t.Errorf("%s: store dir %q, also %s's", name, o.StoreDir, other)
		}
		stores[o.StoreDir] = name
		routes := map[string]bool{}
		for _, r := range o.Routes {
			routes[r.Host] = true
		}
		if len(routes) != 3 {
			t.Errorf("%s routes to %v, want the three servers' cluster ports", name, o.Routes)
		}
	}
	for i, o := range servers {
		if o.MaxPayload != maxPayload || o.JetStreamMaxStore != 8<<30 {
			t.Errorf("server %d: max_payload %d, max_file_store %d; want common.conf's %d and %d", i, o.MaxPayload, o.JetStreamMaxStore, maxPayload, 8<<30)
		}
	}
}
