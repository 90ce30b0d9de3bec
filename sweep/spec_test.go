package sweep

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// mustParse parses src or fails the test.
func mustParse(t *testing.T, src string) *Spec {
	t.Helper()
	s, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror: %v", src, err)
	}
	return s
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	s := mustParse(t, "name: tiny\nmethod: synthetic\n")
	want := &Spec{
		Name:      "tiny",
		Method:    "synthetic",
		Objective: Objective{Metric: "val_loss", Direction: Minimize},
		Seeds:     []int64{0},
		Resources: Resources{CPU: 1, GPU: 0, Memory: 256 << 20},
		Retries:   2,
		Timeout:   time.Hour,
		Source:    []byte("name: tiny\nmethod: synthetic\n"),
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("Parse = %+v, want %+v", s, want)
	}
}

func TestParseFields(t *testing.T) {
	t.Parallel()
	s := mustParse(t, `name: full
method: {name: charlm, version: ">=1.0, <2"}
objective: {metric: val_acc, direction: maximize}
replicates: 3
resources:
  cpu: 0.5
  gpu: 2
  memory: 1.5GB
retries: 0
timeout: 1h30m
priority: -3
`)
	if s.Method != "charlm" || s.MethodVersion != ">=1.0, <2" {
		t.Errorf("method = %q %q, want charlm >=1.0, <2", s.Method, s.MethodVersion)
	}
	if s.Objective != (Objective{"val_acc", Maximize}) {
		t.Errorf("Objective = %+v", s.Objective)
	}
	if !reflect.DeepEqual(s.Seeds, []int64{0, 1, 2}) {
		t.Errorf("Seeds = %v, want [0 1 2]", s.Seeds)
	}
	if s.Resources != (Resources{CPU: 0.5, GPU: 2, Memory: 1_500_000_000}) {
		t.Errorf("Resources = %+v", s.Resources)
	}
	if s.Retries != 0 || s.Timeout != 90*time.Minute || s.Priority != -3 {
		t.Errorf("Retries, Timeout, Priority = %d, %v, %d; want 0, 1h30m, -3", s.Retries, s.Timeout, s.Priority)
	}
}

func TestParseShorthands(t *testing.T) {
	t.Parallel()
	s := mustParse(t, "name: s\nmethod: charlm\nobjective: val_acc\n")
	if s.Objective != (Objective{"val_acc", Minimize}) || s.Method != "charlm" || s.MethodVersion != "" {
		t.Errorf("Parse = objective %+v, method %q %q; want val_acc minimize, charlm", s.Objective, s.Method, s.MethodVersion)
	}
}

func TestParseCheckpoints(t *testing.T) {
	if got := mustParse(t, "name: m\nmethod: x\n").CheckpointPolicy(); got != (Checkpoints{Keep: DefaultCheckpointKeep}) {
		t.Errorf("default policy %+v", got)
	}
	s := mustParse(t, "name: m\nmethod: x\ncheckpoints: {keep: 3, keep_on_success: true, quota: 2GiB}\n")
	if got, want := s.CheckpointPolicy(), (Checkpoints{Keep: 3, KeepOnSuccess: true, Quota: 2 << 30}); got != want {
		t.Errorf("policy %+v, want %+v", got, want)
	}
}

func TestParseMemory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
	}{
		{"512MiB", 512 << 20},
		{"2GiB", 2 << 30},
		{"1.5GB", 1_500_000_000},
		{"512", 512 << 20},
		{"0.5", 1 << 19},
		{"100 KiB", 100 << 10},
		{"1TiB", 1 << 40},
		{"4096B", 4096},
	}
	for _, tt := range tests {
		s := mustParse(t, "name: m\nmethod: x\nresources: {memory: "+tt.in+"}\n")
		if s.Resources.Memory != tt.want {
			t.Errorf("memory %q = %d, want %d", tt.in, s.Resources.Memory, tt.want)
		}
	}
}

