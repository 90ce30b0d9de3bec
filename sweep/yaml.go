package sweep

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Specs are read by the YAML library into yaml.Node trees, which carry the
// line and column of every value, and then held to the small subset of
// YAML that study specs use: block mappings and sequences nested by
// indentation, flow collections and quoted scalars that end on the line
// they start, plain scalars and comments. Everything else the library
// reads (anchors, aliases, tags, block scalars, explicit keys, several
// documents, values continued on later lines) is rejected with an error
// that names the line, so a spec never means something other than what it
// appears to say. The rules of the subset that are about the text rather
// than the tree live in yamltext.go.

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

// maxDepth bounds nesting, so a hostile spec cannot exhaust the stack.
// Real specs nest four levels at most.
const maxDepth = 64

// parseYAML parses src into a node tree. An empty document is an empty
// mapping.
func parseYAML(src []byte) (*node, error) {
	lines, err := checkText(src)
	if err != nil {
		return nil, err
	}
	r, text := newReader(lines)
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return nil, r.explain(err)
	}
	if len(doc.Content) == 0 {
		return &node{kind: mapNode, line: 1}, nil
	}
	root := doc.Content[0]
	if err := r.checkNode(root); err != nil {
		return nil, err
	}
	if root.Kind == yaml.ScalarNode && root.Style == 0 && root.Value == "" {
		return &node{kind: mapNode, line: 1}, nil // "---" alone
	}
	if root.Kind == yaml.ScalarNode || root.Style&yaml.FlowStyle != 0 {
		return nil, r.notKey(root.Line)
	}
	return r.build(root, 0, 0)
}

// reader turns the library's tree into nodes, checking it against the
// source text where the tree cannot tell what was written.
type reader struct {
	lines []string // the source, split at '\n'
	shown []string // the lines as the library reads them
	// keys holds the keys that were too long for the library, by line
	// and column: it was shown "k" in their place.
	keys map[[2]int]string
	// leadBOM says line 1 starts with a second byte order mark, which the
	// library was shown as leadMark so that it does not drop it.
	leadBOM bool
	// slashes holds the lines where the library was shown \P for the
	// escape \/, which it does not know.
	slashes map[int]bool
}

// text returns the value of scalar n as the source wrote it, undoing what
// newReader changed.
func (r *reader) text(n *yaml.Node) string {
	v := n.Value
	if r.slashes[n.Line] {
		if n.Style&yaml.DoubleQuotedStyle != 0 {
			// \P cannot be in the source: quotedScalar rejects it.
			v = strings.ReplaceAll(v, "\u2029", "/")
		} else {
			v = strings.ReplaceAll(v, `\P`, `\/`)
		}
	}
	if r.leadBOM && n.Line == 1 && n.Column == 1 {
		v = "\uFEFF" + strings.TrimPrefix(v, leadMark)
	}
	return v
}

// leadMark stands in for a byte order mark at the very start of the text:
// one character of three bytes, like the mark, that the library keeps.
const leadMark = "\uFFFC"

// build converts n and checks it. depth counts the block collections
// around it.
func (r *reader) build(n *yaml.Node, depth int, parentCol int) (*node, error) {
	if err := r.checkNode(n); err != nil {
		return nil, err
	}
	if n.Kind == yaml.ScalarNode {
		return r.scalar(n)
	}
	if n.Style&yaml.FlowStyle != 0 {
		// The whole collection is checked on its line, which also
		// checks everything in it.
		line := r.line(n.Line)
		text, err := stripComment(line[r.offset(line, n.Column):], n.Line)
		if err != nil {
			return nil, err
		}
		if err := checkInline(strings.TrimRight(text, " \t"), n.Line, &flow{}); err != nil {
			return nil, err
		}
		return r.flowNode(n)
	}
	// A list under a key may sit at the key's own indentation; the
	// spec's depth does not count it.
	if n.Kind != yaml.SequenceNode || n.Column != parentCol {
		if depth++; depth > maxDepth {
			return nil, &yamlError{n.Line, fmt.Sprintf("nesting deeper than %d levels", maxDepth)}
		}
	}
	if n.Kind == yaml.SequenceNode {
		return r.sequence(n, depth)
	}
	return r.mapping(n, depth)
}

