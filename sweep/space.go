package sweep

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Axis is one grid dimension: a parameter and the values it takes.
type Axis struct {
	// Name is the parameter name.
	Name string `json:"name"`
	// Values are float64, string or bool, in the order they were given
	// (or generated, for a range).
	Values []any `json:"values"`
}

// Random describes Count random draws from a space of distributions. Every
// grid point is combined with the same draws, so grid points stay
// comparable.
type Random struct {
	// Count is the number of draws.
	Count int `json:"count"`
	// Seed selects the draws; the same seed gives the same draws.
	Seed int64 `json:"seed"`
	// Dists are the sampled parameters, sorted by name.
	Dists []Dist `json:"dists"`
}

// DistKind names a random distribution.
type DistKind string

// The distributions a random parameter can follow.
const (
	// Uniform draws a real number uniformly from [Low, High).
	Uniform DistKind = "uniform"
	// LogUniform draws a real number whose logarithm is uniform on
	// [log Low, log High).
	LogUniform DistKind = "loguniform"
	// IntUniform draws a whole number uniformly from [Low, High],
	// both ends included.
	IntUniform DistKind = "int"
	// Choice picks one of Choices with equal probability.
	Choice DistKind = "choice"
)

var distKinds = []string{string(Uniform), string(LogUniform), string(IntUniform), string(Choice)}

// Dist is one randomly drawn parameter.
type Dist struct {
	// Name is the parameter name.
	Name string `json:"name"`
	// Kind is the distribution.
	Kind DistKind `json:"kind"`
	// Low and High bound Uniform, LogUniform and IntUniform.
	Low  float64 `json:"low,omitempty"`
	High float64 `json:"high,omitempty"`
	// Choices are the values of a Choice.
	Choices []any `json:"choices,omitempty"`
}

// Derived is a parameter computed from others by an expression.
type Derived struct {
	// Name is the parameter name.
	Name string
	// Expr is the expression as written, such as "6 * params * tokens".
	Expr string

	ast *expr
}

// Scales for grid ranges.
var scales = []string{"linear", "log"}

// definition records where a parameter name was first defined.
type definition struct {
	field   string
	line    int
	numeric bool
}

// space decodes space, random, fixed and derived, checking that every
// parameter is defined once.
func (d *decoder) space(m map[string]*node, s *Spec) {
	defs := map[string]definition{}
	define := func(name, field string, line int, numeric bool) bool {
		if !paramRE.MatchString(name) {
			d.errorf(line, field, "invalid parameter name %q; use letters, digits and '_', starting with a letter or '_', so expressions can refer to it", name)
			return false
		}
		if name == "seed" {
			d.errorf(line, field, "\"seed\" is reserved for the trial seed; set seeds with seeds: or replicates:, or rename the parameter")
			return false
		}
		if first, dup := defs[name]; dup {
			d.errorf(line, field, "parameter %q is already defined at %s (line %d); define each parameter once", name, first.field, first.line)
			return false
		}
		defs[name] = definition{field, line, numeric}
		return true
	}
	if n, ok := m["space"]; ok {
		d.axes(n, s, define)
	}
	if n, ok := m["random"]; ok {
		d.random(n, s, define)
	}
	if n, ok := m["fixed"]; ok {
		if d.isMapping(n, "fixed", "of parameter names to values, as in {vocab: 32000}") {
			s.Fixed = map[string]any{}
			for _, p := range n.pairs {
				field := join("fixed", p.key)
				v, ok := d.param(p.val, field)
				if ok && define(p.key, field, p.line, isNumber(v)) {
					s.Fixed[p.key] = v
				}
			}
		}
	}
	if n, ok := m["derived"]; ok {
		d.derived(n, s, defs, define)
	}
}

func (d *decoder) axes(n *node, s *Spec, define func(string, string, int, bool) bool) {
	if !d.isMapping(n, "space", "of parameter names to lists of values, as in {lr: [1e-3, 3e-3]}") {
		return
	}
	points := 1 // grid points so far, to stop a huge range before it is generated
	for _, p := range n.pairs {
		if d.full() {
			break
		}
		field := join("space", p.key)
		vals, ok := d.axisValues(p.val, field, MaxTrials/points)
		if !ok {
			continue
		}
		points = min(points*len(vals), MaxTrials+1)
		if define(p.key, field, p.line, allNumbers(vals)) {
			s.Axes = append(s.Axes, Axis{Name: p.key, Values: vals})
		}
	}
	sort.Slice(s.Axes, func(i, j int) bool { return s.Axes[i].Name < s.Axes[j].Name })
}

