package sweep

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// This file holds the rules of the spec subset that are about the text
// rather than the tree: what may appear on a line, how a one-line flow
// collection or quoted scalar is written, and, when the YAML library
// rejects a spec, which line breaks the subset and how.

// checkText checks what must hold of the whole text before the library
// reads it, and returns its lines with any "\r" before the '\n' dropped.
func checkText(src []byte) ([]string, error) {
	if !utf8.Valid(src) {
		i := 0
		for i < len(src) {
			r, size := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			i += size
		}
		return nil, &yamlError{1 + bytes.Count(src[:i], []byte("\n")), fmt.Sprintf("the file is not valid UTF-8 (byte %#x); save it as UTF-8", src[i])}
	}
	text := strings.TrimPrefix(string(src), "\uFEFF")
	if i := strings.IndexFunc(text, notPrintable); i >= 0 {
		r, _ := utf8.DecodeRuneInString(text[i:])
		return nil, &yamlError{1 + strings.Count(text[:i], "\n"), fmt.Sprintf("control character %U; YAML allows only printable characters", r)}
	}
	lines := strings.Split(text, "\n")
	content := false // a line before this one holds more than a comment
	for i := range lines {
		num, line := i+1, strings.TrimSuffix(lines[i], "\r")
		lines[i] = line
		if j := strings.IndexFunc(line, hiddenBreak); j >= 0 {
			r, _ := utf8.DecodeRuneInString(line[j:])
			return nil, &yamlError{num, fmt.Sprintf("character %U ends a line for YAML readers, though not for most editors; remove it, or write it as the escape \\u%04X in double quotes", r, r)}
		}
		rest := strings.TrimLeft(line, " ")
		if strings.HasPrefix(rest, "\t") {
			return nil, &yamlError{num, "tab in indentation; YAML indents with spaces only"}
		}
		if rest == "" || rest[0] == '#' {
			continue
		}
		if len(rest) == len(line) {
			switch {
			case marker(rest, "---"):
				if !content && blankOrComment(rest[3:]) {
					continue // an explicit start of the only document
				}
				return nil, &yamlError{num, "several documents in one file are not supported; put each study in its own file"}
			case marker(rest, "...") && blankOrComment(rest[3:]):
				return nil, &yamlError{num, `document end marker "..." is not supported`}
			case rest[0] == '%':
				return nil, &yamlError{num, "YAML directives are not supported"}
			}
		} else if !content {
			return nil, &yamlError{num, "the document must start at column 1"}
		}
		content = true
	}
	return lines, nil
}

// marker reports whether line starts with the document marker m.
func marker(line, m string) bool {
	return strings.HasPrefix(line, m) && (len(line) == len(m) || line[len(m)] == ' ' || line[len(m)] == '\t')
}

func blankOrComment(s string) bool {
	s = strings.TrimLeft(s, " \t")
	return s == "" || s[0] == '#'
}

// notPrintable reports characters YAML forbids in a document.
func notPrintable(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r' || r == 0x85:
		return false
	case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
		return true
	case r >= 0xd800 && r < 0xe000, r == 0xfffe, r == 0xffff:
		return true
	}
	return false
}

// hiddenBreak reports the characters YAML reads as line breaks that
// editors show within a line: a spec holding one would have more lines to
// the library than its author sees.
func hiddenBreak(r rune) bool { return r == '\r' || r == 0x85 || r == 0x2028 || r == 0x2029 }

// stripComment removes a trailing comment: a '#' at the start or after
// whitespace, outside quotes.
func stripComment(s string, num int) (string, error) {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '"' && c == '\\':
			i++
		case quote != 0:
			if c == quote {
				if quote == '\'' && i+1 < len(s) && s[i+1] == '\'' {
					i++ // '' is an escaped quote
					continue
				}
				quote = 0
			}
		case c == '"' || c == '\'':
			// A quote opens a quoted scalar only where one may start.
			if i == 0 || strings.ContainsRune(" [{,:-", rune(s[i-1])) {
				quote = c
			}
		case c == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return s[:i], nil
		}
	}
	return s, nil
}

func isSeqItem(text string) bool { return text == "-" || strings.HasPrefix(text, "- ") }

