package sweep

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current expansion")

// goldenLine is how a trial appears in a golden file: canonical JSON, one
// trial per line (encoding/json sorts the parameter names).
type goldenLine struct {
	ID            string         `json:"id"`
	Index         int            `json:"index"`
	Method        string         `json:"method"`
	MethodVersion string         `json:"method_version,omitempty"`
	Params        map[string]any `json:"params"`
	Seed          int64          `json:"seed"`
}

func renderTrials(t *testing.T, trials []Trial) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // one line per trial
	enc.SetEscapeHTML(false)
	for _, tr := range trials {
		if err := enc.Encode(goldenLine{tr.ID, tr.Index, tr.Method, tr.MethodVersion, tr.Params, tr.Seed}); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestGolden expands every testdata/*.yaml and compares the trial list
// with testdata/*.golden. Run with -update to accept a change; a changed
// ID in a golden file means resubmitted studies would rerun their trials.
func TestGolden(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata specs: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			s, err := ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			trials, err := s.Expand()
			if err != nil {
				t.Fatal(err)
			}
			got := renderTrials(t, trials)
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./sweep -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
				for i := 0; i < len(gl) || i < len(wl); i++ {
					var g, w string
					if i < len(gl) {
						g = gl[i]
					}
					if i < len(wl) {
						w = wl[i]
					}
					if g != w {
						t.Fatalf("%s differs at line %d:\ngot  %s\nwant %s\n(run with -update if the change is intended)", golden, i+1, g, w)
					}
				}
			}
		})
	}
}

func TestExpand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []string // "seed: params" per trial, params printed by fmt (sorted)
	}{
		{"no space", "name: a\nmethod: m\n", []string{"0: map[]"}},
		{"fixed only", "name: a\nmethod: m\nfixed: {x: 1, y: b}\n", []string{"0: map[x:1 y:b]"}},
		{"grid odometer sorted by name", "name: a\nmethod: m\nspace:\n  b: [1, 2]\n  a: [x, y]\n",
			[]string{"0: map[a:x b:1]", "0: map[a:x b:2]", "0: map[a:y b:1]", "0: map[a:y b:2]"}},
		{"seeds outermost", "name: a\nmethod: m\nspace: {a: [1, 2]}\nseeds: [5, 3]\n",
			[]string{"5: map[a:1]", "5: map[a:2]", "3: map[a:1]", "3: map[a:2]"}},
		{"replicates", "name: a\nmethod: m\nreplicates: 3\n", []string{"0: map[]", "1: map[]", "2: map[]"}},
		{"linear range", "name: a\nmethod: m\nspace: {x: {range: [0, 0.3], count: 4}}\n",
			[]string{"0: map[x:0]", "0: map[x:0.1]", "0: map[x:0.2]", "0: map[x:0.3]"}},
		{"log range", "name: a\nmethod: m\nspace: {x: {range: [1e-4, 1e-2], count: 3, scale: log}}\n",
			[]string{"0: map[x:0.0001]", "0: map[x:0.001]", "0: map[x:0.01]"}},
		{"range count 1", "name: a\nmethod: m\nspace: {x: {range: [2, 3], count: 1}}\n", []string{"0: map[x:2]"}},
		{"values form", "name: a\nmethod: m\nspace: {x: {values: [true, false]}}\n", []string{"0: map[x:true]", "0: map[x:false]"}},
		{"derived in dependency order", "name: a\nmethod: m\nfixed: {p: 2}\nderived:\n  z: y * 10\n  y: p + 1\n",
			[]string{"0: map[p:2 y:3 z:30]"}},
		{"derived rounding", "name: a\nmethod: m\nfixed: {p: 0.1}\nderived: {q: p * 3}\n", []string{"0: map[p:0.1 q:0.3]"}},
		{"derived constant", "name: a\nmethod: m\nderived: {k: 3}\n", []string{"0: map[k:3]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			trials, err := mustParse(t, tt.src).Expand()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, tr := range trials {
				if tr.Index != i {
					t.Errorf("trial %d has Index %d", i, tr.Index)
				}
				got = append(got, fmt.Sprintf("%d: %v", tr.Seed, tr.Params))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Expand() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestExpandTypes(t *testing.T) {
	t.Parallel()
	trials, err := mustParse(t, "name: a\nmethod: m\nspace: {n: [1, 2.5]}\nfixed: {s: x, q: \"1\", b: false}\nrandom:\n  count: 3\n  space:\n    i: {int: [1, 3]}\n").Expand()
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range trials {
		for name, want := range map[string]string{"n": "float64", "i": "float64", "s": "string", "q": "string", "b": "bool"} {
			if got := typeName(tr.Params[name]); got != want {
				t.Errorf("param %s is %s, want %s", name, got, want)
			}
		}
		if i := tr.Params["i"].(float64); i < 1 || i > 3 || i != float64(int(i)) {
			t.Errorf("int draw %v outside [1, 3] or fractional", i)
		}
	}
}

func typeName(v any) string { return strings.SplitN(reflect.TypeOf(v).String(), ".", 2)[0] }

func TestExpandErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ src, want string }{
		{"name: a\nmethod: m\nspace: {x: [0, 1]}\nderived: {y: 1 / x}\n", "expand a: derived.y = 1 / x: +Inf is not a finite number for {x=0}"},
		{"name: a\nmethod: m\nspace: {x: [-1]}\nderived: {y: log(x)}\n", "derived.y = log(x): NaN is not a finite number"},
	}
	for _, tt := range tests {
		_, err := mustParse(t, tt.src).Expand()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Expand(%q) = %v, want an error containing %q", tt.src, err, tt.want)
		}
	}
	big := &Spec{Name: "big", Seeds: []int64{0, 1}, Axes: []Axis{{Name: "a", Values: make([]any, 1000)}, {Name: "b", Values: make([]any, 1000)}}}
	if _, err := big.Expand(); err == nil || !strings.Contains(err.Error(), "over the limit of 1000000") {
		t.Errorf("Expand of a 2M-trial spec = %v, want the limit error", err)
	}
}

func TestExpandDedup(t *testing.T) {
	t.Parallel()
	trials, err := mustParse(t, "name: a\nmethod: m\nrandom:\n  count: 50\n  space:\n    act: {choice: [relu, gelu]}\n").Expand()
	if err != nil {
		t.Fatal(err)
	}
	if len(trials) != 2 {
		t.Errorf("50 draws over 2 choices gave %d trials, want 2", len(trials))
	}
}

func TestTrialsIterator(t *testing.T) {
	t.Parallel()
	s, err := ParseFile(filepath.Join("testdata", "quickstart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.Expand()
	if err != nil {
		t.Fatal(err)
	}
	var got []Trial
	for tr, err := range s.Trials() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tr)
		if len(got) == 5 {
			break // stopping early must be safe
		}
	}
	if !reflect.DeepEqual(got, all[:5]) {
		t.Errorf("Trials() first 5 = %v, want %v", got, all[:5])
	}
	bad := mustParse(t, "name: a\nmethod: m\nspace: {x: [1, 0]}\nderived: {y: 1 / x}\n")
	var n, errs int
	for _, err := range bad.Trials() {
		if err != nil {
			errs++
		} else {
			n++
		}
	}
	if n != 1 || errs != 1 {
		t.Errorf("Trials() over a spec failing at trial 2 yielded %d trials and %d errors, want 1 and 1", n, errs)
	}
}
