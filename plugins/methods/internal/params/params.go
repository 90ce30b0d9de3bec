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
	r := &Reader{req: req}
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
	if len(unknown) > 0 {
		slices.Sort(unknown)
		r.err = &sdk.ParamError{Param: unknown[0], Reason: "unknown parameter; this method takes " + strings.Join(names, ", ")}
	}
	return r
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