// looksLikeKey reports whether text is a "key: value" line rather than a
// scalar.
func looksLikeKey(text string) bool {
	// Most list items have no ':' at all; answering them without
	// splitKey spares an error value per item of a long list.
	if text[0] == '[' || text[0] == '{' || !strings.Contains(text, ":") {
		return false
	}
	_, _, err := splitKey(text, 0)
	return err == nil
}

// splitKey splits "key: rest" and returns the unquoted key and the offset
// just past the ':'.
func splitKey(text string, num int) (key string, colon int, err error) {
	if text[0] == '"' || text[0] == '\'' {
		s, end, err := quotedScalar(text, 0, num)
		if err != nil {
			return "", 0, err
		}
		after := text[end:]
		if after != ":" && !strings.HasPrefix(after, ": ") {
			return "", 0, &yamlError{num, fmt.Sprintf("want ':' after the key %q", s)}
		}
		return s, end + 1, nil
	}
	i := strings.Index(text, ": ")
	if i < 0 {
		if !strings.HasSuffix(text, ":") {
			return "", 0, &yamlError{num, fmt.Sprintf("want \"key: value\", got %q", text)}
		}
		i = len(text) - 1
	}
	key = strings.TrimRight(text[:i], " ")
	if err := checkPlain(key, num); err != nil {
		return "", 0, err
	}
	if strings.ContainsAny(key[:1], "[]{},") {
		return "", 0, &yamlError{num, fmt.Sprintf("a key cannot start with %q; quote it", key[:1])}
	}
	return key, i + 1, nil
}

// checkPlain rejects the YAML features this subset leaves out where they
// would otherwise be read as plain text.
func checkPlain(s string, num int) error {
	if s == "" {
		return &yamlError{num, "empty key"}
	}
	switch s[0] {
	case '&':
		return &yamlError{num, "anchors (&name) are not supported; repeat the value instead"}
	case '*':
		return &yamlError{num, "aliases (*name) are not supported; repeat the value instead"}
	case '!':
		return &yamlError{num, "tags (!type) are not supported; write the value plainly"}
	case '|', '>':
		return &yamlError{num, "block scalars (| and >) are not supported; write the value on one line, quoted if needed"}
	case '@', '`', '%', ',', ']', '}', '#':
		return &yamlError{num, fmt.Sprintf("a plain value cannot start with %q; quote it", s[:1])}
	case '?':
		if len(s) == 1 || s[1] == ' ' {
			return &yamlError{num, "complex keys (? key) are not supported"}
		}
	case ':':
		if len(s) == 1 || s[1] == ' ' {
			return &yamlError{num, "a value cannot start with \": \"; quote it"}
		}
	}
	return nil
}

// checkInline checks the value after "key:" or "- " on one line.
func checkInline(text string, num int, f *flow) error {
	switch text[0] {
	case '[', '{':
		f.s, f.num = text, num
		if err := f.check(); err != nil {
			return err
		}
		f.space()
		if f.i < len(f.s) {
			return f.errorf("unexpected %q after the closing bracket", f.s[f.i:])
		}
		return nil
	case '"', '\'':
		_, end, err := quotedScalar(text, 0, num)
		if err != nil {
			return err
		}
		if end != len(text) {
			return &yamlError{num, fmt.Sprintf("unexpected %q after the quoted value", text[end:])}
		}
		return nil
	}
	if err := checkPlain(text, num); err != nil {
		return err
	}
	if isSeqItem(text) {
		return &yamlError{num, fmt.Sprintf("a list cannot start on the line of its key (%q); put each \"- item\" on its own line or write [a, b]", text)}
	}
	if strings.Contains(text, ": ") || strings.HasSuffix(text, ":") {
		return &yamlError{num, fmt.Sprintf("nested mapping on one line (%q); put it on its own indented lines or write {key: value}", text)}
	}
	return nil
}

