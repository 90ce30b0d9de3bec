package sweep

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// decoder turns YAML nodes into typed values, collecting every problem as a
// *SpecError instead of stopping at the first.
type decoder struct {
	file string
	errs []error
}

func (d *decoder) errorf(line int, field, format string, args ...any) {
	d.errs = append(d.errs, &SpecError{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

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
	if !n.quoted && yamlOnly(n.value) {
		d.errorf(n.line, field, "%s means a number, boolean or null in some YAML readers but not here; write it as a plain decimal number, true or false, or quote it to keep a string", n.value)
		return nil, false
	}
	return scalarValue(n), true
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
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		d.errorf(n.line, field, "want a whole number, got %s", n.value)
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
