package sweep

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file holds a parser for the small subset of YAML that study specs use:
// block mappings and sequences nested by indentation, single-line flow
// collections, plain and quoted scalars and comments. Everything else
// (anchors, aliases, tags, block scalars, several documents) is rejected
// with an error that names the line, so a spec never means something other
// than what it appears to say.

// kind is the shape of a YAML node.
type kind int

const (
	scalarNode kind = iota
	mapNode
	seqNode
)

func (k kind) String() string {
	switch k {
	case mapNode:
		return "a mapping"
	case seqNode:
		return "a list"
	}
	return "a scalar"
}

// node is one parsed YAML value with the line it starts on.
type node struct {
	kind  kind
	line  int
	value string // scalar text, unquoted
	// quoted marks a quoted scalar: it is always a string, never a
	// number, bool or null.
	quoted bool
	pairs  []pair  // mapNode, in source order
	items  []*node // seqNode
}

// pair is one key of a mapping.
type pair struct {
	key  string
	line int
	val  *node
}

// isNull reports whether n is an empty or null scalar.
func (n *node) isNull() bool {
	return n.kind == scalarNode && !n.quoted && (n.value == "" || n.value == "null" || n.value == "~")
}

// yamlError is a syntax error at a line; the spec decoder turns it into a
// *SpecError.
type yamlError struct {
	line int
	msg  string
}

func (e *yamlError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// line is one significant source line: comment stripped, indentation
// measured.
type line struct {
	num    int
	indent int
	text   string
}

// parseYAML parses src into a node tree. An empty document is an empty
// mapping.
func parseYAML(src []byte) (*node, error) {
	lines, err := splitLines(src)
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return &node{kind: mapNode, line: 1}, nil
	}
	p := &parser{lines: lines}
	if lines[0].indent != 0 {
		return nil, &yamlError{lines[0].num, "the document must start at column 1"}
	}
	root, err := p.block(0)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.lines) {
		l := p.lines[p.pos]
		return nil, &yamlError{l.num, "unexpected indentation; the document has ended at a shallower level"}
	}
	return root, nil
}

