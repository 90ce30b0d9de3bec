package sweep

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
)

// Trial is one run of a method: a point in the parameter space with a seed.
type Trial struct {
	// ID is TrialID of the other fields except Index; it is the trial's
	// identity across resubmissions and coordinator restarts.
	ID string
	// Index is the trial's position in its spec's expansion.
	Index int
	// Method and MethodVersion come from the spec.
	Method        string
	MethodVersion string
	// Params are the resolved parameters: grid, random, fixed and derived.
	// Numbers are always float64, strings string and bools bool.
	Params map[string]any
	// Seed is the trial's seed.
	Seed int64
	// Bracket is the Hyperband bracket the trial belongs to, from 1; 0
	// for a study without brackets. It is part of the trial's identity, so
	// one configuration may run at the same rung in two brackets.
	Bracket int
}

// TrialID returns the identity of a trial: the first 20 hex digits of the
// SHA-256 of a canonical encoding of its method, version constraint,
// parameters and seed. The encoding sorts parameter names, tags every value
// with its type and formats numbers with strconv 'g' -1, so 1e6 and 1000000
// give the same ID while the string "1" and the number 1 do not. Integer
// Go types are treated as the float64 they convert to; -0 is 0.
func TrialID(method, version string, params map[string]any, seed int64) string {
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	return trialID(method, version, "", names, params, seed)
}

// trialID is TrialID with the parameter names already sorted, and the
// method's configuration (a command section's canonical text; "" for
// none, which leaves every other trial's ID as it was).
func trialID(method, version, config string, names []string, params map[string]any, seed int64) string {
	return bracketID(0, method, version, config, names, params, seed)
}

// bracketID is trialID for a trial of Hyperband bracket b: the encoding
// ends with a line "bracket B" when b is above 0, so every trial without
// a bracket keeps its ID.
func bracketID(b int, method, version, config string, names []string, params map[string]any, seed int64) string {
	enc := appendCanonical(nil, method, version, config, names, params, seed)
	if b > 0 {
		enc = strconv.AppendInt(append(enc, "bracket "...), int64(b), 10)
		enc = append(enc, '\n')
	}
	sum := sha256.Sum256(enc)
	return hex.EncodeToString(sum[:10])
}

// appendCanonical appends the encoding TrialID hashes, one field a line:
//
//	asymptote/trial/v1
//	method "charlm"
//	version ">=1.0"
//	config "{\"program\":\"train.py\"}"   (only for a configured method)
//	param "lr" f:0.0003
//	seed 7
//
// Changing it changes every ID, so it is versioned and pinned by tests.
func appendCanonical(b []byte, method, version, config string, names []string, params map[string]any, seed int64) []byte {
	b = append(b, "asymptote/trial/v1\nmethod "...)
	b = strconv.AppendQuote(b, method)
	b = append(b, "\nversion "...)
	b = strconv.AppendQuote(b, version)
	b = append(b, '\n')
	if config != "" {
		b = append(b, "config "...)
		b = strconv.AppendQuote(b, config)
		b = append(b, '\n')
	}
	for _, n := range names {
		b = append(b, "param "...)
		b = strconv.AppendQuote(b, n)
		b = append(b, ' ')
		b = appendValue(b, params[n])
		b = append(b, '\n')
	}
	b = append(b, "seed "...)
	b = strconv.AppendInt(b, seed, 10)
	return append(b, '\n')
}

// canonicalValue encodes one parameter value with a type tag.
func canonicalValue(v any) string { return string(appendValue(nil, v)) }

func appendValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case float64:
		return appendFloat(append(b, "f:"...), v)
	case float32:
		return appendFloat(append(b, "f:"...), float64(v))
	case int:
		return appendFloat(append(b, "f:"...), float64(v))
	case int64:
		return appendFloat(append(b, "f:"...), float64(v))
	case int32:
		return appendFloat(append(b, "f:"...), float64(v))
	case string:
		return strconv.AppendQuote(append(b, "s:"...), v)
	case bool:
		return strconv.AppendBool(append(b, "b:"...), v)
	}
	return strconv.AppendQuote(append(b, "?:"...), fmt.Sprintf("%T %v", v, v))
}

func appendFloat(b []byte, f float64) []byte {
	if f == 0 {
		f = 0 // -0 is 0
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}