// checkNode rejects the YAML features the subset leaves out.
func (r *reader) checkNode(n *yaml.Node) error {
	switch {
	case n.Kind == yaml.AliasNode:
		return &yamlError{n.Line, "aliases (*name) are not supported; repeat the value instead"}
	case n.Anchor != "":
		return &yamlError{n.Line, "anchors (&name) are not supported; repeat the value instead"}
	case n.Style&yaml.TaggedStyle != 0 || r.at(n) == '!':
		return &yamlError{n.Line, "tags (!type) are not supported; write the value plainly"}
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return &yamlError{n.Line, "block scalars (| and >) are not supported; write the value on one line, quoted if needed"}
	}
	return nil
}

// scalar converts a scalar in block context, checking that it ends on its
// line.
func (r *reader) scalar(n *yaml.Node) (*node, error) {
	line := r.line(n.Line)
	off := r.offset(line, n.Column)
	out := &node{kind: scalarNode, line: n.Line, value: r.text(n)}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		text, err := stripComment(line[off:], n.Line)
		if err != nil {
			return nil, err
		}
		if err := checkInline(strings.TrimRight(text, " \t"), n.Line, &flow{}); err != nil {
			return nil, err
		}
		out.quoted = true
		return out, nil
	}
	if !strings.HasPrefix(line[off:], out.value) {
		// The library joined the value with the lines below it.
		return nil, &yamlError{r.nextLine(n.Line), "unexpected indentation"}
	}
	if out.value != "" {
		if err := checkPlain(out.value, n.Line); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *reader) mapping(n *yaml.Node, depth int) (*node, error) {
	out := &node{kind: mapNode, line: n.Line}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key, err := r.key(k)
		if err != nil {
			return nil, err
		}
		if first, dup := seen[key]; dup {
			return nil, &yamlError{k.Line, fmt.Sprintf("duplicate key %q (first on line %d)", key, first)}
		}
		seen[key] = k.Line
		if v.Line != k.Line && (v.Kind == yaml.ScalarNode || v.Style&yaml.FlowStyle != 0) {
			return nil, r.notKey(v.Line)
		}
		val, err := r.build(v, depth, n.Column)
		if err != nil {
			return nil, err
		}
		// A block value is reported at its key: that is where a missing
		// or misshapen value is fixed.
		val.line = k.Line
		out.pairs = append(out.pairs, pair{key: key, line: k.Line, val: val})
	}
	return out, nil
}

// key returns the text of a block mapping's key, checking that it is a
// plain or quoted scalar followed by ": " or a ':' that ends the line.
func (r *reader) key(k *yaml.Node) (string, error) {
	if key, ok := r.keys[[2]int{k.Line, k.Column}]; ok {
		return key, nil
	}
	line := r.line(k.Line)
	off := r.offset(line, k.Column)
	if strings.HasSuffix(strings.TrimRight(line[:off], " "), "?") {
		return "", &yamlError{k.Line, "complex keys (? key) are not supported"}
	}
	if k.Kind != yaml.ScalarNode {
		return "", &yamlError{k.Line, fmt.Sprintf("a key cannot start with %q; quote it", line[off:min(off+1, len(line))])}
	}
	if err := r.checkNode(k); err != nil {
		return "", err
	}
	key := r.text(k)
	if k.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		_, end, err := quotedScalar(line, off, k.Line)
		if err != nil {
			return "", err
		}
		if after := line[end:]; after != ":" && !strings.HasPrefix(after, ": ") {
			return "", &yamlError{k.Line, fmt.Sprintf("want ':' after the key %q", key)}
		}
		return key, nil
	}
	if err := checkPlain(key, k.Line); err != nil {
		return "", err
	}
	after := strings.TrimLeft(line[min(off+len(key), len(line)):], " ")
	if after != ":" && !strings.HasPrefix(after, ": ") {
		return "", r.notKey(k.Line)
	}
	return key, nil
}

