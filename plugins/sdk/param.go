package sdk

import (
	"fmt"
	"math"
)

// Float returns the numeric parameter name, or def when it is absent.
func (r *TrialRequest) Float(name string, def float64) (float64, error) {
	v, ok := r.Params[name]
	if !ok {
		return def, nil
	}
	f, ok := v.(float64)
	if !ok {
		return 0, &ParamError{Param: name, Reason: fmt.Sprintf("want a number, got %T %v", v, v)}
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, &ParamError{Param: name, Reason: "want a finite number"}
	}
	return f, nil
}

// Int returns the integer parameter name, or def when it is absent. A number
// with a fractional part is an error.
func (r *TrialRequest) Int(name string, def int64) (int64, error) {
	f, err := r.Float(name, float64(def))
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, &ParamError{Param: name, Reason: fmt.Sprintf("want an integer, got %v", f)}
	}
	return int64(f), nil
}

// String returns the string parameter name, or def when it is absent.
func (r *TrialRequest) String(name, def string) (string, error) {
	v, ok := r.Params[name]
	if !ok {
		return def, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", &ParamError{Param: name, Reason: fmt.Sprintf("want a string, got %T %v", v, v)}
	}
	return s, nil
}

// Bool returns the boolean parameter name, or def when it is absent.
func (r *TrialRequest) Bool(name string, def bool) (bool, error) {
	v, ok := r.Params[name]
	if !ok {
		return def, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, &ParamError{Param: name, Reason: fmt.Sprintf("want true or false, got %T %v", v, v)}
	}
	return b, nil
}