// quotedScalar reads the quoted scalar starting at s[i] and returns its
// value and the index just past the closing quote. Escapes are those of
// Go and JSON, which YAML readers agree on.
func quotedScalar(s string, i, num int) (string, int, error) {
	q := s[i]
	var b strings.Builder
	j := i + 1
	for j < len(s) {
		c := s[j]
		if q == '\'' {
			if c == '\'' {
				if j+1 < len(s) && s[j+1] == '\'' {
					b.WriteByte('\'')
					j += 2
					continue
				}
				return b.String(), j + 1, nil
			}
			b.WriteByte(c)
			j++
			continue
		}
		switch c {
		case '"':
			return b.String(), j + 1, nil
		case '\\':
			if j+1 < len(s) && s[j+1] == '/' { // YAML allows \/; Go does not
				b.WriteByte('/')
				j += 2
				continue
			}
			r, _, tail, err := strconv.UnquoteChar(s[j:], '"')
			if err != nil {
				return "", 0, &yamlError{num, fmt.Sprintf("bad escape sequence in %s", s[i:])}
			}
			b.WriteRune(r)
			j = len(s) - len(tail)
		default:
			b.WriteByte(c)
			j++
		}
	}
	return "", 0, &yamlError{num, fmt.Sprintf("unterminated quoted string %s; quoted values must end on the same line", s[i:])}
}

// flow checks a flow collection ([a, b] or {k: v}) written on one line.
type flow struct {
	s     string
	i     int
	num   int
	depth int
	// onKey, if set, is told of each key: the offsets of its start and of
	// the ':' after it.
	onKey func(start, colon int, key string)
}

func (f *flow) errorf(format string, args ...any) error {
	return &yamlError{f.num, fmt.Sprintf(format, args...)}
}

func (f *flow) space() {
	for f.i < len(f.s) && (f.s[f.i] == ' ' || f.s[f.i] == '\t') {
		f.i++
	}
}

// check checks the collection at the start of f.s, leaving f.i past its
// closing bracket.
func (f *flow) check() error {
	_, err := f.value()
	return err
}

// value checks one value and reports whether it is an empty plain scalar.
func (f *flow) value() (empty bool, err error) {
	f.space()
	if f.i >= len(f.s) {
		return false, f.errorf("unclosed bracket in %q; flow collections must end on the same line", f.s)
	}
	switch f.s[f.i] {
	case '[':
		return false, f.collection(']')
	case '{':
		return false, f.collection('}')
	case '"', '\'':
		_, end, err := quotedScalar(f.s, f.i, f.num)
		f.i = end
		return false, err
	}
	text, err := f.plain(false)
	return text == "", err
}

// plain reads a plain scalar up to a flow indicator. Inside a mapping key,
// ": " also ends it.
func (f *flow) plain(key bool) (string, error) {
	start := f.i
	for f.i < len(f.s) {
		c := f.s[f.i]
		if c == ',' || c == ']' || c == '}' || c == '[' || c == '{' {
			break
		}
		if c == ':' && (f.i+1 == len(f.s) || strings.ContainsRune(" ,]}", rune(f.s[f.i+1]))) {
			if key && f.i+1 < len(f.s) && f.s[f.i+1] == ' ' {
				break
			}
			return "", f.errorf("unexpected ':' in %q; write \"key: value\" with a space after ':', separate items with ',' and quote values that contain ':'", f.s[start:])
		}
		f.i++
	}
	text := strings.TrimRight(f.s[start:f.i], " \t")
	if text != "" {
		if err := checkPlain(text, f.num); err != nil {
			return "", err
		}
	}
	if strings.HasPrefix(text, "?") {
		// Inside brackets YAML readers take "?x" for the key x.
		return "", f.errorf("a value inside brackets cannot start with \"?\"; quote it, as in [%q]", text)
	}
	return text, nil
}

func (f *flow) collection(closer byte) error {
	if f.depth++; f.depth > maxDepth {
		return f.errorf("nesting deeper than %d levels", maxDepth)
	}
	defer func() { f.depth-- }()
	f.i++ // the opening bracket
	for {
		f.space()
		if f.i >= len(f.s) {
			return f.errorf("unclosed %q; flow collections must end on the same line", string(closer))
		}
		if f.s[f.i] == closer {
			f.i++
			return nil
		}
		if closer == ']' {
			empty, err := f.value()
			if err != nil {
				return err
			}
			if empty {
				return f.errorf("empty item in %q", f.s)
			}
		} else if err := f.pair(); err != nil {
			return err
		}
		f.space()
		switch {
		case f.i >= len(f.s):
			return f.errorf("unclosed %q; flow collections must end on the same line", string(closer))
		case f.s[f.i] == ',':
			f.i++
		case f.s[f.i] != closer:
			return f.errorf("want ',' or %q at %q", string(closer), f.s[f.i:])
		}
	}
}