// splitLines drops blank lines and comments and checks indentation.
func splitLines(src []byte) ([]line, error) {
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
	out := make([]line, 0, strings.Count(text, "\n")+1)
	for i, raw := range strings.Split(text, "\n") {
		num := i + 1
		raw = strings.TrimSuffix(raw, "\r")
		indent := 0
		for indent < len(raw) && raw[indent] == ' ' {
			indent++
		}
		rest := raw[indent:]
		if strings.HasPrefix(rest, "\t") {
			return nil, &yamlError{num, "tab in indentation; YAML indents with spaces only"}
		}
		body, err := stripComment(rest, num)
		if err != nil {
			return nil, err
		}
		body = strings.TrimRight(body, " \t")
		if body == "" {
			continue
		}
		switch {
		case body == "---" || strings.HasPrefix(body, "--- "):
			if indent == 0 {
				if len(out) == 0 && body == "---" {
					continue // an explicit start of the only document
				}
				return nil, &yamlError{num, "several documents in one file are not supported; put each study in its own file"}
			}
		case body == "..." && indent == 0:
			return nil, &yamlError{num, `document end marker "..." is not supported`}
		case strings.HasPrefix(body, "%") && indent == 0:
			return nil, &yamlError{num, "YAML directives are not supported"}
		}
		out = append(out, line{num: num, indent: indent, text: body})
	}
	return out, nil
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

type parser struct {
	lines []line
	pos   int
	depth int
}

// maxDepth bounds nesting, so a hostile spec cannot exhaust the stack.
// Real specs nest four levels at most.
const maxDepth = 64

// block parses the block node whose first line is at p.pos with the given
// indentation.
func (p *parser) block(indent int) (*node, error) {
	l := p.lines[p.pos]
	if p.depth++; p.depth > maxDepth {
		return nil, &yamlError{l.num, fmt.Sprintf("nesting deeper than %d levels", maxDepth)}
	}
	defer func() { p.depth-- }()
	if isSeqItem(l.text) {
		return p.sequence(indent)
	}
	return p.mapping(indent)
}

func isSeqItem(text string) bool { return text == "-" || strings.HasPrefix(text, "- ") }

func (p *parser) mapping(indent int) (*node, error) {
	n := &node{kind: mapNode, line: p.lines[p.pos].num}
	seen := map[string]int{}
	for p.pos < len(p.lines) {
		l := p.lines[p.pos]
		if l.indent < indent {
			break
		}
		if l.indent > indent {
			return nil, &yamlError{l.num, "unexpected indentation"}
		}
		if isSeqItem(l.text) {
			return nil, &yamlError{l.num, `a list item "- " where a "key: value" line was expected`}
		}
		key, rest, err := splitKey(l.text, l.num)
		if err != nil {
			return nil, err
		}
		if first, dup := seen[key]; dup {
			return nil, &yamlError{l.num, fmt.Sprintf("duplicate key %q (first on line %d)", key, first)}
		}
		seen[key] = l.num
		p.pos++
		var val *node
		switch {
		case rest != "":
			val, err = inlineValue(rest, l.num)
		case p.pos < len(p.lines) && p.lines[p.pos].indent > indent:
			val, err = p.block(p.lines[p.pos].indent)
		case p.pos < len(p.lines) && p.lines[p.pos].indent == indent && isSeqItem(p.lines[p.pos].text):
			// YAML lets a list under a key sit at the key's own indentation.
			val, err = p.sequence(indent)
		default:
			val = &node{kind: scalarNode, line: l.num}
		}
		if err != nil {
			return nil, err
		}
		if rest == "" {
			// A block value is reported at its key: that is where a
			// missing or misshapen value is fixed.
			val.line = l.num
		}
		n.pairs = append(n.pairs, pair{key: key, line: l.num, val: val})
	}
	return n, nil
}

func (p *parser) sequence(indent int) (*node, error) {
	n := &node{kind: seqNode, line: p.lines[p.pos].num}
	for p.pos < len(p.lines) {
		l := p.lines[p.pos]
		if l.indent < indent || (l.indent == indent && !isSeqItem(l.text)) {
			break
		}
		if l.indent > indent {
			return nil, &yamlError{l.num, "unexpected indentation"}
		}
		rest := strings.TrimLeft(strings.TrimPrefix(l.text, "-"), " ")
		var item *node
		var err error
		switch {
		case rest == "":
			p.pos++
			if p.pos < len(p.lines) && p.lines[p.pos].indent > indent {
				item, err = p.block(p.lines[p.pos].indent)
			} else {
				item = &node{kind: scalarNode, line: l.num}
			}
		case isSeqItem(rest) || looksLikeKey(rest):
			// "- key: v" or "- - x" starts a nested block whose first line
			// is the rest of this one, indented to where the rest begins.
			p.lines[p.pos] = line{num: l.num, indent: l.indent + len(l.text) - len(rest), text: rest}
			item, err = p.block(p.lines[p.pos].indent)
		default:
			p.pos++
			item, err = inlineValue(rest, l.num)
		}
		if err != nil {
			return nil, err
		}
		n.items = append(n.items, item)
	}
	return n, nil
}

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

// splitKey splits "key: rest" and returns the unquoted key.
func splitKey(text string, num int) (key, rest string, err error) {
	if text[0] == '"' || text[0] == '\'' {
		s, end, err := quotedScalar(text, 0, num)
		if err != nil {
			return "", "", err
		}
		after := text[end:]
		if after != ":" && !strings.HasPrefix(after, ": ") {
			return "", "", &yamlError{num, fmt.Sprintf("want ':' after the key %q", s)}
		}
		return s, strings.TrimSpace(after[1:]), nil
	}
	i := strings.Index(text, ": ")
	if i < 0 {
		if !strings.HasSuffix(text, ":") {
			return "", "", &yamlError{num, fmt.Sprintf("want \"key: value\", got %q", text)}
		}
		i = len(text) - 1
	}
	key = strings.TrimRight(text[:i], " ")
	if err := checkPlain(key, num); err != nil {
		return "", "", err
	}
	if strings.ContainsAny(key[:1], "[]{},") {
		return "", "", &yamlError{num, fmt.Sprintf("a key cannot start with %q; quote it", key[:1])}
	}
	return key, strings.TrimSpace(text[i+1:]), nil
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

// inlineValue parses the value after "key:" or "- " on one line.
func inlineValue(text string, num int) (*node, error) {
	switch text[0] {
	case '[', '{':
		f := &flow{s: text, num: num}
		n, err := f.value()
		if err != nil {
			return nil, err
		}
		f.space()
		if f.i < len(f.s) {
			return nil, f.errorf("unexpected %q after the closing bracket", f.s[f.i:])
		}
		return n, nil
	case '"', '\'':
		s, end, err := quotedScalar(text, 0, num)
		if err != nil {
			return nil, err
		}
		if end != len(text) {
			return nil, &yamlError{num, fmt.Sprintf("unexpected %q after the quoted value", text[end:])}
		}
		return &node{kind: scalarNode, line: num, value: s, quoted: true}, nil
	}
	if err := checkPlain(text, num); err != nil {
		return nil, err
	}
	if isSeqItem(text) {
		return nil, &yamlError{num, fmt.Sprintf("a list cannot start on the line of its key (%q); put each \"- item\" on its own line or write [a, b]", text)}
	}
	if strings.Contains(text, ": ") || strings.HasSuffix(text, ":") {
		return nil, &yamlError{num, fmt.Sprintf("nested mapping on one line (%q); put it on its own indented lines or write {key: value}", text)}
	}
	return &node{kind: scalarNode, line: num, value: text}, nil
}

// quotedScalar reads the quoted scalar starting at s[i] and returns its
// value and the index just past the closing quote.
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

// flow parses a flow collection ([a, b] or {k: v}) on one line.
type flow struct {
	s     string
	i     int
	num   int
	depth int
}

func (f *flow) errorf(format string, args ...any) error {
	return &yamlError{f.num, fmt.Sprintf(format, args...)}
}

func (f *flow) space() {
	for f.i < len(f.s) && (f.s[f.i] == ' ' || f.s[f.i] == '\t') {
		f.i++
	}
}

func (f *flow) value() (*node, error) {
	f.space()
	if f.i >= len(f.s) {
		return nil, f.errorf("unclosed bracket in %q; flow collections must end on the same line", f.s)
	}
	switch f.s[f.i] {
	case '[':
		return f.collection(seqNode, ']')
	case '{':
		return f.collection(mapNode, '}')
	case '"', '\'':
		s, end, err := quotedScalar(f.s, f.i, f.num)
		if err != nil {
			return nil, err
		}
		f.i = end
		return &node{kind: scalarNode, line: f.num, value: s, quoted: true}, nil
	}
	return f.plain(false)
}

// plain reads a plain scalar up to a flow indicator. Inside a mapping key,
// ": " also ends it.
func (f *flow) plain(key bool) (*node, error) {
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
			return nil, f.errorf("unexpected ':' in %q; write \"key: value\" with a space after ':', separate items with ',' and quote values that contain ':'", f.s[start:])
		}
		f.i++
	}
	text := strings.TrimRight(f.s[start:f.i], " \t")
	if text != "" {
		if err := checkPlain(text, f.num); err != nil {
			return nil, err
		}
	}
	return &node{kind: scalarNode, line: f.num, value: text}, nil
}

