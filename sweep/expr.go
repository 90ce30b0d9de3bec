package sweep

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// expr is a parsed derived-parameter expression: a number, a parameter
// name, a unary minus, a binary operator or a function call.
type expr struct {
	op   string // "num", "name", "neg", "call", or one of + - * / ^
	num  float64
	name string // parameter or function name
	args []*expr
}

// funcs are the functions expressions may call, with their arity (-1: two
// or more).
var funcs = map[string]struct {
	arity int
	f     func(...float64) float64
}{
	"log":   {1, func(x ...float64) float64 { return math.Log(x[0]) }},
	"log2":  {1, func(x ...float64) float64 { return math.Log2(x[0]) }},
	"log10": {1, func(x ...float64) float64 { return math.Log10(x[0]) }},
	"exp":   {1, func(x ...float64) float64 { return math.Exp(x[0]) }},
	"sqrt":  {1, func(x ...float64) float64 { return math.Sqrt(x[0]) }},
	"abs":   {1, func(x ...float64) float64 { return math.Abs(x[0]) }},
	"floor": {1, func(x ...float64) float64 { return math.Floor(x[0]) }},
	"ceil":  {1, func(x ...float64) float64 { return math.Ceil(x[0]) }},
	"round": {1, func(x ...float64) float64 { return math.Round(x[0]) }},
	"min":   {-1, func(x ...float64) float64 { return fold(math.Min, x) }},
	"max":   {-1, func(x ...float64) float64 { return fold(math.Max, x) }},
}

func fold(f func(a, b float64) float64, x []float64) float64 {
	r := x[0]
	for _, v := range x[1:] {
		r = f(r, v)
	}
	return r
}

func funcNames() []string {
	names := make([]string, 0, len(funcs))
	for n := range funcs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// parseExpr parses an expression such as "6 * params * tokens" or
// "max(1, floor(tokens / 2^20))". Precedence, lowest first: + -, * /,
// unary -, ^ (right-associative), so -x^2 is -(x^2).
func parseExpr(src string) (*expr, error) {
	if len(src) > maxExprBytes {
		return nil, fmt.Errorf("the expression is %d bytes, over the limit of %d; split it into several derived parameters", len(src), maxExprBytes)
	}
	p := &exprParser{src: src}
	p.next()
	e, err := p.sum()
	if err != nil {
		return nil, err
	}
	if p.tok != "" {
		return nil, p.errorf("unexpected %q", p.tok)
	}
	return e, nil
}

// maxExprBytes bounds a derived expression. Real ones fit on a line; the
// bound keeps the recursive parser, evaluator and printer shallow and
// cheap, where 100,000 nested parentheses would grow the stack by
// megabytes and a chain of 100,000 additions made String quadratic.
const maxExprBytes = 1000

type exprParser struct {
	src string
	pos int    // offset after tok
	at  int    // offset of tok
	tok string // "" at the end
}

func (p *exprParser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid expression %q: column %d: %s; expressions use numbers, parameter names, + - * / ^, parentheses and %s",
		p.src, p.at+1, fmt.Sprintf(format, args...), strings.Join(funcNames(), " "))
}

// next scans the next token: a number, a name, or one operator character.
func (p *exprParser) next() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t') {
		p.pos++
	}
	p.at = p.pos
	if p.pos >= len(p.src) {
		p.tok = ""
		return
	}
	c := p.src[p.pos]
	end := p.pos + 1
	switch {
	case isDigit(c) || c == '.':
		for end < len(p.src) && (isDigit(p.src[end]) || p.src[end] == '.') {
			end++
		}
		if end < len(p.src) && (p.src[end] == 'e' || p.src[end] == 'E') {
			e := end + 1
			if e < len(p.src) && (p.src[e] == '+' || p.src[e] == '-') {
				e++
			}
			if e < len(p.src) && isDigit(p.src[e]) {
				for end = e; end < len(p.src) && isDigit(p.src[end]); end++ {
				}
			}
		}
	case isLetter(c):
		for end < len(p.src) && (isLetter(p.src[end]) || isDigit(p.src[end])) {
			end++
		}
	case c >= utf8.RuneSelf:
		// A whole character, so the error shows "π" rather than "\xcf".
		_, size := utf8.DecodeRuneInString(p.src[p.pos:])
		end = p.pos + size
	}
	p.tok = p.src[p.pos:end]
	p.pos = end
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }

func (p *exprParser) sum() (*expr, error) {
	return p.binary(p.product, "+", "-")
}

func (p *exprParser) product() (*expr, error) {
	return p.binary(p.unary, "*", "/")
}