func (f *flow) pair() error {
	start := f.i
	var key string
	var err error
	if c := f.s[f.i]; c == '"' || c == '\'' {
		var end int
		key, end, err = quotedScalar(f.s, f.i, f.num)
		f.i = end
	} else {
		key, err = f.plain(true)
	}
	if err != nil {
		return err
	}
	if key == "" {
		return f.errorf("empty key in %q", f.s)
	}
	f.space()
	if f.i >= len(f.s) || f.s[f.i] != ':' {
		return f.errorf("want ':' after the key %q", key)
	}
	f.i++
	if f.onKey != nil {
		f.onKey(start, f.i, key)
	}
	f.space()
	if f.i < len(f.s) && f.s[f.i] != ',' && f.s[f.i] != '}' {
		_, err = f.value()
	}
	return err
}

// linter walks the lines of a spec the library rejected, to find the first
// that breaks the subset and say how in the subset's terms. It also finds
// the keys on a line, for shortenKeys.
type linter struct {
	levels []level // the open block collections, outermost first
	// opened says the last line ended in "key:" or "-", so that a deeper
	// block may start.
	opened bool
	// structure says to check indentation; without it lines are read
	// alone.
	structure bool
	flow      flow
	onKey     func(start, colon int, key string)
	depth     int
}

type level struct {
	indent int
	seq    bool
}

// explain reports why the library rejected the spec: the first line that
// breaks the subset, or else what the library said.
func (r *reader) explain(libErr error) error {
	l := &linter{structure: true, opened: true}
	for i, line := range r.lines {
		rest := strings.TrimLeft(line, " ")
		body, err := stripComment(rest, i+1)
		if err != nil {
			return err
		}
		body = strings.TrimRight(body, " \t")
		if body == "" || (body == "---" && len(rest) == len(line)) {
			continue
		}
		if err := l.line(i+1, len(line)-len(rest), body); err != nil {
			return err
		}
	}
	// The library names a line only sometimes, and not always the right
	// one: the first lines it cannot read are the ones to name.
	lo, hi := 0, len(r.lines) // lines[:lo] read, lines[:hi] do not
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		var doc yaml.Node
		if yaml.Unmarshal([]byte(strings.Join(r.shown[:mid], "\n")), &doc) == nil {
			lo = mid
		} else {
			hi = mid
		}
	}
	msg := strings.TrimPrefix(libErr.Error(), "yaml: ")
	if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
		msg = rest
	}
	return &yamlError{hi, "not valid YAML: " + msg}
}

// line checks one line whose text starts at column indent+1.
func (l *linter) line(num, indent int, text string) error {
	seq := isSeqItem(text)
	if l.structure {
		if err := l.place(num, indent, seq); err != nil {
			return err
		}
	} else if l.depth++; l.depth > maxDepth {
		return &yamlError{num, fmt.Sprintf("nesting deeper than %d levels", maxDepth)}
	}
	if seq {
		rest := strings.TrimLeft(text[1:], " ")
		col := indent + len(text) - len(rest)
		l.opened = rest == ""
		switch {
		case rest == "":
			return nil
		case isSeqItem(rest) || looksLikeKey(rest):
			// "- key: v" or "- - x" starts a nested block whose first
			// line is the rest of this one.
			l.opened = true
			return l.line(num, col, rest)
		}
		return l.inline(num, col, rest)
	}
	key, colon, err := splitKey(text, num)
	if err != nil {
		return err
	}
	if l.onKey != nil {
		l.onKey(indent, indent+colon, key)
	}
	rest := strings.TrimLeft(text[colon:], " ")
	l.opened = rest == ""
	if rest == "" {
		return nil
	}
	return l.inline(num, indent+len(text)-len(rest), rest)
}