func (f *flow) collection(k kind, closer byte) (*node, error) {
	if f.depth++; f.depth > maxDepth {
		return nil, f.errorf("nesting deeper than %d levels", maxDepth)
	}
	defer func() { f.depth-- }()
	n := &node{kind: k, line: f.num}
	seen := map[string]bool{}
	f.i++ // the opening bracket
	for {
		f.space()
		if f.i >= len(f.s) {
			return nil, f.errorf("unclosed %q; flow collections must end on the same line", string(closer))
		}
		if f.s[f.i] == closer {
			f.i++
			return n, nil
		}
		if k == seqNode {
			item, err := f.value()
			if err != nil {
				return nil, err
			}
			if item.kind == scalarNode && !item.quoted && item.value == "" {
				return nil, f.errorf("empty item in %q", f.s)
			}
			n.items = append(n.items, item)
		} else {
			if err := f.pair(n, seen); err != nil {
				return nil, err
			}
		}
		f.space()
		switch {
		case f.i >= len(f.s):
			return nil, f.errorf("unclosed %q; flow collections must end on the same line", string(closer))
		case f.s[f.i] == ',':
			f.i++
		case f.s[f.i] != closer:
			return nil, f.errorf("want ',' or %q at %q", string(closer), f.s[f.i:])
		}
	}
}

func (f *flow) pair(n *node, seen map[string]bool) error {
	var key *node
	var err error
	if c := f.s[f.i]; c == '"' || c == '\'' {
		key, err = f.value()
	} else {
		key, err = f.plain(true)
	}
	if err != nil {
		return err
	}
	if key.value == "" {
		return f.errorf("empty key in %q", f.s)
	}
	if seen[key.value] {
		return f.errorf("duplicate key %q", key.value)
	}
	seen[key.value] = true
	f.space()
	if f.i >= len(f.s) || f.s[f.i] != ':' {
		return f.errorf("want ':' after the key %q", key.value)
	}
	f.i++
	f.space()
	val := &node{kind: scalarNode, line: f.num}
	if f.i < len(f.s) && f.s[f.i] != ',' && f.s[f.i] != '}' {
		if val, err = f.value(); err != nil {
			return err
		}
	}
	n.pairs = append(n.pairs, pair{key: key.value, line: f.num, val: val})
	return nil
}