// axisValues reads an explicit list, {values: [...]} or
// {range: [lo, hi], count: n, scale: linear|log}. A range is generated only
// if it has at most budget points.
func (d *decoder) axisValues(n *node, field string, budget int) ([]any, bool) {
	switch n.kind {
	case seqNode:
		return d.values(n, field)
	case scalarNode:
		d.errorf(n.line, field, "want a list of values such as [1, 2, 3] or {range: [lo, hi], count: n}, got %s; for a single value move it to fixed:", describe(n))
		return nil, false
	}
	m, ok := d.mapping(n, field, "values", "range", "count", "scale")
	if !ok {
		return nil, false
	}
	if v, ok := m["values"]; ok {
		for _, k := range []string{"range", "count", "scale"} {
			if _, both := m[k]; both {
				d.errorf(n.line, join(field, k), "%s cannot be combined with values; give either a list of values or a range", k)
				return nil, false
			}
		}
		return d.values(v, join(field, "values"))
	}
	rangeNode, hasRange := m["range"]
	countNode, hasCount := m["count"]
	if !hasRange {
		d.errorf(n.line, join(field, "range"), "missing; write {range: [lo, hi], count: n} or {values: [...]}")
		return nil, false
	}
	if !hasCount {
		d.errorf(n.line, join(field, "count"), "missing; say how many points the range has, as in {range: [lo, hi], count: 5}")
		return nil, false
	}
	scale := "linear"
	if v, ok := m["scale"]; ok {
		if scale, ok = d.oneOf(v, join(field, "scale"), "scale", scales...); !ok {
			return nil, false
		}
	}
	lo, hi, ok1 := d.pairOf(rangeNode, join(field, "range"))
	count, ok2 := d.intAtLeast(countNode, join(field, "count"), 1)
	if !ok1 || !ok2 {
		return nil, false
	}
	if count > budget {
		d.errorf(countNode.line, join(field, "count"), "count %d makes the grid larger than the limit of %d trials; lower it or split the study", count, MaxTrials)
		return nil, false
	}
	if lo >= hi {
		d.errorf(rangeNode.line, join(field, "range"), "want low < high, got [%s, %s]", fmtNum(lo), fmtNum(hi))
		return nil, false
	}
	if scale == "log" && lo <= 0 {
		d.errorf(rangeNode.line, join(field, "range"), "a log scale needs a positive range, got low %s; use scale: linear or raise low", fmtNum(lo))
		return nil, false
	}
	vals := spaced(lo, hi, count, scale == "log")
	// Rounding to 12 digits merges the points of a range narrower than
	// its count can resolve ([1, 1.0000000000001] in 10 points); the
	// trials would silently collapse into fewer.
	seen := make(map[float64]bool, len(vals))
	for _, v := range vals {
		if seen[v.(float64)] {
			d.errorf(countNode.line, join(field, "count"), "count %d is too many points for the range [%s, %s]: values 12 significant digits apart would coincide (%s twice); lower count or widen the range", count, fmtNum(lo), fmtNum(hi), fmtNum(v.(float64)))
			return nil, false
		}
		seen[v.(float64)] = true
	}
	return vals, true
}

// spaced returns count points from lo to hi, both included, evenly spaced
// on a linear or log scale and rounded to 12 significant digits, so that
// 1e-4..1e-2 gives exactly 0.001 in the middle.
func spaced(lo, hi float64, count int, log bool) []any {
	out := make([]any, count)
	for i := range count {
		t := 0.0
		if count > 1 {
			t = float64(i) / float64(count-1)
		}
		var v float64
		switch {
		case i == count-1 && count > 1:
			v = hi
		case log:
			v = math.Exp(math.Log(lo) + t*(math.Log(hi)-math.Log(lo)))
		default:
			v = lerp(lo, hi, t)
		}
		out[i] = round12(v)
	}
	return out
}

// lerp returns lo + t*(hi-lo) for t in [0, 1]. When hi-lo overflows
// ([-1e308, 1e308]) it weighs the ends instead, which cannot overflow; the
// usual form is kept otherwise, so the values, and the trial IDs, of every
// range that fits stay what they were.
func lerp(lo, hi, t float64) float64 {
	if span := hi - lo; !math.IsInf(span, 0) {
		return lo + t*span
	}
	return lo*(1-t) + hi*t
}