// inline checks a value that starts at offset col of its line.
func (l *linter) inline(num, col int, text string) error {
	l.flow = flow{}
	if l.onKey != nil {
		l.flow.onKey = func(start, colon int, key string) { l.onKey(col+start, col+colon, key) }
	}
	return checkInline(text, num, &l.flow)
}

// place checks the indentation of a line that starts a list item (seq)
// or a "key: value".
func (l *linter) place(num, indent int, seq bool) error {
	if l.opened && (len(l.levels) == 0 || indent > l.levels[len(l.levels)-1].indent) {
		if len(l.levels) == maxDepth {
			return &yamlError{num, fmt.Sprintf("nesting deeper than %d levels", maxDepth)}
		}
		l.levels = append(l.levels, level{indent, seq})
		return nil
	}
	for len(l.levels) > 1 && l.levels[len(l.levels)-1].indent > indent {
		l.levels = l.levels[:len(l.levels)-1]
	}
	top := l.levels[len(l.levels)-1]
	switch {
	case top.indent != indent:
		return &yamlError{num, "unexpected indentation"}
	case top.seq == seq:
	case seq && l.opened:
		// YAML lets a list under a key sit at the key's own indentation.
		l.levels = append(l.levels, level{indent, true})
	case seq:
		return &yamlError{num, `a list item "- " where a "key: value" line was expected`}
	case len(l.levels) > 1 && l.levels[len(l.levels)-2].indent == indent:
		l.levels = l.levels[:len(l.levels)-1] // the list under a key has ended
	default:
		return &yamlError{num, "unexpected indentation"}
	}
	return nil
}

// longKey is the length from which a key is shown to the library as a
// stand-in: it reads keys of at most 1024 characters, the limit the YAML
// specification sets, but specs have always allowed longer ones.
const longKey = 1000

// shortenKeys returns line with each key of longKey characters or more
// replaced, up to and including its ':', by "k:" and spaces, so that what
// follows keeps its column; r.keys records the keys so replaced. A line
// the subset rejects is returned as it is, for the library to reject.
func (r *reader) shortenKeys(num int, line string) string {
	type span struct {
		start, colon int
		key          string
	}
	var spans []span
	l := &linter{onKey: func(start, colon int, key string) {
		if utf8.RuneCountInString(line[start:colon]) >= longKey {
			spans = append(spans, span{start, colon, key})
		}
	}}
	rest := strings.TrimLeft(line, " ")
	body, _ := stripComment(rest, num)
	if body = strings.TrimRight(body, " \t"); body == "" {
		return line
	}
	if err := l.line(num, len(line)-len(rest), body); err != nil || len(spans) == 0 {
		return line
	}
	var b strings.Builder
	prev, col := 0, 1 // col is the column of line[prev]
	for _, s := range spans {
		b.WriteString(line[prev:s.start])
		col += utf8.RuneCountInString(line[prev:s.start])
		r.keys[[2]int{num, col}] = s.key
		width := utf8.RuneCountInString(line[s.start:s.colon])
		b.WriteString("k:")
		b.WriteString(strings.Repeat(" ", width-2))
		prev, col = s.colon, col+width
	}
	b.WriteString(line[prev:])
	return b.String()
}

// hideSlashes returns line with each escape \/ in double quotes, which
// the library does not know, written \P, which the subset does not allow,
// and notes the line in r.slashes.
func (r *reader) hideSlashes(num int, line string) string {
	b := []byte(line)
	var quote byte
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case quote == '"' && c == '\\':
			if i+1 < len(b) && b[i+1] == '/' {
				b[i+1] = 'P'
				r.slashes[num] = true
			}
			i++
		case quote != 0:
			if c == quote {
				quote = 0 // '' in single quotes closes and reopens
			}
		case c == '"' || c == '\'':
			if i == 0 || strings.ContainsRune(" [{,:-", rune(b[i-1])) {
				quote = c
			}
		case c == '#' && (i == 0 || b[i-1] == ' ' || b[i-1] == '\t'):
			return string(b)
		}
	}
	return string(b)
}
