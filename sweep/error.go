package sweep

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
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
	// "space.lr.scale"; empty for syntax errors. Characters of a key that
	// do not print are escaped (fixed.lr\u200f), and a path longer than
	// a few hundred bytes keeps only its ends.
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

// suggest returns ` (did you mean "x"?)` when one of allowed is within two
// edits of got (ignoring case), and "" otherwise. Among equally close
// names it prefers one of got's length, then the first.
func suggest(got string, allowed []string) string {
	best, bestD := "", 3
	lower := strings.ToLower(got)
	for _, a := range allowed {
		la := strings.ToLower(a)
		// Names whose lengths differ by more than two are more than two
		// edits apart; skipping them keeps a 1 MiB key from costing a
		// 1 MiB-by-n table per allowed name.
		if len(lower)-len(la) > 2 || len(la)-len(lower) > 2 {
			continue
		}
		d := EditDistance(lower, la)
		if d >= len(got) {
			continue
		}
		if d < bestD || (d == bestD && len(a) == len(got) && len(best) != len(got)) {
			best, bestD = a, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// EditDistance is the optimal string alignment distance between a and b,
// in bytes: insertions, deletions, substitutions and swaps of adjacent
// bytes each cost one, so the typo "spcae" is one edit from "space". The
// spec's errors and the built-in methods' parameter errors use it to
// suggest the name meant.
func EditDistance(a, b string) int {
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

// allowedList formats names for an "allowed:" clause.
func allowedList(names []string) string {
	s := append([]string(nil), names...)
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// Bounds on what one error repeats of the spec: a message that quoted a
// 1 MiB value in full would be as large as the spec, and would be stored,
// logged and sent back whole.
const (
	maxMsgBytes   = 1024
	maxFieldBytes = 256
)

// shorten returns s if it has at most max bytes, and otherwise its start
// and end joined by a note of how much was left out. The end is kept
// because messages end with the fix.
func shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	head, tail := max*3/5, max/3
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	cut := len(s) - tail
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	return fmt.Sprintf("%s…(%d bytes left out)…%s", s[:head], cut-head, s[cut:])
}

// visible escapes the characters of s that do not print (a NUL, a
// right-to-left mark, a byte order mark) as Go does in quoted strings, so
// that a field path shows a key's invisible characters instead of hiding
// them or garbling the terminal.
func visible(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsPrint(r) {
			b.WriteRune(r)
		} else {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}