// TestParseErrors checks that each bad spec fails with errors naming the
// file, line and field, what is allowed and the fix.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	const head = "name: bad\nmethod: synthetic\n"
	tests := []struct {
		name string
		src  string
		want []string // substrings of the error, in any order
	}{
		{"unknown scale", head + "space:\n  lr: {range: [1e-4, 1e-2], count: 5, scale: logg}\n",
			[]string{`test.yaml:4: space.lr.scale: unknown scale "logg" (did you mean "log"?); allowed: linear, log`}},
		{"unknown top key", head + "spcae:\n  lr: [1]\n",
			[]string{`test.yaml:3: spcae: unknown key "spcae" (did you mean "space"?); allowed:`}},
		{"unknown nested key", head + "resources: {cpus: 2}\n",
			[]string{`test.yaml:3: resources.cpus: unknown key "cpus" (did you mean "cpu"?); allowed: cpu, gpu, memory`}},
		{"checkpoints keep zero", head + "checkpoints: {keep: 0}\n",
			[]string{`test.yaml:3: checkpoints.keep:`}},
		{"checkpoints keep too many", head + "checkpoints: {keep: 100}\n",
			[]string{`test.yaml:3: checkpoints.keep: keep 100 is over the limit of 16 checkpoints per trial`}},
		{"checkpoints keep_on_success not a bool", head + "checkpoints: {keep_on_success: yes please}\n",
			[]string{`test.yaml:3: checkpoints.keep_on_success: want true or false`}},
		{"checkpoints bad quota", head + "checkpoints: {quota: lots}\n",
			[]string{`test.yaml:3: checkpoints.quota:`}},
		{"checkpoints unknown key", head + "checkpoints: {kep: 3}\n",
			[]string{`checkpoints.kep: unknown key "kep" (did you mean "keep"?)`}},
		{"missing name and method", "retries: 1\n",
			[]string{`test.yaml: name: missing`, `test.yaml: method: missing`}},
		{"bad name", "name: Big Study\nmethod: x\n",
			[]string{`test.yaml:1: name: invalid name "Big Study"; use 1 to 63 lower-case letters`}},
		{"bad direction", head + "objective: {direction: minimise}\n",
			[]string{`test.yaml:3: objective.direction: unknown direction "minimise" (did you mean "minimize"?); allowed: minimize, maximize`}},
		{"bad memory", head + "resources: {memory: 2GBi}\n",
			[]string{`test.yaml:3: resources.memory: invalid memory size "2GBi": unknown unit "GBi" (did you mean "GiB"?); write a number and a unit`}},
		{"bad timeout", head + "timeout: 10\n",
			[]string{`test.yaml:3: timeout: want a duration with a unit such as 90s, 10m or 1h30m, got the number 10`}},
		{"bad timeout unit", head + "timeout: 10 minutes\n",
			[]string{`test.yaml:3: timeout: invalid duration "10 minutes"`}},
		{"negative retries", head + "retries: -1\n",
			[]string{`test.yaml:3: retries: want a whole number from 0 to`}},
		{"fractional gpu", head + "resources: {gpu: 0.5}\n",
			[]string{`test.yaml:3: resources.gpu: want a whole number, got 0.5`}},
		{"seeds and replicates", head + "seeds: [0]\nreplicates: 2\n",
			[]string{`test.yaml:4: replicates: set either seeds or replicates, not both`}},
		{"duplicate seed", head + "seeds: [0, 1, 1]\n",
			[]string{`test.yaml:3: seeds: seed 1 is listed twice`}},
		{"string seed", head + "seeds: [a]\n",
			[]string{`test.yaml:3: seeds: want a number, got "a"`}},
		{"axis scalar", head + "space:\n  lr: 0.1\n",
			[]string{`test.yaml:4: space.lr: want a list of values`, `move it to fixed:`}},
		{"axis empty", head + "space:\n  lr: []\n",
			[]string{`test.yaml:4: space.lr: empty list`}},
		{"axis duplicate value", head + "space:\n  params: [1e6, 1000000]\n",
			[]string{`test.yaml:4: space.params: value 1000000 is listed twice`}},
		{"range missing count", head + "space:\n  lr: {range: [0, 1]}\n",
			[]string{`test.yaml:4: space.lr.count: missing`}},
		{"range reversed", head + "space:\n  lr: {range: [1, 0], count: 3}\n",
			[]string{`test.yaml:4: space.lr.range: want low < high, got [1, 0]`}},
		{"log range not positive", head + "space:\n  lr: {range: [0, 1], count: 3, scale: log}\n",
			[]string{`test.yaml:4: space.lr.range: a log scale needs a positive range`}},
		{"range three numbers", head + "space:\n  lr: {range: [0, 1, 2], count: 3}\n",
			[]string{`test.yaml:4: space.lr.range: want exactly two numbers [low, high], got 3 items`}},
		{"values and range", head + "space:\n  lr: {values: [1], range: [0, 1]}\n",
			[]string{`space.lr.range: range cannot be combined with values`}},
		{"defined twice", head + "space:\n  lr: [1, 2]\nfixed:\n  lr: 3\n",
			[]string{`test.yaml:6: fixed.lr: parameter "lr" is already defined at space.lr (line 4)`}},
		{"bad param name", head + "fixed:\n  hidden-size: 3\n",
			[]string{`test.yaml:4: fixed.hidden-size: invalid parameter name "hidden-size"`}},
		{"reserved seed", head + "fixed:\n  seed: 3\n",
			[]string{`test.yaml:4: fixed.seed: "seed" is reserved`}},
		{"fixed list", head + "fixed:\n  a: [1, 2]\n",
			[]string{`test.yaml:4: fixed.a: want a number, string or true/false, got a list`}},
		{"random unknown dist", head + "random:\n  count: 2\n  space:\n    lr: {loguniforn: [1e-4, 1e-2]}\n",
			[]string{`test.yaml:6: random.space.lr.loguniforn: unknown distribution "loguniforn" (did you mean "loguniform"?)`}},
		{"random no count", head + "random:\n  space:\n    d: {uniform: [0, 1]}\n",
			[]string{`test.yaml:3: random.count: missing`}},
		{"random loguniform zero", head + "random:\n  count: 1\n  space:\n    lr: {loguniform: [0, 1]}\n",
			[]string{`test.yaml:6: random.space.lr.loguniform: loguniform needs a positive range`}},
		{"random int fractional", head + "random:\n  count: 1\n  space:\n    n: {int: [1, 2.5]}\n",
			[]string{`random.space.n.int: want whole-number bounds, got [1, 2.5]`}},
		{"random two dists", head + "random:\n  count: 1\n  space:\n    n: {int: [1, 2], uniform: [0, 1]}\n",
			[]string{`test.yaml:6: random.space.n: want one distribution`}},
		{"derived unknown name", head + "fixed:\n  epochs: 3\nderived:\n  tokens: epoch * 2\n",
			[]string{`test.yaml:6: derived.tokens: unknown parameter "epoch" (did you mean "epochs"?); expressions may use: epochs, tokens`}},
		{"derived string param", head + "space:\n  recipe: [a, b]\nderived:\n  x: recipe * 2\n",
			[]string{`test.yaml:6: derived.x: parameter "recipe" (space.recipe) is not a number`}},
		{"derived cycle", head + "derived:\n  a: b + 1\n  b: c * 2\n  c: a\n",
			[]string{`test.yaml:4: derived.a: derived parameters refer to each other in a cycle: a -> b -> c -> a`}},
		{"derived self", head + "derived:\n  a: a + 1\n",
			[]string{`derived.a: derived parameters refer to each other in a cycle: a -> a`}},
		{"derived syntax", head + "fixed: {x: 1}\nderived:\n  a: (x + 1\n",
			[]string{`test.yaml:5: derived.a: invalid expression "(x + 1": column 7: want ")", got ""`}},
		{"derived unknown function", head + "fixed: {x: 1}\nderived:\n  a: sqr(x)\n",
			[]string{`derived.a: invalid expression "sqr(x)": column 4: unknown function "sqr" (did you mean "sqrt"?)`}},
		{"explosion", head + "space:\n  a: {range: [0, 1], count: 1000}\n  b: {range: [0, 1], count: 1000}\nreplicates: 2\n",
			[]string{`test.yaml:3: space: the spec expands to 2000000 trials (1000 a × 1000 b × 2 seeds), over the limit of 1000000`}},
		{"huge range not generated", head + "space:\n  a: {range: [0, 1], count: 1000}\n  b: {range: [0, 1], count: 1001}\n",
			[]string{`test.yaml:5: space.b.count: count 1001 makes the grid larger than the limit of 1000000 trials`}},
		{"objective scalar", head + "objective: [a]\n", []string{`test.yaml:3: objective: want a mapping of direction, metric, got a list`}},
		{"hex number", head + "fixed:\n  a: 0x10\n", []string{`test.yaml:4: fixed.a: 0x10 means a number, boolean or null in some YAML readers but not here`}},
		{"yaml 1.1 bool", head + "space:\n  flag: [yes, no]\n", []string{`test.yaml:4: space.flag: yes means`, `test.yaml:4: space.flag: no means`}},
		{"leading zero", head + "seeds: [010]\n", []string{`seeds: 010 means`}},
		{"odd underscores", head + "fixed: {a: 1__0}\n", []string{`fixed.a: 1__0 means`}},
		{"capital bool", head + "fixed: {a: True}\n", []string{`fixed.a: True means`}},
		{"quoted is fine", head + "fixed: {a: \"True\"}\nretries: x\n", []string{`retries: want a number`}},
		{"too many parameters", head + "fixed: {" + manyParams(1001) + "}\n",
			[]string{`test.yaml:1: the spec defines 1001 parameters, over the limit of 1000`}},
		{"bad version", "name: v\nmethod: {name: charlm, version: \"at least 1\"}\n",
			[]string{`test.yaml:2: method.version: invalid version constraint "at least 1"`}},
		{"not a mapping", "- a\n- b\n",
			[]string{`test.yaml:1: want a mapping of`}},
		{"several errors at once", head + "retries: x\ntimeout: y\npriority: z\n",
			[]string{`test.yaml:3: retries:`, `test.yaml:4: timeout:`, `test.yaml:5: priority:`}},
		// Syntax errors from the YAML reader.
		{"tab indent", head + "space:\n\tlr: [1]\n", []string{`test.yaml:4: tab in indentation`}},
		{"duplicate key", head + "retries: 1\nretries: 2\n", []string{`test.yaml:4: duplicate key "retries" (first on line 3)`}},
		{"duplicate flow key", head + "resources: {cpu: 1, cpu: 2}\n", []string{`test.yaml:3: duplicate key "cpu"`}},
		{"anchor", head + "fixed:\n  a: &x 1\n", []string{`test.yaml:4: anchors (&name) are not supported`}},
		{"alias", head + "fixed:\n  a: *x\n", []string{`test.yaml:4: aliases (*name) are not supported`}},
		{"multi document", head + "---\nname: other\n", []string{`test.yaml:3: several documents in one file are not supported`}},
		{"block scalar", head + "fixed:\n  a: |\n    text\n", []string{`test.yaml:4: block scalars (| and >) are not supported`}},
		{"unclosed flow", head + "seeds: [0, 1\n", []string{`test.yaml:3: unclosed "]"`}},
		{"unterminated quote", head + "fixed: {a: \"x}\n", []string{`test.yaml:3: unterminated quoted string`}},
		{"bad indentation", head + "space:\n    lr: [1]\n  wd: [2]\n", []string{`test.yaml:5: unexpected indentation`}},
		{"key without colon", head + "retries\n", []string{`test.yaml:3: want "key: value", got "retries"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Parse("test.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", tt.src, s)
			}
			if s != nil {
				t.Errorf("Parse returned a spec with its error")
			}
			var se *SpecError
			if !errors.As(err, &se) {
				t.Errorf("Parse error %v is not a *SpecError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse(%q) error:\n%v\nwant it to contain:\n%s", tt.src, err, w)
				}
			}
		})
	}
}

func manyParams(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("p%d: %d", i, i)
	}
	return strings.Join(parts, ", ")
}

func TestSpecErrorFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  SpecError
		want string
	}{
		{SpecError{"a.yaml", 7, "space.lr", "bad"}, "a.yaml:7: space.lr: bad"},
		{SpecError{"a.yaml", 0, "name", "missing"}, "a.yaml: name: missing"},
		{SpecError{"a.yaml", 3, "", "tab"}, "a.yaml:3: tab"},
		{SpecError{"", 0, "", "bare"}, "bare"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestParseFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(path, []byte("name: f\nmethod: x\nretries: -1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":3: retries:") {
		t.Errorf("ParseFile error = %v, want it to start with %s:3: retries:", err, path)
	}
	if _, err := ParseFile(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ParseFile(missing) error = %v, want os.ErrNotExist", err)
	}
}

func TestHash(t *testing.T) {
	t.Parallel()
	base := mustParse(t, "name: h\nmethod: x\nspace:\n  a: [1e6, 2]\nfixed: {b: 1, c: z}\n")
	same := []string{
		"# comment\nmethod: x\nname: h\nfixed: {c: z, b: 1}\nspace:\n  a: [1000000, 2.0]\n",
		"name: h\nmethod: x\nspace: {a: [1_000_000, 2]}\nfixed:\n  c: \"z\"\n  b: 1\nseeds: [0]\nretries: 2\n",
	}
	for _, src := range same {
		if got := mustParse(t, src).Hash(); got != base.Hash() {
			t.Errorf("Hash of\n%s= %s, want %s (same meaning)", src, got, base.Hash())
		}
	}
	different := []string{
		"name: h\nmethod: x\nspace:\n  a: [2, 1e6]\nfixed: {b: 1, c: z}\n",
		"name: h\nmethod: x\nspace:\n  a: [1e6, 2]\nfixed: {b: 1, c: z}\npriority: 1\n",
		"name: h\nmethod: x\nspace:\n  a: [1e6, 2]\nfixed: {b: 1, c: \"1\"}\n",
		"name: h2\nmethod: x\nspace:\n  a: [1e6, 2]\nfixed: {b: 1, c: z}\n",
	}
	for _, src := range different {
		if got := mustParse(t, src).Hash(); got == base.Hash() {
			t.Errorf("Hash of\n%s= %s, the same as a different spec", src, got)
		}
	}
}

// TestDocsExamples parses the YAML examples in docs/spec.md, so the
// reference cannot drift from the parser.
func TestDocsExamples(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "spec.md"))
	if err != nil {
		t.Skipf("docs/spec.md not found: %v", err)
	}
	blocks := strings.Split(string(doc), "```yaml\n")[1:]
	if len(blocks) < 2 {
		t.Fatalf("docs/spec.md has %d yaml examples, want at least 2", len(blocks))
	}
	for i, b := range blocks {
		src := b[:strings.Index(b, "```")]
		if !strings.HasPrefix(src, "name:") {
			continue // a fragment, not a whole spec
		}
		s, err := Parse(fmt.Sprintf("spec.md example %d", i+1), []byte(src))
		if err != nil {
			t.Errorf("example %d:\n%s\n%v", i+1, src, err)
			continue
		}
		trials, err := s.Expand()
		if err != nil {
			t.Errorf("example %d: %v", i+1, err)
		}
		if i == 0 && len(trials) != 1920 {
			t.Errorf("the complete example expands to %d trials; the text says 1,920", len(trials))
		}
	}
}

func TestHalvingContinue(t *testing.T) {
	base := "name: h\nmethod: synthetic\nspace:\n  wd: [1, 2]\nfixed: {tokens: 1e6}\nsearch:\n  halving: {fidelity: tokens, max: 9e6"
	s, err := Parse("h.yaml", []byte(base+", continue: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Search.Halving.Continue {
		t.Error("continue: true decoded as false")
	}
	if s, err := Parse("h.yaml", []byte(base+"}\n")); err != nil || s.Search.Halving.Continue {
		t.Errorf("without continue: %v, %v; want promotions to restart by default", s.Search.Halving, err)
	}
	if _, err := Parse("h.yaml", []byte(base+", continue: yes please}\n")); err == nil || !strings.Contains(err.Error(), "search.halving.continue: want true or false") {
		t.Errorf("continue: yes please: %v, want an error naming the field", err)
	}
}

// TestASHAPromote checks promotion ASHA's settings and the errors that
// name the field and the fix when they are misused.
func TestASHAPromote(t *testing.T) {
	head := "name: a\nmethod: synthetic\nspace:\n  wd: [1, 2]\nfixed: {tokens: 1e6}\nsearch:\n  asha: "
	s, err := Parse("a.yaml", []byte(head+"{fidelity: tokens, rungs: [1e6, 3e6, 9e6], promote: true, continue: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	g := s.Search.ASHA
	if !g.Promote || !g.Continue || s.Search.EarlyStopping() != nil {
		t.Errorf("decoded %+v (early stopping %v), want promotion that continues", g, s.Search.EarlyStopping())
	}
	p := s.Search.Promotion()
	if p == nil || p.Fidelity != "tokens" || !p.Continue {
		t.Fatalf("Promotion() = %+v", p)
	}
	for _, tc := range []struct {
		f    float64
		next float64
		ok   bool
	}{{1e6, 3e6, true}, {3e6, 9e6, true}, {9e6, 0, false}, {2e6, 0, false}} {
		if next, ok := p.Next(tc.f); next != tc.next || ok != tc.ok {
			t.Errorf("Next(%g) = %g, %v; want %g, %v", tc.f, next, ok, tc.next, tc.ok)
		}
	}
	if s, err := Parse("a.yaml", []byte(head+"{rungs: [1e6, 3e6]}\n")); err != nil || s.Search.EarlyStopping() == nil || s.Search.Promotion() != nil {
		t.Errorf("without promote: %v; want early stopping", err)
	}
	for _, tc := range []struct{ name, asha, want string }{
		{"continue without promote", "{rungs: [1e6, 3e6], continue: true}", "search.asha.continue: needs promote: true"},
		{"a streamed metric", "{fidelity: step, rungs: [1e6, 3e6], promote: true}", `search.asha.fidelity: with promote, "step" must be a positive number under fixed:`},
		{"first rung elsewhere", "{rungs: [2e6, 6e6], promote: true}", "search.asha.rungs: with promote, the first rung 2e+06 must be fixed tokens's value 1e+06"},
		{"one rung", "{rungs: [1e6], promote: true}", "search.asha.rungs: with promote, give at least two rungs"},
		{"promote not a bool", "{rungs: [1e6, 3e6], promote: 1}", "search.asha.promote: want true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse("a.yaml", []byte(head+tc.asha+"\n")); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
