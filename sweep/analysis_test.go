package sweep

import (
	"slices"
	"strings"
	"testing"
)

func TestAnalysisPlan(t *testing.T) {
	const base = "name: a\nmethod: charlm\nspace:\n  width: [16, 32]\n  weight_decay: [0.0, 0.1]\n  recipe: [x, y]\n"
	t.Run("full", func(t *testing.T) {
		s, err := Parse("a.yaml", []byte(base+"analysis:\n  fit: {law: power, x: params, group: recipe, best_over: [weight_decay], bootstrap: 50, seed: 3}\n"))
		if err != nil {
			t.Fatal(err)
		}
		p := s.Analysis.Fit
		if p.Law != "power" || p.X != "params" || p.Group != "recipe" || !slices.Equal(p.BestOver, []string{"weight_decay"}) || p.Bootstrap != 50 || p.Seed != 3 {
			t.Errorf("plan = %+v", p)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		s, err := Parse("a.yaml", []byte(base+"analysis:\n  fit: {}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if p := s.Analysis.Fit; p.Law != "power" || p.X != "params" || p.Bootstrap != 200 {
			t.Errorf("defaults = %+v", p)
		}
	})
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown law", "analysis:\n  fit: {law: cubic}\n", []string{"a.yaml:8", "analysis.fit.law", `unknown law "cubic"`, "power, chinchilla"}},
		{"unknown tuned parameter", "analysis:\n  fit:\n    best_over: [weight_decy]\n", []string{"a.yaml:9", "analysis.fit.best_over", `"weight_decy"`, `did you mean "weight_decay"`}},
		{"unknown group", "analysis:\n  fit: {group: recipes}\n", []string{"analysis.fit.group", `"recipes"`}},
		{"unknown key", "analysis:\n  fit: {laws: power}\n", []string{"analysis.fit.laws", "allowed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("a.yaml", []byte(base+tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
