package sweep

import (
	"math"
	"strings"
	"testing"
)

func TestExprEval(t *testing.T) {
	t.Parallel()
	env := map[string]float64{"params": 1e6, "tokens": 2e7, "x": 2, "y": 3, "e1": 5}
	tests := []struct {
		src  string
		want float64
	}{
		{"6 * params * tokens", 1.2e14},
		{"1 + 2 * 3", 7},
		{"(1 + 2) * 3", 9},
		{"10 - 4 - 3", 3},
		{"12 / 4 / 3", 1},
		{"2 ^ 3 ^ 2", 512}, // right-associative
		{"-x ^ 2", -4},     // unary minus binds looser than ^
		{"(-x) ^ 2", 4},
		{"2 ^ -1", 0.5},
		{"--x", 2},
		{"+x", 2},
		{"3e-4 * 1e4", 3},
		{"1.5e6 / 1.5E6", 1},
		{".5 * 4", 2},
		{"log(exp(2))", 2},
		{"log2(8) + log10(1000)", 6},
		{"sqrt(16)", 4},
		{"abs(-3)", 3},
		{"floor(2.7) + ceil(2.2) + round(2.5)", 8},
		{"min(x, y, 1)", 1},
		{"max(x, y)", 3},
		{"e1 * 2", 10}, // a name that starts like an exponent
		{"max(1, floor(tokens / 2^20))", 19},
	}
	for _, tt := range tests {
		e, err := parseExpr(tt.src)
		if err != nil {
			t.Errorf("parseExpr(%q): %v", tt.src, err)
			continue
		}
		got, err := e.eval(env)
		if err != nil || math.Abs(got-tt.want) > 1e-9*math.Abs(tt.want) {
			t.Errorf("eval(%q) = %v, %v; want %v", tt.src, got, err, tt.want)
		}
		// The canonical form must mean the same thing.
		again, err := parseExpr(e.String())
		if err != nil {
			t.Errorf("parseExpr(%q.String() = %q): %v", tt.src, e.String(), err)
			continue
		}
		if v, _ := again.eval(env); v != got {
			t.Errorf("eval(String(%q) = %q) = %v, want %v", tt.src, e.String(), v, got)
		}
	}
}

func TestExprErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ src, want string }{
		{"", "column 1: unexpected end"},
		{"1 +", "column 4: unexpected end"},
		{"(1", `column 3: want ")", got ""`},
		{"1 2", `column 3: unexpected "2"`},
		{"x $ y", `column 3: unexpected "$"`},
		{"foo(1)", `unknown function "foo"`},
		{"min(1)", "min takes two or more arguments, got 1"},
		{"sqrt(1, 2)", "sqrt takes one argument, got 2"},
		{"1..2", `bad number "1..2"`},
		{"1e999", `bad number "1e999"`},
		{"max(1, 2", `want "," or ")" in the call to max`},
	}
	for _, tt := range tests {
		_, err := parseExpr(tt.src)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseExpr(%q) = %v, want an error containing %q", tt.src, err, tt.want)
		}
	}
}

func TestExprNames(t *testing.T) {
	t.Parallel()
	e, err := parseExpr("b * a + max(c, b) + sqrt(2)")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(e.names(), ","); got != "a,b,c" {
		t.Errorf("names() = %s, want a,b,c", got)
	}
}
