// Package params reads a trial's parameters with ranges, so every built-in
// method rejects bad values with an *sdk.ParamError that names the parameter
// and the range it allows.
package params

import (
	"fmt"
	"slices"
	"strings"

	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/sweep"
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
		d := sweep.EditDistance(strings.ToLower(name), strings.ToLower(n))
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