// binary parses a left-associative chain of operand (op operand)*.
func (p *exprParser) binary(operand func() (*expr, error), ops ...string) (*expr, error) {
	left, err := operand()
	if err != nil {
		return nil, err
	}
	for p.tok == ops[0] || p.tok == ops[1] {
		op := p.tok
		p.next()
		right, err := operand()
		if err != nil {
			return nil, err
		}
		left = &expr{op: op, args: []*expr{left, right}}
	}
	return left, nil
}

func (p *exprParser) unary() (*expr, error) {
	switch p.tok {
	case "-":
		p.next()
		e, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &expr{op: "neg", args: []*expr{e}}, nil
	case "+":
		p.next()
		return p.unary()
	}
	return p.power()
}

func (p *exprParser) power() (*expr, error) {
	base, err := p.primary()
	if err != nil {
		return nil, err
	}
	if p.tok != "^" {
		return base, nil
	}
	p.next()
	exp, err := p.unary() // right-associative, and 2^-1 works
	if err != nil {
		return nil, err
	}
	return &expr{op: "^", args: []*expr{base, exp}}, nil
}

func (p *exprParser) primary() (*expr, error) {
	tok := p.tok
	switch {
	case tok == "":
		return nil, p.errorf("unexpected end")
	case tok == "(":
		p.next()
		e, err := p.sum()
		if err != nil {
			return nil, err
		}
		if p.tok != ")" {
			return nil, p.errorf("want \")\", got %q", p.tok)
		}
		p.next()
		return e, nil
	case isDigit(tok[0]) || tok[0] == '.':
		f, err := strconv.ParseFloat(tok, 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, p.errorf("bad number %q", tok)
		}
		p.next()
		return &expr{op: "num", num: f}, nil
	case isLetter(tok[0]):
		p.next()
		if p.tok != "(" {
			return &expr{op: "name", name: tok}, nil
		}
		return p.call(tok)
	}
	return nil, p.errorf("unexpected %q", tok)
}

func (p *exprParser) call(name string) (*expr, error) {
	fn, ok := funcs[name]
	if !ok {
		return nil, p.errorf("unknown function %q%s", name, suggest(name, funcNames()))
	}
	p.next() // (
	e := &expr{op: "call", name: name}
	for {
		arg, err := p.sum()
		if err != nil {
			return nil, err
		}
		e.args = append(e.args, arg)
		if p.tok != "," {
			break
		}
		p.next()
	}
	if p.tok != ")" {
		return nil, p.errorf("want \",\" or \")\" in the call to %s, got %q", name, p.tok)
	}
	if (fn.arity > 0 && len(e.args) != fn.arity) || (fn.arity < 0 && len(e.args) < 2) {
		want := "one argument"
		if fn.arity < 0 {
			want = "two or more arguments"
		}
		return nil, p.errorf("%s takes %s, got %d", name, want, len(e.args))
	}
	p.next()
	return e, nil
}

// names returns the parameter names e refers to, sorted, each once.
func (e *expr) names() []string {
	seen := map[string]bool{}
	var walk func(*expr)
	walk = func(e *expr) {
		if e.op == "name" {
			seen[e.name] = true
		}
		for _, a := range e.args {
			walk(a)
		}
	}
	walk(e)
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// eval computes e with the given parameter values. A name missing from
// env is an error; arithmetic follows IEEE 754, so the caller checks the
// result for NaN and infinities.
func (e *expr) eval(env map[string]float64) (float64, error) {
	switch e.op {
	case "num":
		return e.num, nil
	case "name":
		v, ok := env[e.name]
		if !ok {
			return 0, fmt.Errorf("unknown parameter %q", e.name)
		}
		return v, nil
	}
	args := make([]float64, len(e.args))
	for i, a := range e.args {
		v, err := a.eval(env)
		if err != nil {
			return 0, err
		}
		args[i] = v
	}
	switch e.op {
	case "neg":
		return -args[0], nil
	case "+":
		return args[0] + args[1], nil
	case "-":
		return args[0] - args[1], nil
	case "*":
		return args[0] * args[1], nil
	case "/":
		return args[0] / args[1], nil
	case "^":
		return math.Pow(args[0], args[1]), nil
	case "call":
		return funcs[e.name].f(args...), nil
	}
	return 0, fmt.Errorf("unknown operator %q", e.op)
}

// String prints e fully parenthesised, as a canonical form for hashing.
func (e *expr) String() string {
	switch e.op {
	case "num":
		return fmtNum(e.num)
	case "name":
		return e.name
	case "neg":
		return "(-" + e.args[0].String() + ")"
	case "call":
		parts := make([]string, len(e.args))
		for i, a := range e.args {
			parts[i] = a.String()
		}
		return e.name + "(" + strings.Join(parts, ", ") + ")"
	}
	return "(" + e.args[0].String() + " " + e.op + " " + e.args[1].String() + ")"
}
