package sweep

import (
	"fmt"
	"strings"
	"testing"
)

// dump renders a node tree compactly for comparisons.
func dump(n *node) string {
	switch n.kind {
	case mapNode:
		parts := make([]string, len(n.pairs))
		for i, p := range n.pairs {
			parts[i] = fmt.Sprintf("%s@%d:%s", p.key, p.line, dump(p.val))
		}
		return "{" + strings.Join(parts, " ") + "}"
	case seqNode:
		parts := make([]string, len(n.items))
		for i, it := range n.items {
			parts[i] = dump(it)
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	if n.quoted {
		return fmt.Sprintf("%q", n.value)
	}
	if n.isNull() {
		return "~"
	}
	return n.value
}

func TestParseYAML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src, want string
	}{
		{"empty", "", "{}"},
		{"comments only", "# nothing\n\n  # here\n", "{}"},
		{"scalars", "a: 1\nb: x y\nc: 'it''s'\nd: \"q\\\"\\n\"\ne:\n", `{a@1:1 b@2:x y c@3:"it's" d@4:"q\"\n" e@5:~}`},
		{"comments", "a: 1 # one\nb: x#y\nc: 'a # b'\n", `{a@1:1 b@2:x#y c@3:"a # b"}`},
		{"nested", "a:\n  b:\n    c: 1\n  d: 2\ne: 3\n", "{a@1:{b@2:{c@3:1} d@4:2} e@5:3}"},
		{"block list", "a:\n  - 1\n  - x\n", "{a@1:[1 x]}"},
		{"list at key indent", "a:\n- 1\n- 2\nb: 3\n", "{a@1:[1 2] b@4:3}"},
		{"list of maps", "a:\n  - x: 1\n    y: 2\n  - x: 3\n", "{a@1:[{x@2:1 y@3:2} {x@4:3}]}"},
		{"nested lists", "- - 1\n  - 2\n- 3\n", "[[1 2] 3]"},
		{"dash alone", "-\n  a: 1\n- \n", "[{a@2:1} ~]"},
		{"flow", "a: [1, [2, 3], {b: c, d: [e]}]\n", "{a@1:[1 [2 3] {b@1:c d@1:[e]}]}"},
		{"flow empty", "a: []\nb: {}\n", "{a@1:[] b@2:{}}"},
		{"flow quoted", "a: [\"x, y\", 'z]']\n", `{a@1:["x, y" "z]"]}`},
		{"flow map colon in value", "a: {url: http://x, v: \">=1\"}\n", `{a@1:{url@1:http://x v@1:">=1"}}`},
		{"flow map empty value", "a: {b: , c: 1}\n", "{a@1:{b@1:~ c@1:1}}"},
		{"quoted key", "\"a b\": 1\n'c': 2\n", "{a b@1:1 c@2:2}"},
		{"document start", "---\na: 1\n", "{a@2:1}"},
		{"crlf", "a: 1\r\nb: 2\r\n", "{a@1:1 b@2:2}"},
		{"trailing spaces", "a: 1   \nb:    2\n", "{a@1:1 b@2:2}"},
		{"colon without space", "a: b:c\n", "{a@1:b:c}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, err := parseYAML([]byte(tt.src))
			if err != nil {
				t.Fatalf("parseYAML(%q): %v", tt.src, err)
			}
			if got := dump(n); got != tt.want {
				t.Errorf("parseYAML(%q) = %s, want %s", tt.src, got, tt.want)
			}
		})
	}
}

func TestParseYAMLErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ src, want string }{
		{"a: 1\n\tb: 2\n", "line 2: tab in indentation"},
		{"a: 1\na: 2\n", `line 2: duplicate key "a" (first on line 1)`},
		{"a: &x 1\n", "line 1: anchors"},
		{"a: *x\n", "line 1: aliases"},
		{"a: !!int 1\n", "line 1: tags"},
		{"a: >\n  b\n", "line 1: block scalars"},
		{"a: 1\n---\nb: 2\n", "line 2: several documents"},
		{"a: 1\n...\n", "line 2: document end marker"},
		{"%YAML 1.2\na: 1\n", "line 1: YAML directives"},
		{"  a: 1\n", "line 1: the document must start at column 1"},
		{"a: 1\n  b: 2\n", "line 2: unexpected indentation"},
		{"a:\n  - 1\n  b: 2\n", "line 3: unexpected indentation"},
		{"a:\n  b: 1\n  - 2\n", `line 3: a list item "- " where a "key: value" line was expected`},
		{"a: b: c\n", "line 1: nested mapping on one line"},
		{"a: - x\n", "line 1: a list cannot start on the line of its key"},
		{"a: [1, 2\n", `line 1: unclosed "]"`},
		{"a: [1,, 2]\n", "line 1: empty item"},
		{"a: {b}\n", `line 1: want ':' after the key "b"`},
		{"a: {b: 1 c: 2}\n", "line 1: unexpected ':' in \"1 c: 2}\""},
		{"a: [1] x\n", `line 1: unexpected "x" after the closing bracket`},
		{"a: 'x' y\n", `line 1: unexpected " y" after the quoted value`},
		{"a: \"x\n", "line 1: unterminated quoted string"},
		{"a: \"\\q\"\n", "line 1: bad escape sequence"},
		{"? a: 1\n", "line 1: complex keys"},
		{"a: @x\n", `line 1: a plain value cannot start with "@"`},
		{"[a]: 1\n", `line 1: a key cannot start with "["; quote it`},
		{"a: {b: 1, b: 2}\n", `line 1: duplicate key "b"`},
		{"a: \xff\n", "line 1: the file is not valid UTF-8"},
		{"a: 1\n# \x00\n", "line 2: control character U+0000"},
		{"a: " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n", "line 1: nesting deeper than 64 levels"},
		{strings.Repeat("- ", 100) + "x\n", "line 1: nesting deeper than 64 levels"},
	}
	for _, tt := range tests {
		_, err := parseYAML([]byte(tt.src))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseYAML(%q) = %v, want an error containing %q", tt.src, err, tt.want)
		}
	}
}

func TestScalarValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text   string
		quoted bool
		want   any
	}{
		{"1", false, 1.0},
		{"-2.5", false, -2.5},
		{"1e6", false, 1e6},
		{"3e-4", false, 3e-4},
		{"1_000_000", false, 1e6},
		{".5", false, 0.5},
		{"-0", false, 0.0},
		{"1_", false, "1_"},
		{"1__0", false, "1__0"},
		{"0x10", false, "0x10"},
		{"inf", false, "inf"},
		{"NaN", false, "NaN"},
		{"1e999", false, "1e999"},
		{"true", false, true},
		{"false", false, false},
		{"True", false, "True"},
		{"yes", false, "yes"},
		{"1", true, "1"},
		{"true", true, "true"},
	}
	for _, tt := range tests {
		got := scalarValue(&node{value: tt.text, quoted: tt.quoted})
		if got != tt.want {
			t.Errorf("scalarValue(%q, quoted %t) = %#v, want %#v", tt.text, tt.quoted, got, tt.want)
		}
	}
}
