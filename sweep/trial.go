package sweep

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
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
}

// TrialID returns the identity of a trial: the first 20 hex digits of the
// SHA-256 of a canonical encoding of its method, version constraint,
// parameters and seed. The encoding sorts parameter names, tags every value
// with its type and formats numbers with strconv 'g' -1, so 1e6 and 1000000
// give the same ID while the string "1" and the number 1 do not. Integer
// Go types are treated as the float64 they convert to; -0 is 0.
func TrialID(method, version string, params map[string]any, seed int64) string {
	sum := sha256.Sum256([]byte(canonicalTrial(method, version, params, seed)))
	return hex.EncodeToString(sum[:])[:20]
}

// canonicalTrial is the encoding TrialID hashes. Changing it changes every
// ID, so it is versioned and covered by golden tests.
func canonicalTrial(method, version string, params map[string]any, seed int64) string {
	var b strings.Builder
	b.WriteString("asymptote/trial/v1\n")
	fmt.Fprintf(&b, "method %s\nversion %s\n", strconv.Quote(method), strconv.Quote(version))
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "param %s %s\n", strconv.Quote(n), canonicalValue(params[n]))
	}
	fmt.Fprintf(&b, "seed %d\n", seed)
	return b.String()
}

// canonicalValue encodes one parameter value with a type tag.
func canonicalValue(v any) string {
	switch v := v.(type) {
	case float64:
		return "f:" + canonicalFloat(v)
	case float32:
		return "f:" + canonicalFloat(float64(v))
	case int:
		return "f:" + canonicalFloat(float64(v))
	case int64:
		return "f:" + canonicalFloat(float64(v))
	case int32:
		return "f:" + canonicalFloat(float64(v))
	case string:
		return "s:" + strconv.Quote(v)
	case bool:
		return "b:" + strconv.FormatBool(v)
	}
	return "?:" + strconv.Quote(fmt.Sprintf("%T %v", v, v))
}

func canonicalFloat(f float64) string {
	if f == 0 {
		f = 0 // -0 is 0
	}
	if math.IsNaN(f) {
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
