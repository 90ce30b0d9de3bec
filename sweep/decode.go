package sweep

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// decoder turns YAML nodes into typed values, collecting every problem as a
// *SpecError instead of stopping at the first.
type decoder struct {
	file string
	errs []error
	// stopped is set once maxErrors problems are recorded: the rest are
	// dropped, and loops over a spec's items end early.
	stopped bool
}

// maxErrors bounds the problems Parse reports. A spec of 100,000 bad lines
// would otherwise give 100,000 errors, each with its own suggestions, and
// nobody fixes more than the first screenful before parsing again.
const maxErrors = 100

func (d *decoder) errorf(line int, field, format string, args ...any) {
	if d.stopped {
		return
	}
	if len(d.errs) == maxErrors {
		d.stopped = true
		return
	}
	d.errs = append(d.errs, &SpecError{File: d.file, Line: line, Field: shorten(visible(field), maxFieldBytes), Msg: shorten(fmt.Sprintf(format, args...), maxMsgBytes)})
}

// full reports whether no more problems will be recorded, so that a loop
// over a huge list or mapping can stop doing work no error will show.
func (d *decoder) full() bool { return d.stopped }

// mapping checks that n is a mapping whose keys are all in allowed and
// returns its values by key. It returns ok false, after recording the
// error, when n is not a mapping.
func (d *decoder) mapping(n *node, field string, allowed ...string) (map[string]*node, bool) {
	if n.kind != mapNode {
		d.errorf(n.line, field, "want a mapping of %s, got %s", allowedList(allowed), describe(n))
		return nil, false
	}
	out := make(map[string]*node, len(n.pairs))
	for _, p := range n.pairs {
		if d.full() {
			break
		}
		if !slices.Contains(allowed, p.key) {
			d.errorf(p.line, join(field, p.key), "unknown key %q%s; allowed: %s", p.key, suggest(p.key, allowed), allowedList(allowed))
			continue
		}
		out[p.key] = p.val
	}
	return out, true
}

// isMapping checks that n is a mapping with any keys; want describes them.
func (d *decoder) isMapping(n *node, field, want string) bool {
	if n.kind != mapNode {
		d.errorf(n.line, field, "want a mapping %s, got %s", want, describe(n))
		return false
	}
	return true
}

// scalar returns n's value as a parameter value: float64, string or bool.
func (d *decoder) scalar(n *node, field string) (any, bool) {
	if n.kind != scalarNode {
		d.errorf(n.line, field, "want a number, string or true/false, got %s", describe(n))
		return nil, false
	}
	if n.isNull() {
		d.errorf(n.line, field, "missing value; write a number, a string or true/false")
		return nil, false
	}
	if !n.quoted && yamlNonFiniteRE.MatchString(n.value) {
		d.errorf(n.line, field, "%s is not a finite number; %s, or quote it to keep a string", n.value, finiteRule)
		return nil, false
	}
	if !n.quoted && yamlOnly(n.value) {
		d.errorf(n.line, field, "%s means a number, boolean or null in some YAML readers but not here; write it as a plain decimal number, true or false, or quote it to keep a string", n.value)
		return nil, false
	}
	if i := strings.IndexFunc(n.value, invisible); i >= 0 && !n.quoted {
		// 1e-3 followed by a right-to-left mark would otherwise be the
		// string "1e-3\u200f", not the number it looks like.
		r, _ := utf8.DecodeRuneInString(n.value[i:])
		d.errorf(n.line, field, "the value %q holds the invisible character %U; delete it, or quote the value to keep it", n.value, r)
		return nil, false
	}
	if strings.ContainsRune(n.value, 0) {
		// Only an escape (\x00, \u0000) gets a NUL this far; no method can
		// take it in a path, an argument or an environment variable.
		d.errorf(n.line, field, "the value contains a NUL character (an escape such as \\x00); remove it")
		return nil, false
	}
	return scalarValue(n), true
}

// invisible reports characters that do not print (format characters such
// as U+200F, non-ASCII spaces), other than tab.
func invisible(r rune) bool { return r != '\t' && !unicode.IsPrint(r) }

// finiteRule is the rule and fix for a number that is not finite.
const finiteRule = "parameters and other numbers in a spec must be finite, since the JSON that carries them has no NaN or infinity: write a decimal number such as 1e308"

