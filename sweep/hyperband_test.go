package sweep

import (
	"math"
	"strings"
	"testing"
)

const hyperbandHead = "name: h\nmethod: synthetic\nspace:\n  wd: {range: [0.01, 1], count: 12, scale: log}\nfixed: {tokens: 1e6}\nderived:\n  unique_tokens: tokens\nsearch:\n  hyperband: "

// TestHyperbandBrackets checks how a Hyperband spec expands: every
// configuration in one bracket, starting at that bracket's rung with
// what is derived from it, the brackets filled in Hyperband's shares, and
// the bracket part of each trial's identity.
func TestHyperbandBrackets(t *testing.T) {
	s, err := Parse("h.yaml", []byte(hyperbandHead+"{fidelity: tokens, rungs: [1e6, 3e6, 9e6], eta: 3, continue: true}\nseeds: [1, 2]\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := s.Search.Hyperband
	if h.Brackets != 3 || !h.Continue || !s.Search.Promotes() {
		t.Fatalf("decoded %+v", h)
	}
	// Shares 9/3 : 3/2 : 1/1 of 5.5.
	want := []float64{3 / 5.5, 1.5 / 5.5, 1 / 5.5}
	for b, got := range h.Shares() {
		if math.Abs(got-want[b]) > 1e-12 {
			t.Errorf("share of bracket %d = %g, want %g", b+1, got, want[b])
		}
	}
	trials, err := s.Expand()
	if err != nil {
		t.Fatal(err)
	}
	if len(trials) != 24 {
		t.Fatalf("%d trials, want 12 configurations × 2 seeds", len(trials))
	}
	perBracket := map[int]int{}
	bracketOf := map[float64]int{}
	for _, tr := range trials {
		b := tr.Bracket
		if b < 1 || b > 3 {
			t.Fatalf("trial %s in bracket %d", tr.ID, b)
		}
		if tr.Params["tokens"] != h.Rungs[b-1] || tr.Params["unique_tokens"] != h.Rungs[b-1] {
			t.Errorf("trial in bracket %d starts at tokens %v (unique_tokens %v), want %g", b, tr.Params["tokens"], tr.Params["unique_tokens"], h.Rungs[b-1])
		}
		wd := tr.Params["wd"].(float64)
		if prev, ok := bracketOf[wd]; ok && prev != b {
			t.Errorf("wd %g is in brackets %d and %d: seeds of a configuration must share one", wd, prev, b)
		}
		bracketOf[wd] = b
		perBracket[b]++
		v, err := s.VariantIn(b, tr.Params, nil, tr.Seed)
		if err != nil || v.ID != tr.ID {
			t.Errorf("VariantIn(%d) of trial %s = %s, %v; want its own ID", b, tr.ID, v.ID, err)
		}
	}
	// 12 configurations in shares 6.55 : 3.27 : 2.18 go 7, 3 and 2.
	if perBracket[1] != 2*7 || perBracket[2] != 2*3 || perBracket[3] != 2*2 {
		t.Errorf("trials per bracket %v, want 14, 6 and 4", perBracket)
	}
	tr := trials[0]
	same := map[string]bool{}
	for b := 0; b <= 3; b++ {
		v, err := s.VariantIn(b, tr.Params, map[string]any{"tokens": 9e6}, tr.Seed)
		if err != nil {
			t.Fatal(err)
		}
		if same[v.ID] {
			t.Errorf("bracket %d gives the ID of another bracket: the bracket must be part of the identity", b)
		}
		same[v.ID] = true
		if b == 0 {
			if w, _ := s.Variant(tr.Params, map[string]any{"tokens": 9e6}, tr.Seed); w.ID != v.ID {
				t.Errorf("VariantIn(0) = %s, Variant = %s: a trial without a bracket must keep its ID", v.ID, w.ID)
			}
		}
	}
}

// TestHyperbandErrors checks that misused settings are refused with the
// field and the fix.
func TestHyperbandErrors(t *testing.T) {
	for _, tc := range []struct{ name, hb, want string }{
		{"a streamed metric", "{fidelity: step, rungs: [1e6, 3e6]}", `search.hyperband.fidelity: "step" must be a positive number under fixed:`},
		{"no rungs", "{fidelity: tokens}", "search.hyperband.rungs: missing"},
		{"one rung", "{rungs: [1e6]}", "search.hyperband.rungs: give at least two rungs"},
		{"first rung elsewhere", "{rungs: [2e6, 6e6]}", "search.hyperband.rungs: the first rung 2e+06 must be fixed tokens's value 1e+06"},
		{"too many brackets", "{rungs: [1e6, 3e6], brackets: 3}", "search.hyperband.brackets: 3 brackets for 2 rungs: at most one per rung"},
		{"eta", "{rungs: [1e6, 3e6], eta: 1}", "search.hyperband.eta: eta 1 must be at least 2"},
		{"two strategies", "{rungs: [1e6, 3e6]}\n  halving: {fidelity: tokens, max: 9e6}", "give one strategy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse("h.yaml", []byte(hyperbandHead+tc.hb+"\n")); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
