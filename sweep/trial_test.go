package sweep

import (
	"slices"
	"strings"
	"testing"
)

// TestTrialIDPinned pins TrialID for a few inputs. If it fails, the
// canonical encoding changed and every stored trial would get a new
// identity: bump the version in canonicalTrial only on purpose.
func TestTrialIDPinned(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, version string
		params          map[string]any
		seed            int64
		want            string
	}{
		{"synthetic", "", nil, 0, "541d6676ebda5ca2c2b7"},
		{"charlm", ">=1.0", map[string]any{"lr": 3e-4, "params": 1e6, "act": "gelu", "tied": true}, 7, "ab0874c9fca1fc40ec75"},
	}
	for _, tt := range tests {
		if got := TrialID(tt.method, tt.version, tt.params, tt.seed); got != tt.want {
			t.Errorf("TrialID(%q, %q, %v, %d) = %s, want %s", tt.method, tt.version, tt.params, tt.seed, got, tt.want)
		}
	}
}

func TestTrialIDCanonical(t *testing.T) {
	t.Parallel()
	base := TrialID("m", "", map[string]any{"n": 1e6, "s": "x"}, 0)
	same := []map[string]any{
		{"n": 1000000.0, "s": "x"},
		{"s": "x", "n": float64(1_000_000)},
		{"n": 1000000, "s": "x"}, // an int is the float64 it converts to
		{"n": int64(1000000), "s": "x"},
	}
	for _, p := range same {
		if got := TrialID("m", "", p, 0); got != base {
			t.Errorf("TrialID(%v) = %s, want %s", p, got, base)
		}
	}
	if TrialID("m", "", map[string]any{"z": 0.0}, 0) != TrialID("m", "", map[string]any{"z": negZero()}, 0) {
		t.Error("-0 and 0 give different IDs")
	}
	different := []struct {
		method, version string
		params          map[string]any
		seed            int64
	}{
		{"m", "", map[string]any{"n": 1e6, "s": "x"}, 1},
		{"m2", "", map[string]any{"n": 1e6, "s": "x"}, 0},
		{"m", "1.0", map[string]any{"n": 1e6, "s": "x"}, 0},
		{"m", "", map[string]any{"n": "1e+06", "s": "x"}, 0},
		{"m", "", map[string]any{"n": 1e6, "s": "x", "t": true}, 0},
		{"m", "", map[string]any{"n": 1e6 + 1, "s": "x"}, 0},
		{"m", "", map[string]any{"n": 1e6}, 0},
	}
	seen := map[string]bool{base: true}
	for _, d := range different {
		id := TrialID(d.method, d.version, d.params, d.seed)
		if seen[id] {
			t.Errorf("TrialID(%q, %q, %v, %d) = %s collides", d.method, d.version, d.params, d.seed, id)
		}
		seen[id] = true
	}
	// Type tags keep a string from posing as a number or bool.
	if TrialID("m", "", map[string]any{"a": "true"}, 0) == TrialID("m", "", map[string]any{"a": true}, 0) {
		t.Error(`"true" and true give the same ID`)
	}
	// Quoting keeps names and values from running into each other.
	if TrialID("m", "", map[string]any{"a": "b\nparam \"c\" s:\"d\""}, 0) == TrialID("m", "", map[string]any{"a": "b", "c": "d"}, 0) {
		t.Error("a crafted string collides with two parameters")
	}
}

func negZero() float64 {
	z := 0.0
	return -z
}

func ids(t *testing.T, src string) []string {
	t.Helper()
	trials, err := mustParse(t, src).Expand()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(trials))
	for i, tr := range trials {
		if tr.ID != TrialID(tr.Method, tr.MethodVersion, tr.Params, tr.Seed) {
			t.Errorf("trial %d: ID %s is not TrialID of its fields", i, tr.ID)
		}
		out[i] = tr.ID
	}
	return out
}

// TestIdentity checks the promises resubmission relies on: the same spec
// gives the same IDs, extending it keeps every old ID, and formatting does
// not matter.
func TestIdentity(t *testing.T) {
	t.Parallel()
	const spec = `name: id
method: synthetic
space:
  params: [1e6, 3e6]
  lr: {range: [1e-4, 1e-2], count: 3, scale: log}
random:
  count: 2
  seed: 7
  space:
    dropout: {uniform: [0, 0.2]}
fixed: {epochs: 2}
derived: {tokens: 20 * params * epochs}
seeds: [0, 1]
`
	old := ids(t, spec)
	if again := ids(t, spec); !slices.Equal(old, again) {
		t.Fatalf("the same spec gave different IDs:\n%v\n%v", old, again)
	}
	if len(old) != 2*3*2*2 {
		t.Fatalf("got %d trials, want 24", len(old))
	}
	extensions := map[string]string{
		"grid axis extended": replace(t, spec, "[1e6, 3e6]", "[1e6, 3e6, 1e7]"),
		"seed added":         replace(t, spec, "seeds: [0, 1]", "seeds: [0, 1, 2]"),
		"random count up":    replace(t, spec, "count: 2\n", "count: 5\n"),
	}
	for name, src := range extensions {
		got := ids(t, src)
		for _, id := range old {
			if !slices.Contains(got, id) {
				t.Errorf("%s: old trial %s is gone", name, id)
			}
		}
		if len(got) <= len(old) {
			t.Errorf("%s: %d trials, want more than %d", name, len(got), len(old))
		}
	}
	reformatted := `# the same study, written differently
seeds: [0, 1]
derived:
  tokens: 20*params*epochs
fixed:
  epochs: 2.0
random: {seed: 7, space: {dropout: {uniform: [0.0, 0.2]}}, count: 2}
space:
  lr:
    scale: log
    count: 3
    range: [0.0001, 0.01]
  params:
    - 1000000
    - 3_000_000
method: synthetic
name: id
`
	if got := ids(t, reformatted); !slices.Equal(sorted(got), sorted(old)) {
		t.Errorf("reordered keys and respelled numbers changed the IDs:\n%v\nwant\n%v", got, old)
	}
}

func replace(t *testing.T, s, old, new string) string {
	t.Helper()
	if !(strings.Count(s, old) == 1) {
		t.Fatalf("%q is not in the spec exactly once", old)
	}
	return strings.Replace(s, old, new, 1)
}

func sorted(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
