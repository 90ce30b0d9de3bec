package sweep

import (
	"fmt"
	"math"
	"slices"
)

// Extend returns a copy of s whose grid axis name has value added. The copy
// expands to every trial of s plus the new value's trials, whose
// identities follow from their parameters as always, so the trials s
// already has keep theirs. Extend refuses a value the axis already has or a
// name that is not a grid axis.
func (s *Spec) Extend(name string, value any) (*Spec, error) {
	i := slices.IndexFunc(s.Axes, func(a Axis) bool { return a.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("extend %s: %q is not a grid axis", s.Name, name)
	}
	if !finiteValue(value) {
		return nil, fmt.Errorf("extend %s: axis %s cannot take %v: parameters must be finite numbers", s.Name, name, value)
	}
	if slices.Contains(s.Axes[i].Values, value) {
		return nil, fmt.Errorf("extend %s: axis %s already has %v", s.Name, name, value)
	}
	c := *s
	c.Axes = slices.Clone(s.Axes)
	c.Axes[i] = Axis{Name: name, Values: append(slices.Clone(s.Axes[i].Values), value)}
	if n, parts := c.size(); n > MaxTrials {
		return nil, fmt.Errorf("extend %s: %s, over the limit of %d", s.Name, parts, MaxTrials)
	}
	return &c, nil
}

// BeyondEdge returns the value one step past the first (last false) or last
// (last true) value of a numeric axis, keeping its spacing: a ratio when
// the axis's two edge values are positive and look log-spaced (ratio of at
// least 2), a difference otherwise. It reports false when the axis is not
// numeric, has fewer than two values, or when stepping down would cross
// zero on an axis with no negative values (a weight decay below 0, say).
func BeyondEdge(a Axis, last bool) (float64, bool) {
	if len(a.Values) < 2 || !allNumbers(a.Values) {
		return 0, false
	}
	vals := make([]float64, len(a.Values))
	for i, v := range a.Values {
		vals[i] = v.(float64)
	}
	slices.Sort(vals)
	edge, inner := vals[0], vals[1]
	if last {
		edge, inner = vals[len(vals)-1], vals[len(vals)-2]
	}
	var next float64
	if edge > 0 && inner > 0 && math.Max(edge/inner, inner/edge) >= 2 {
		next = edge * edge / inner
	} else {
		next = edge + (edge - inner)
	}
	if vals[0] >= 0 && next < 0 || next == edge || math.IsInf(next, 0) || math.IsNaN(next) {
		return 0, false
	}
	return round12(next), true
}

// Variant returns the trial of s whose parameters are those of base with
// the values in set replaced, derived parameters recomputed, and the given
// seed: the trial an adaptive search adds for one configuration (a
// promotion to a higher fidelity, say) without extending the whole grid.
// Every name in set must be a parameter of base that no derived parameter
// defines.
func (s *Spec) Variant(base map[string]any, set map[string]any, seed int64) (Trial, error) {
	return s.VariantIn(0, base, set, seed)
}

// VariantIn is Variant for a trial of Hyperband bracket b (0 for none).
func (s *Spec) VariantIn(b int, base map[string]any, set map[string]any, seed int64) (Trial, error) {
	derived, err := s.derivedASTs()
	if err != nil {
		return Trial{}, err
	}
	params := make(map[string]any, len(base))
	for k, v := range base {
		params[k] = v
	}
	for k, v := range set {
		if _, ok := params[k]; !ok {
			return Trial{}, fmt.Errorf("variant of %s: no parameter %q", s.Name, k)
		}
		if slices.ContainsFunc(derived, func(d Derived) bool { return d.Name == k }) {
			return Trial{}, fmt.Errorf("variant of %s: %q is derived; set what it is derived from", s.Name, k)
		}
		if !finiteValue(v) {
			return Trial{}, fmt.Errorf("variant of %s: %s = %v: parameters must be finite numbers", s.Name, k, v)
		}
		params[k] = v
	}
	if err := evalDerived(derived, params); err != nil {
		return Trial{}, fmt.Errorf("variant of %s: %w", s.Name, err)
	}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	slices.Sort(names)
	return Trial{ID: bracketID(b, s.Method, s.MethodVersion, s.Command.identity(), names, params, seed), Method: s.Method, MethodVersion: s.MethodVersion, Params: params, Seed: seed, Bracket: b}, nil
}
