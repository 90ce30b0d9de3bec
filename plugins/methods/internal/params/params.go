// Package params reads a trial's parameters with ranges, so every built-in
// method rejects bad values with an *sdk.ParamError that names the parameter
// and the range it allows.
package params

import (
	"fmt"
	"slices"
	"strings"

	"asymptote.dev/asymptote/plugins/sdk"
)

// Reader reads parameters from a request and keeps the first error.
type Reader struct {
	req *sdk.TrialRequest
	err error
}

// New returns a Reader for req. It records an error for any parameter not
// listed in known, so that a misspelt name fails the trial instead of
// silently running with a default.
func New(req *sdk.TrialRequest, known []sdk.ParamInfo) *Reader {
	return &Reader{req: req, err: Unknown(req, known)}
}

// Unknown returns a *sdk.ParamError for the first (by name) parameter of
// req not listed in known, suggesting the nearest known name, or nil.
// Methods call it before loading data, so a misspelt name is reported
// whatever else is wrong.
func Unknown(req *sdk.TrialRequest, known []sdk.ParamInfo) error {
	names := make([]string, len(known))
	for i, p := range known {
		names[i] = p.Name
	}
	var unknown []string
	for name := range req.Params {
		if !slices.Contains(names, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	reason := "unknown parameter; "
	if near, ok := Nearest(unknown[0], names); ok {
		reason += fmt.Sprintf("did you mean %q? ", near)
	}
	return &sdk.ParamError{Param: unknown[0], Reason: reason + "this method takes " + strings.Join(names, ", ")}
}

// Nearest returns the name in names closest to name by edit distance
// (ignoring case, a swap of neighbours counting as one edit), when it is
// close enough to be a likely misspelling: one edit in a name of up to 4
// bytes, two up to 11, a quarter of the length beyond, and never as many
// edits as the name is long.
func Nearest(name string, names []string) (string, bool) {
	best, bestD := "", -1
	for _, n := range names {
		d := editDistance(strings.ToLower(name), strings.ToLower(n))
		if bestD < 0 || d < bestD {
			best, bestD = n, d
		}
	}
	allowed := max(2, len(name)/4)
	if len(name) <= 4 {
		allowed = 1
	}
	if bestD < 0 || bestD > allowed || bestD >= len(name) {
		return "", false
	}
	return best, true
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// bytes each cost one.
func editDistance(a, b string) int {
	// d[i][j] is the distance between a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// Has reports whether the request sets name.
func (r *Reader) Has(name string) bool {
	_, ok := r.req.Params[name]
	return ok
}

// Int returns the integer parameter name (def when absent), which must lie
// in [lo, hi].
func (r *Reader) Int(name string, def, lo, hi int64) int {
	v, err := r.req.Int(name, def)
	if err == nil && (v < lo || v > hi) {
		err = &sdk.ParamError{Param: name, Reason: fmt.Sprintf("%d is out of range; want an integer in [%d, %d]", v, lo, hi)}
	}
	r.keep(err)
	return int(v)
}

// Float returns the numeric parameter name (def when absent), which must lie
// in [lo, hi].
func (r *Reader) Float(name string, def, lo, hi float64) float64 {
	v, err := r.req.Float(name, def)
	if err == nil && (v < lo || v > hi) {
		err = &sdk.ParamError{Param: name, Reason: fmt.Sprintf("%g is out of range; want a number in [%g, %g]", v, lo, hi)}
	}
	r.keep(err)
	return v
}

// Fail records err unless an earlier error is already kept.
func (r *Reader) Fail(err error) { r.keep(err) }

func (r *Reader) keep(err error) {
	if r.err == nil && err != nil {
		r.err = err
	}
}

// Err returns the first error met, or nil.
func (r *Reader) Err() error { return r.err }
