package sweep

import (
	"strings"
	"testing"
)

// TestParseYAMLLibrary covers what reading specs with the YAML library
// adds: text it is shown differently from the source, and what it reads
// but the subset does not allow.
func TestParseYAMLLibrary(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 1500)
	tests := []struct {
		name, src string
		want      string // the dump, or with err set a part of the error
		err       bool
	}{
		{name: "escaped slash", src: "a: \"x\\/y\"\nb: [\"\\/\", x\\/y]\n", want: `{a@1:"x/y" b@2:["/" x\/y]}`},
		{name: "long key", src: long + ": 1\n", want: "{" + long + "@1:1}"},
		{name: "long quoted key in a flow mapping", src: "a: {'" + long + "': 1, b: 2}\n", want: "{a@1:{" + long + "@1:1 b@1:2}}"},
		{name: "long key in a list", src: "- " + long + ": [1]\n", want: "[{" + long + "@1:[1]}]"},
		{name: "second byte order mark", src: "\ufeff\ufeffa: 1\n", want: "{\ufeffa@1:1}"},
		{name: "carriage return inside a line", src: "a: x\ry\n", err: true, want: "line 1: character U+000D ends a line for YAML readers"},
		{name: "line separator in quotes", src: "a: 1\nb: \"x\u2028y\"\n", err: true, want: "line 2: character U+2028"},
		{name: "tab after a colon", src: "a:\tb\n", err: true, want: `line 1: want "key: value", got "a:\tb"`},
		{name: "tab after a dash", src: "- a\n-\tb\n", err: true, want: "line 2: unexpected indentation"},
		{name: "value below its key", src: "a:\n  x\n", err: true, want: `line 2: want "key: value", got "x"`},
		{name: "item below its dash", src: "-\n  [1]\n", err: true, want: `line 2: want "key: value", got "[1]"`},
		{name: "plain value over two lines", src: "a: x\n  y\n", err: true, want: "line 2: unexpected indentation"},
		{name: "quoted value over two lines", src: "a: \"x\n  y\"\n", err: true, want: "line 1: unterminated quoted string"},
		{name: "flow list over two lines", src: "a: [1,\n  2]\n", err: true, want: `line 1: unclosed "]"`},
		{name: "flow list closed on the next line", src: "a: [1, 2\n]\n", err: true, want: `line 1: unclosed "]"`},
		{name: "text after a flow list", src: "a: []#0\n", err: true, want: `line 1: unexpected "#0" after the closing bracket`},
		{name: "pair in a flow list", src: "a: [b: 1]\n", err: true, want: `line 1: unexpected ':' in "b: 1]"`},
		{name: "space before a quoted key's colon", src: "\"a\" : 1\n", err: true, want: `line 1: want ':' after the key "a"`},
		{name: "question mark inside brackets", src: "a: [?x]\n", err: true, want: `line 1: a value inside brackets cannot start with "?"; quote it, as in ["?x"]`},
		{name: "explicit key", src: "? a\n: b\n", err: true, want: "line 1: complex keys"},
		{name: "anchored document", src: "&a\n", err: true, want: "line 1: anchors"},
		{name: "tag on a list", src: "a: !!seq [1]\n", err: true, want: "line 1: tags"},
		{name: "escape YAML has and JSON lacks", src: "a: \"\\e\"\n", err: true, want: "line 1: bad escape sequence"},
		{name: "octal escape", src: "a: 1\nb: \"\\101\"\n", err: true, want: "line 2: not valid YAML: found unknown escape character"},
		{name: "library error names the first bad line", src: "a: 1\nb: [:0]\nc: 2\n", err: true, want: "line 2: not valid YAML: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, err := parseYAML([]byte(tt.src))
			switch {
			case tt.err && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("parseYAML(%.80q) = %v, want an error containing %q", tt.src, err, tt.want)
			case !tt.err && err != nil:
				t.Errorf("parseYAML(%.80q): %v", tt.src, err)
			case !tt.err && dump(n) != tt.want:
				t.Errorf("parseYAML(%.80q) = %.200s, want %.200s", tt.src, dump(n), tt.want)
			}
		})
	}
}