// values reads a non-empty list of distinct scalars.
func (d *decoder) values(n *node, field string) ([]any, bool) {
	items, ok := d.list(n, field, "of values such as [1, 2, 3]")
	if !ok {
		return nil, false
	}
	seen := map[string]int{}
	var out []any
	for _, it := range items {
		if d.full() {
			return nil, false
		}
		v, ok := d.param(it, field)
		if !ok {
			continue
		}
		key := canonicalValue(v)
		if _, dup := seen[key]; dup {
			d.errorf(it.line, field, "value %s is listed twice; each value gives its own trials, so list it once", it.value)
			continue
		}
		seen[key] = len(out)
		out = append(out, v)
	}
	return out, len(out) == len(items)
}

func (d *decoder) random(n *node, s *Spec, define func(string, string, int, bool) bool) {
	m, ok := d.mapping(n, "random", "count", "seed", "space")
	if !ok {
		return
	}
	r := &Random{}
	countNode, hasCount := m["count"]
	if !hasCount {
		d.errorf(n.line, "random.count", "missing; say how many random draws to make, as in count: 8")
	} else if c, ok := d.intAtLeast(countNode, "random.count", 1); ok {
		if c > MaxTrials {
			d.errorf(countNode.line, "random.count", "count %d is over the limit of %d trials", c, MaxTrials)
		}
		r.Count = c
	}
	if v, ok := m["seed"]; ok {
		r.Seed, _ = d.integer(v, "random.seed")
	}
	sp, ok := m["space"]
	if !ok {
		d.errorf(n.line, "random.space", "missing; list the sampled parameters, as in space: {dropout: {uniform: [0, 0.2]}}")
		return
	}
	if !d.isMapping(sp, "random.space", "of parameter names to distributions, as in {dropout: {uniform: [0, 0.2]}}") {
		return
	}
	if len(sp.pairs) == 0 {
		d.errorf(sp.line, "random.space", "empty; list at least one sampled parameter")
		return
	}
	for _, p := range sp.pairs {
		if d.full() {
			break
		}
		field := join("random.space", p.key)
		dist, ok := d.dist(p.val, field)
		if !ok {
			continue
		}
		dist.Name = p.key
		numeric := dist.Kind != Choice || allNumbers(dist.Choices)
		if define(p.key, field, p.line, numeric) {
			r.Dists = append(r.Dists, dist)
		}
	}
	sort.Slice(r.Dists, func(i, j int) bool { return r.Dists[i].Name < r.Dists[j].Name })
	s.Random = r
}

func (d *decoder) dist(n *node, field string) (Dist, bool) {
	if n.kind != mapNode || len(n.pairs) != 1 {
		d.errorf(n.line, field, "want one distribution such as {uniform: [0, 1]}, {loguniform: [1e-4, 1e-2]}, {int: [1, 8]} or {choice: [a, b]}, got %s", describe(n))
		return Dist{}, false
	}
	p := n.pairs[0]
	field = join(field, p.key)
	if !slices.Contains(distKinds, p.key) {
		d.errorf(p.line, field, "unknown distribution %q%s; allowed: %s", p.key, suggest(p.key, distKinds), allowedList(distKinds))
		return Dist{}, false
	}
	dist := Dist{Kind: DistKind(p.key)}
	if dist.Kind == Choice {
		vals, ok := d.values(p.val, field)
		dist.Choices = vals
		return dist, ok
	}
	lo, hi, ok := d.pairOf(p.val, field)
	if !ok {
		return Dist{}, false
	}
	dist.Low, dist.High = lo, hi
	switch {
	case dist.Kind == IntUniform && (lo != math.Trunc(lo) || hi != math.Trunc(hi)):
		d.errorf(p.val.line, field, "want whole-number bounds, got [%s, %s]", fmtNum(lo), fmtNum(hi))
	case dist.Kind == IntUniform && (math.Abs(lo) > 1<<53 || math.Abs(hi) > 1<<53):
		// Past 2^53 a float64 skips whole numbers, so the draws would not
		// be uniform over the integers.
		d.errorf(p.val.line, field, "bounds [%s, %s] are too large; int bounds must be at most 2^53 (%d) in magnitude", fmtNum(lo), fmtNum(hi), int64(1)<<53)
	case dist.Kind == IntUniform && lo > hi:
		d.errorf(p.val.line, field, "want low <= high, got [%s, %s]", fmtNum(lo), fmtNum(hi))
	case dist.Kind != IntUniform && lo >= hi:
		d.errorf(p.val.line, field, "want low < high, got [%s, %s]", fmtNum(lo), fmtNum(hi))
	case dist.Kind == LogUniform && lo <= 0:
		d.errorf(p.val.line, field, "loguniform needs a positive range, got low %s; use uniform or raise low", fmtNum(lo))
	default:
		return dist, true
	}
	return Dist{}, false
}

