package sweep

import (
	"fmt"
	"iter"
	"maps"
	"math"
	"sort"
	"strings"
)

// Expand lists the spec's trials. The order is deterministic: seeds in the
// order given, outermost, so the first pass covers every configuration once
// before any replicate; within a seed, the grid in odometer order over axes
// sorted by name (the last axis varies fastest, values in the order given);
// within a grid point, the random draws in order. Trials whose parameters
// and seed coincide (a choice-only random space can repeat itself) appear
// once, at their first position. Expand fails when a derived parameter is
// not a finite number or the spec has more than MaxTrials trials, and, for
// a Spec not made by Parse, when a value or draw is not a finite number.
func (s *Spec) Expand() ([]Trial, error) {
	n, _ := s.size()
	trials := make([]Trial, 0, min(n, MaxTrials))
	for t, err := range s.Trials() {
		if err != nil {
			return nil, err
		}
		trials = append(trials, t)
	}
	return trials, nil
}

// Trials yields the trials Expand returns, in the same order, one at a
// time, so a caller can store a large study without holding every trial in
// memory. After an error it yields nothing more.
func (s *Spec) Trials() iter.Seq2[Trial, error] {
	return func(yield func(Trial, error) bool) {
		n, parts := s.size()
		if n > MaxTrials {
			yield(Trial{}, fmt.Errorf("expand %s: %s, over the limit of %d", s.Name, parts, MaxTrials))
			return
		}
		if n == 0 {
			// Only a hand-built Spec has an empty axis, no seeds or no
			// draws; its product is empty.
			return
		}
		derived, err := s.derivedASTs()
		if err == nil {
			err = s.checkValues()
		}
		if err != nil {
			yield(Trial{}, fmt.Errorf("expand %s: %w", s.Name, err))
			return
		}
		axes := append([]Axis(nil), s.Axes...)
		sort.SliceStable(axes, func(i, j int) bool { return axes[i].Name < axes[j].Name })
		draws, err := s.draws()
		if err != nil {
			yield(Trial{}, fmt.Errorf("expand %s: %w", s.Name, err))
			return
		}
		// Every trial has the same parameter names, so they are sorted
		// once for all the IDs.
		var names []string
		seen := map[string]bool{} // parameter names, then trial IDs
		add := func(name string) {
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
		for _, a := range axes {
			add(a.Name)
		}
		for name := range draws[0] {
			add(name)
		}
		for name := range s.Fixed {
			add(name)
		}
		for _, d := range derived {
			add(d.Name)
		}
		sort.Strings(names)
		clear(seen)

		index := 0
		hb := s.Search.hyperband()
		var assign *bracketing
		if hb != nil {
			assign = hb.bracketing(derived)
		}
		idx := make([]int, len(axes)) // odometer over the axes
		for _, seed := range s.Seeds {
			clear(idx)
			for {
				for _, draw := range draws {
					params := make(map[string]any, len(names))
					for i, a := range axes {
						params[a.Name] = a.Values[idx[i]]
					}
					maps.Copy(params, draw)
					maps.Copy(params, s.Fixed)
					bracket := 0
					if assign != nil {
						bracket = assign.of(params)
						params[hb.Fidelity] = hb.Rungs[bracket-1]
					}
					if err := evalDerived(derived, params); err != nil {
						yield(Trial{}, fmt.Errorf("expand %s: %w", s.Name, err))
						return
					}
					id := bracketID(bracket, s.Method, s.MethodVersion, s.Command.identity(), names, params, seed)
					if seen[id] {
						continue
					}
					seen[id] = true
					if !yield(Trial{ID: id, Index: index, Method: s.Method, MethodVersion: s.MethodVersion, Params: params, Seed: seed, Bracket: bracket}, nil) {
						return
					}
					index++
				}
				if !advance(idx, axes) {
					break
				}
			}
		}
	}
}

// advance steps the odometer idx and reports false once it wraps around.
func advance(idx []int, axes []Axis) bool {
	for i := len(idx) - 1; i >= 0; i-- {
		idx[i]++
		if idx[i] < len(axes[i].Values) {
			return true
		}
		idx[i] = 0
	}
	return false
}

// draws returns the random draws, or one empty draw when the spec has no
// random section. Parse only accepts distributions whose draws are finite;
// a hand-built one that yields NaN or an infinity is an error, since no
// trial may carry one.
func (s *Spec) draws() ([]map[string]any, error) {
	if s.Random == nil {
		return []map[string]any{nil}, nil
	}
	for _, d := range s.Random.Dists {
		if d.Kind == Choice && len(d.Choices) == 0 {
			return nil, fmt.Errorf("random.space.%s: a choice needs at least one value", d.Name)
		}
	}
	out := make([]map[string]any, s.Random.Count)
	for i := range out {
		out[i] = make(map[string]any, len(s.Random.Dists))
		for _, d := range s.Random.Dists {
			v := d.sample(s.Random.Seed, i)
			if !finiteValue(v) {
				return nil, fmt.Errorf("random.space.%s: draw %d is %v, not a finite number; check the distribution's bounds", d.Name, i, v)
			}
			out[i][d.Name] = v
		}
	}
	return out, nil
}

// checkValues refuses grid and fixed values that are not finite numbers.
// Parse never makes one, but a hand-built Spec (or an Extend of one) may
// hold NaN, and a trial carrying it could not be encoded as JSON.
func (s *Spec) checkValues() error {
	for _, a := range s.Axes {
		for _, v := range a.Values {
			if !finiteValue(v) {
				return fmt.Errorf("space.%s: value %v is not a finite number", a.Name, v)
			}
		}
	}
	names := make([]string, 0, len(s.Fixed))
	for name := range s.Fixed {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if v := s.Fixed[name]; !finiteValue(v) {
			return fmt.Errorf("fixed.%s: value %v is not a finite number", name, v)
		}
	}
	if s.Random != nil {
		for _, d := range s.Random.Dists {
			for _, v := range d.Choices {
				if !finiteValue(v) {
					return fmt.Errorf("random.space.%s: choice %v is not a finite number", d.Name, v)
				}
			}
		}
	}
	return nil
}

// finiteValue reports whether v is not a NaN or infinite float.
func finiteValue(v any) bool {
	switch f := v.(type) {
	case float64:
		return !math.IsNaN(f) && !math.IsInf(f, 0)
	case float32:
		return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0)
	}
	return true
}

