package sweep

import (
	"strings"
	"testing"
)

func TestBudget(t *testing.T) {
	const base = "name: b\nmethod: m\nspace:\n  x: [1, 2]\n"
	s, err := Parse("b.yaml", []byte(base+"budget: {flops: 1e15}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Budget.Kind() != "flops" || s.Budget.Limit() != 1e15 {
		t.Errorf("budget = %+v", s.Budget)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"budget: {flops: 1e15, device_hours: 2}\n", "exactly one of flops and device_hours"},
		{"budget: {device_hours: -1}\n", "must be positive"},
		{"budget: {gpu_hours: 1}\n", `unknown key "gpu_hours"`},
	} {
		if _, err := Parse("b.yaml", []byte(base+tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