// sample returns draw number i of dist for a Random with the given seed.
// Each (seed, draw, name) has its own hash-derived stream, so adding draws
// or parameters never changes the values already drawn, and the result
// does not depend on any library's random number generator.
func (dist Dist) sample(seed int64, i int) any {
	h := sha256.New()
	fmt.Fprintf(h, "asymptote/random/v1\x00%d\x00%d\x00%s", seed, i, dist.Name)
	u := float64(binary.BigEndian.Uint64(h.Sum(nil))>>11) / (1 << 53) // in [0, 1)
	switch dist.Kind {
	case Choice:
		return dist.Choices[int(u*float64(len(dist.Choices)))]
	case IntUniform:
		return dist.Low + math.Floor(u*(dist.High-dist.Low+1))
	case LogUniform:
		return round12(math.Exp(math.Log(dist.Low) + u*(math.Log(dist.High)-math.Log(dist.Low))))
	}
	return round12(lerp(dist.Low, dist.High, u))
}

func (d *decoder) derived(n *node, s *Spec, defs map[string]definition, define func(string, string, int, bool) bool) {
	if !d.isMapping(n, "derived", "of parameter names to expressions, as in {tokens: 20 * params}") {
		return
	}
	byName := map[string]*Derived{}
	lines := map[string]int{}
	var names []string
	for _, p := range n.pairs {
		if d.full() {
			return
		}
		field := join("derived", p.key)
		v, ok := d.scalar(p.val, field)
		if !ok {
			continue
		}
		src := p.val.value
		if b, isBool := v.(bool); isBool {
			d.errorf(p.val.line, field, "want an expression such as \"6 * params * tokens\", got %t", b)
			continue
		}
		ast, err := parseExpr(src)
		if err != nil {
			d.errorf(p.val.line, field, "%v", err)
			continue
		}
		if define(p.key, field, p.line, true) {
			byName[p.key] = &Derived{Name: p.key, Expr: src, ast: ast}
			lines[p.key] = p.line
			names = append(names, p.key)
		}
	}
	known := make([]string, 0, len(defs))
	for name := range defs {
		known = append(known, name)
	}
	sort.Strings(known)
	ok := true
	for _, name := range names {
		if d.full() {
			return
		}
		for _, ref := range byName[name].ast.names() {
			def, found := defs[ref]
			switch {
			case !found:
				d.errorf(lines[name], join("derived", name), "unknown parameter %q%s; expressions may use: %s", ref, suggest(ref, known), allowedList(known))
				ok = false
			case !def.numeric:
				d.errorf(lines[name], join("derived", name), "parameter %q (%s) is not a number, so it cannot be used in an expression", ref, def.field)
				ok = false
			}
		}
	}
	if !ok {
		return
	}
	order, cycle := topoSort(names, func(name string) []string {
		var deps []string
		for _, ref := range byName[name].ast.names() {
			if byName[ref] != nil {
				deps = append(deps, ref)
			}
		}
		return deps
	})
	if cycle != nil {
		d.errorf(lines[cycle[0]], join("derived", cycle[0]), "derived parameters refer to each other in a cycle: %s; break the cycle with a fixed or grid parameter", strings.Join(cycle, " -> "))
		return
	}
	for _, name := range order {
		s.Derived = append(s.Derived, *byName[name])
	}
}

// topoSort orders names so that each comes after its dependencies, taking
// names in sorted order where there is a choice. If there is a cycle it
// returns one, starting and ending with the same name.
func topoSort(names []string, deps func(string) []string) (order, cycle []string) {
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(string) bool
	visit = func(n string) bool {
		switch state[n] {
		case done:
			return true
		case visiting:
			i := len(stack) - 1
			for stack[i] != n {
				i--
			}
			cycle = append(append([]string(nil), stack[i:]...), n)
			return false
		}
		state[n] = visiting
		stack = append(stack, n)
		ds := deps(n)
		sort.Strings(ds)
		for _, dep := range ds {
			if !visit(dep) {
				return false
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		order = append(order, n)
		return true
	}
	for _, n := range sorted {
		if !visit(n) {
			return nil, cycle
		}
	}
	return order, nil
}

func isNumber(v any) bool {
	_, ok := v.(float64)
	return ok
}

func allNumbers(vals []any) bool {
	for _, v := range vals {
		if !isNumber(v) {
			return false
		}
	}
	return true
}

// round12 rounds x to 12 significant digits, hiding the last-bit noise of
// generated values so that they print, and hash, as people expect.
func round12(x float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 12, 64), 64)
	if r == 0 {
		return 0 // never -0
	}
	return r
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