// derivedASTs returns the parsed expressions of s.Derived, parsing those a
// hand-built Spec did not get from Parse.
func (s *Spec) derivedASTs() ([]Derived, error) {
	out := append([]Derived(nil), s.Derived...)
	for i := range out {
		if out[i].ast != nil {
			continue
		}
		ast, err := parseExpr(out[i].Expr)
		if err != nil {
			return nil, fmt.Errorf("derived.%s: %w", out[i].Name, err)
		}
		out[i].ast = ast
	}
	return out, nil
}

// evalDerived adds the derived parameters to params, in order.
func evalDerived(derived []Derived, params map[string]any) error {
	if len(derived) == 0 {
		return nil
	}
	env := make(map[string]float64)
	for _, d := range derived {
		for _, name := range d.ast.names() {
			if f, ok := params[name].(float64); ok {
				env[name] = f
			}
		}
		v, err := d.ast.eval(env)
		if err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
			err = fmt.Errorf("%s is not a finite number", fmtNum(v))
		}
		if err != nil {
			return fmt.Errorf("derived.%s = %s: %w for %s", d.Name, d.Expr, err, describeParams(params))
		}
		v = round12(v)
		env[d.Name] = v
		params[d.Name] = v
	}
	return nil
}

func describeParams(params map[string]any) string {
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%v", n, params[n])
	}
	// A trial may hold a 64 KiB string; the error needs only a glimpse.
	return shorten("{"+strings.Join(parts, ", ")+"}", maxMsgBytes)
}
