package sweep

import (
	"fmt"
	"sort"
	"strings"
)

// SpecError is one problem in a study spec. Parse returns every problem it
// finds, each as a *SpecError, joined with errors.Join; use errors.As to get
// the first one.
type SpecError struct {
	// File is the file name given to Parse.
	File string
	// Line is the 1-based line of the offending value, or 0 when the
	// problem has no single place (a missing required key).
	Line int
	// Field is the dotted path of the offending key, such as
	// "space.lr.scale"; empty for syntax errors.
	Field string
	// Msg says what is wrong, what is allowed and how to fix it.
	Msg string
}

// Error formats the error as "file:line: field: msg", leaving out the parts
// that are empty.
func (e *SpecError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Field)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// suggest returns ` did you mean "x"?` when one of allowed is within a small
// edit distance of got, and "" otherwise.
func suggest(got string, allowed []string) string {
	best, bestD := "", 3 // suggest only within two edits
	for _, a := range allowed {
		if d := editDistance(strings.ToLower(got), strings.ToLower(a)); d < bestD && d < len(got) {
			best, bestD = a, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// allowedList formats names for an "allowed:" clause.
func allowedList(names []string) string {
	s := append([]string(nil), names...)
	sort.Strings(s)
	return strings.Join(s, ", ")
}
