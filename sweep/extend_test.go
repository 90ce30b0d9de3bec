package sweep

import (
	"testing"
)

func TestExtendKeepsEveryTrialAndAddsTheNewValue(t *testing.T) {
	s, err := Parse("e.yaml", []byte("name: e\nmethod: m\nspace:\n  params: [1e6, 1e7]\n  wd: [0.01, 0.1]\nfixed:\n  u: 10\nderived:\n  d: u * params\n"))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := s.Expand()
	x, err := s.Extend("wd", 1.0)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := x.Expand()
	if len(after) != 6 {
		t.Fatalf("%d trials after extension, want 6", len(after))
	}
	ids := map[string]bool{}
	for _, tr := range after {
		ids[tr.ID] = true
		if tr.Params["d"] != 10*tr.Params["params"].(float64) {
			t.Errorf("derived parameter not recomputed: %v", tr.Params)
		}
	}
	for _, tr := range before {
		if !ids[tr.ID] {
			t.Errorf("trial %s lost its identity after the extension", tr.ID)
		}
	}
	if _, err := s.Extend("wd", 0.1); err == nil {
		t.Error("extending with a value the axis has was accepted")
	}
	if _, err := s.Extend("u", 3.0); err == nil {
		t.Error("extending a fixed parameter was accepted")
	}
	if len(s.Axes[1].Values) != 2 {
		t.Error("Extend changed the original spec")
	}
}

func TestBeyondEdge(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []any
		last   bool
		want   float64
		ok     bool
	}{
		{"log-spaced up", []any{0.01, 0.1, 1.0}, true, 10, true},
		{"log-spaced down", []any{0.01, 0.1, 1.0}, false, 0.001, true},
		{"linear up", []any{1.0, 2.0, 3.0}, true, 4, true},
		{"order given does not matter", []any{3.0, 1.0, 2.0}, true, 4, true},
		{"not below zero", []any{0.0, 0.1, 0.3}, false, 0, false},
		{"linear down", []any{2.0, 3.0}, false, 1, true},
		{"strings", []any{"a", "b"}, true, 0, false},
		{"one value", []any{1.0}, true, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := BeyondEdge(Axis{Name: "x", Values: tc.values}, tc.last)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Errorf("BeyondEdge(%v, last=%v) = %v, %v; want %v, %v", tc.values, tc.last, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestVariantMatchesTheGridsIdentity(t *testing.T) {
	s, err := Parse("v.yaml", []byte("name: v\nmethod: m\nspace:\n  tokens: [1e5, 4e5]\n  wd: [0.1, 1.0]\nderived:\n  flops: 6 * tokens\n"))
	if err != nil {
		t.Fatal(err)
	}
	trials, _ := s.Expand()
	var low, high Trial
	for _, tr := range trials {
		if tr.Params["wd"] == 0.1 && tr.Params["tokens"] == 1e5 {
			low = tr
		}
		if tr.Params["wd"] == 0.1 && tr.Params["tokens"] == 4e5 {
			high = tr
		}
	}
	v, err := s.Variant(low.Params, map[string]any{"tokens": 4e5}, low.Seed)
	if err != nil {
		t.Fatal(err)
	}
	if v.ID != high.ID || v.Params["flops"] != 2.4e6 {
		t.Errorf("variant %s %v, want the grid's trial %s %v", v.ID, v.Params, high.ID, high.Params)
	}
	if _, err := s.Variant(low.Params, map[string]any{"flops": 1.0}, 0); err == nil {
		t.Error("setting a derived parameter was accepted")
	}
	if _, err := s.Variant(low.Params, map[string]any{"lr": 1.0}, 0); err == nil {
		t.Error("setting an unknown parameter was accepted")
	}
}
