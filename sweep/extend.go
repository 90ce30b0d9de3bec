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