func (r *reader) sequence(n *yaml.Node, depth int) (*node, error) {
	out := &node{kind: seqNode, line: n.Line, items: make([]*node, 0, len(n.Content))}
	for _, v := range n.Content {
		line := r.line(v.Line)
		dash := r.offset(line, n.Column)
		onDashLine := dash < len(line) && line[dash] == '-' && dash < r.offset(line, v.Column)
		if !onDashLine && (v.Kind == yaml.ScalarNode || v.Style&yaml.FlowStyle != 0) {
			// A value on the line below its dash.
			return nil, r.notKey(v.Line)
		}
		item, err := r.build(v, depth, -1)
		if err != nil {
			return nil, err
		}
		out.items = append(out.items, item)
	}
	return out, nil
}

// flowNode converts a flow collection that check has passed.
func (r *reader) flowNode(n *yaml.Node) (*node, error) {
	out := &node{kind: scalarNode, line: n.Line, value: r.text(n), quoted: n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0}
	switch n.Kind {
	case yaml.MappingNode:
		out = &node{kind: mapNode, line: n.Line, pairs: make([]pair, 0, len(n.Content)/2)}
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			key := r.text(k)
			if long, ok := r.keys[[2]int{k.Line, k.Column}]; ok {
				key = long
			}
			if seen[key] {
				return nil, &yamlError{k.Line, fmt.Sprintf("duplicate key %q", key)}
			}
			seen[key] = true
			val, err := r.flowNode(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			out.pairs = append(out.pairs, pair{key: key, line: k.Line, val: val})
		}
	case yaml.SequenceNode:
		out = &node{kind: seqNode, line: n.Line, items: make([]*node, len(n.Content))}
		for i, v := range n.Content {
			item, err := r.flowNode(v)
			if err != nil {
				return nil, err
			}
			out.items[i] = item
		}
	}
	return out, nil
}

// offset returns the byte offset in line of the 1-based column col, which
// the library counts in characters.
func (r *reader) offset(line string, col int) int {
	i := 0
	for n := 1; n < col && i < len(line); n++ {
		if line[i] < utf8.RuneSelf {
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(line[i:])
		i += size
	}
	return i
}

// at returns the source byte where n starts, or 0 past the line's end.
func (r *reader) at(n *yaml.Node) byte {
	line := r.line(n.Line)
	if off := r.offset(line, n.Column); off < len(line) {
		return line[off]
	}
	return 0
}

// nextLine returns the number of the first line after num that holds more
// than a comment.
func (r *reader) nextLine(num int) int {
	for i := num; i < len(r.lines); i++ {
		if t := strings.TrimLeft(r.lines[i], " \t"); t != "" && t[0] != '#' {
			return i + 1
		}
	}
	return num
}

// notKey reports a line where a "key: value" line was wanted.
func (r *reader) notKey(num int) error {
	text, _ := stripComment(strings.TrimLeft(r.line(num), " "), num)
	return &yamlError{num, fmt.Sprintf("want \"key: value\", got %q", strings.TrimRight(text, " \t"))}
}

// newReader prepares the text the library reads: the source, but with a
// byte order mark that starts it (after the one a file may start with)
// and keys too long for the library replaced by stand-ins of the same
// width.
func newReader(lines []string) (*reader, []byte) {
	r := &reader{lines: lines, keys: map[[2]int]string{}, slashes: map[int]bool{}}
	for i, line := range lines {
		if len(line) >= longKey {
			line = r.shortenKeys(i+1, line)
		}
		if strings.Contains(line, `\/`) {
			line = r.hideSlashes(i+1, line)
		}
		if i == 0 && strings.HasPrefix(line, "\uFEFF") {
			line = leadMark + line[len("\uFEFF"):]
			r.leadBOM = true
		}
		r.shown = append(r.shown, line)
	}
	return r, []byte(strings.Join(r.shown, "\n"))
}

// line returns source line num, or "" for a line past the end, where the
// library places a value missing at the end of the text.
func (r *reader) line(num int) string {
	if num < 1 || num > len(r.lines) {
		return ""
	}
	return r.lines[num-1]
}