// yamlNonFiniteRE matches YAML's spellings of infinity and NaN in any
// case, which YAML readers take for non-finite floats.
var yamlNonFiniteRE = regexp.MustCompile(`^(?i:[-+]?\.(inf|nan))$`)

// nonFiniteRE matches YAML's spellings of infinity and NaN and the plain
// ones that strconv, Python's float() and JavaScript read as numbers,
// though YAML reads them as strings.
var nonFiniteRE = regexp.MustCompile(`^(?i:[-+]?\.?(inf|infinity|nan))$`)

// outOfRange explains why s, written as a decimal number, is no float64: it
// overflows to an infinity, or it is not zero but underflows to 0. It
// returns "" for anything else.
func outOfRange(s string) string {
	if !numberRE.MatchString(s) {
		return ""
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
	switch {
	case err != nil || math.IsInf(f, 0):
		return fmt.Sprintf("%s is out of range: numbers must be finite, at most %s in magnitude; write a smaller number", s, fmtNum(math.MaxFloat64))
	case f == 0 && strings.ContainsAny(strings.SplitN(strings.ToLower(s), "e", 2)[0], "123456789"):
		return fmt.Sprintf("%s is too small to tell from 0 (the smallest positive number is %s); write 0 if you mean zero", s, fmtNum(math.SmallestNonzeroFloat64))
	}
	return ""
}

// finite reports false, after recording the error, for a plain scalar
// that means a number which is not a finite float64: NaN, an infinity, or
// a decimal that overflows or underflows. Where a string is allowed too
// (param), the fix offers quoting.
func (d *decoder) finite(n *node, field string, param bool) bool {
	if n.kind != scalarNode || n.quoted {
		return true
	}
	orQuote := ""
	if param {
		orQuote = fmt.Sprintf(", or quote it (%q) to keep a string", n.value)
	}
	if nonFiniteRE.MatchString(n.value) {
		d.errorf(n.line, field, "%s is not a finite number; %s%s", n.value, finiteRule, orQuote)
		return false
	}
	if msg := outOfRange(n.value); msg != "" {
		d.errorf(n.line, field, "%s%s", msg, orQuote)
		return false
	}
	return true
}

// param reads one parameter value (a grid value, a fixed value or a
// choice): a finite number, a string or a bool. How long a string may be
// is the coordinator's to say (-max-param-bytes); MaxSpecBytes bounds it
// here.
func (d *decoder) param(n *node, field string) (any, bool) {
	// finite goes first, so that .inf gets the advice for a parameter.
	if !d.finite(n, field, true) {
		return nil, false
	}
	return d.scalar(n, field)
}

// yamlOnly reports plain values that other YAML readers take for a
// number, boolean or null but this one would read as strings, or (010,
// octal elsewhere) as a different number.
func yamlOnly(s string) bool {
	if yamlOnlyRE.MatchString(s) {
		return true
	}
	// 1_, 1__0, _1: YAML 1.1 readers drop the underscores.
	_, isNum := parseNumber(s)
	return !isNum && strings.Contains(s, "_") && looseNumberRE.MatchString(s)
}

var looseNumberRE = regexp.MustCompile(`^[-+]?[0-9._]*[0-9][0-9._]*([eE][-+]?[0-9_]+)?$`)

// yamlOnlyRE matches plain values that other YAML readers take for a
// number, boolean or null but this one would read as strings: they are
// rejected rather than silently read differently.
var yamlOnlyRE = regexp.MustCompile(`^([-+]?0[xXoObB][0-9a-fA-F_]+|[-+]?0[0-9_]+|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)|True|TRUE|False|FALSE|Null|NULL|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)$`)

// scalarValue interprets a scalar node: quoted scalars are strings; plain
// ones are numbers, true/false or strings.
func scalarValue(n *node) any {
	if n.quoted {
		return n.value
	}
	switch n.value {
	case "true":
		return true
	case "false":
		return false
	}
	if f, ok := parseNumber(n.value); ok {
		return f
	}
	return n.value
}

// numberRE matches decimal numbers; underscores may only sit between digits.
var numberRE = regexp.MustCompile(`^[-+]?(\d+(_\d+)*(\.(\d+(_\d+)*)?)?|\.\d+(_\d+)*)([eE][-+]?\d+)?$`)

// parseNumber parses a decimal number such as 3, -0.5, 1e6, 3e-4 or
// 1_000_000. Infinities, NaN, hex and octal are not numbers here.
func parseNumber(s string) (float64, bool) {
	if !numberRE.MatchString(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, false
	}
	if f == 0 {
		f = 0 // no negative zero: -0 and 0 are the same parameter value
	}
	return f, true
}

func (d *decoder) str(n *node, field string) (string, bool) {
	v, ok := d.scalar(n, field)
	if !ok {
		return "", false
	}
	if s, isStr := v.(string); isStr {
		return s, true
	}
	// A plain 1.0 or true where a string is wanted is still what the user
	// wrote.
	return n.value, true
}

func (d *decoder) number(n *node, field string) (float64, bool) {
	if !d.finite(n, field, false) {
		return 0, false
	}
	v, ok := d.scalar(n, field)
	if !ok {
		return 0, false
	}
	f, isNum := v.(float64)
	if !isNum {
		d.errorf(n.line, field, "want a number, got %s", describe(n))
		return 0, false
	}
	return f, true
}

// integer parses an integer, exactly for plain integer literals and from
// float syntax (1e3) when the value is integral.
func (d *decoder) integer(n *node, field string) (int64, bool) {
	if n.kind == scalarNode && !n.quoted {
		if i, err := strconv.ParseInt(strings.ReplaceAll(n.value, "_", ""), 10, 64); err == nil && numberRE.MatchString(n.value) && !yamlOnly(n.value) {
			return i, true
		}
	}
	f, ok := d.number(n, field)
	if !ok {
		return 0, false
	}
	if f != math.Trunc(f) {
		d.errorf(n.line, field, "want a whole number, got %s", n.value)
		return 0, false
	}
	if math.Abs(f) > 1<<53 {
		// Past 2^53 a float64 no longer holds every whole number, so 1e19
		// might not be the integer the user meant.
		d.errorf(n.line, field, "%s is too large; write whole numbers of at most 2^53 (%d) in magnitude in float form, or write all the digits of one that fits 64 bits", n.value, int64(1)<<53)
		return 0, false
	}
	return int64(f), true
}

// intAtLeast is integer with a lower bound, returned as an int.
func (d *decoder) intAtLeast(n *node, field string, lo int64) (int, bool) {
	i, ok := d.integer(n, field)
	if !ok {
		return 0, false
	}
	if i < lo || i > math.MaxInt32 {
		d.errorf(n.line, field, "want a whole number from %d to %d, got %d", lo, math.MaxInt32, i)
		return 0, false
	}
	return int(i), true
}

// oneOf reads a string that must be one of allowed.
func (d *decoder) oneOf(n *node, field, what string, allowed ...string) (string, bool) {
	s, ok := d.str(n, field)
	if !ok {
		return "", false
	}
	if !slices.Contains(allowed, s) {
		d.errorf(n.line, field, "unknown %s %q%s; allowed: %s", what, s, suggest(s, allowed), strings.Join(allowed, ", "))
		return "", false
	}
	return s, true
}

// list returns the items of a sequence node.
func (d *decoder) list(n *node, field, want string) ([]*node, bool) {
	if n.kind != seqNode {
		d.errorf(n.line, field, "want a list %s, got %s", want, describe(n))
		return nil, false
	}
	if len(n.items) == 0 {
		d.errorf(n.line, field, "empty list; want %s", want)
		return nil, false
	}
	return n.items, true
}

// pairOf reads a two-number list [lo, hi].
func (d *decoder) pairOf(n *node, field string) (lo, hi float64, ok bool) {
	items, ok := d.list(n, field, "[low, high]")
	if !ok {
		return 0, 0, false
	}
	if len(items) != 2 {
		d.errorf(n.line, field, "want exactly two numbers [low, high], got %d items", len(items))
		return 0, 0, false
	}
	lo, ok1 := d.number(items[0], field)
	hi, ok2 := d.number(items[1], field)
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	return lo, hi, true
}

// describe names what a node is, for "got ..." clauses.
func describe(n *node) string {
	if n.kind != scalarNode {
		return n.kind.String()
	}
	if n.isNull() {
		return "nothing"
	}
	switch v := scalarValue(n).(type) {
	case float64:
		return "the number " + n.value
	case bool:
		return strconv.FormatBool(v)
	}
	return strconv.Quote(n.value)
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}
