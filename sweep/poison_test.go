package sweep

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// The poison suite feeds Parse, and Expand when Parse accepts, inputs that
// are hostile or at the edge of what a spec may hold. None may panic, hang
// or grow without bound: each is refused with a *SpecError naming the field
// and the fix (or the limit it passes), or it parses into trials whose
// parameters are all finite, since NaN and infinities cannot be encoded as
// JSON on their way to a method.

// poisonDeadline is generous: it catches a hang, not a slow machine.
const poisonDeadline = 10 * time.Second

// poisonOutcome is what Parse and Expand made of one input.
type poisonOutcome struct {
	spec                *Spec
	trials              []Trial
	parseErr, expandErr error
	panicked            any
	stack               []byte
}

// runPoison parses src and, if that succeeds, hashes and expands it (or
// streams the first stream trials, for specs too large to hold in a test),
// in a goroutine, failing the test on a panic or when it takes longer than
// poisonDeadline.
func runPoison(t *testing.T, src []byte, stream int) poisonOutcome {
	t.Helper()
	done := make(chan poisonOutcome, 1)
	go func() {
		var o poisonOutcome
		defer func() {
			if p := recover(); p != nil {
				o.panicked, o.stack = p, debug.Stack()
			}
			done <- o
		}()
		o.spec, o.parseErr = Parse("poison.yaml", src)
		if o.parseErr != nil {
			return
		}
		_ = o.spec.Hash()
		if stream == 0 {
			o.trials, o.expandErr = o.spec.Expand()
			return
		}
		for tr, err := range o.spec.Trials() {
			if err != nil {
				o.expandErr = err
				return
			}
			if o.trials = append(o.trials, tr); len(o.trials) == stream {
				return
			}
		}
	}()
	select {
	case o := <-done:
		if o.panicked != nil {
			t.Fatalf("panic: %v\n%s", o.panicked, o.stack)
		}
		return o
	case <-time.After(poisonDeadline):
		t.Fatalf("Parse and Expand did not finish within %v", poisonDeadline)
	}
	return poisonOutcome{}
}

// checkTrials fails unless every parameter of every trial is a finite
// number, a string or a bool, and the parameters encode as JSON.
func checkTrials(t *testing.T, trials []Trial) {
	t.Helper()
	for _, tr := range trials {
		for name, v := range tr.Params {
			switch v := v.(type) {
			case float64:
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("trial %d: %s = %v, not a finite number", tr.Index, name, v)
				}
			case string, bool:
			default:
				t.Fatalf("trial %d: %s = %#v, a %T", tr.Index, name, v, v)
			}
		}
		if _, err := json.Marshal(tr.Params); err != nil {
			t.Fatalf("trial %d: params do not encode as JSON: %v", tr.Index, err)
		}
	}
}

// leafErrors returns the errors err joins, or err itself.
func leafErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

type poisonCase struct {
	name string
	src  string
	// want is a substring of the error; "" means the spec must parse
	// and expand.
	want string
	// atExpand says the error comes from Expand, not Parse: a derived
	// parameter's value is known only per trial.
	atExpand bool
	// trials, if not 0, is how many trials a valid spec expands to.
	trials int
	// stream, if not 0, streams only the first stream trials.
	stream int
	check  func(t *testing.T, s *Spec, trials []Trial)
}

func TestPoison(t *testing.T) {
	t.Parallel()
	var cases []poisonCase
	cases = append(cases, sizeCases()...)
	cases = append(cases, nestingCases()...)
	cases = append(cases, unicodeCases()...)
	cases = append(cases, numberCases()...)
	cases = append(cases, settingCases()...)
	cases = append(cases, derivedCases()...)
	cases = append(cases, randomCases()...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := runPoison(t, []byte(tc.src), tc.stream)
			if o.parseErr != nil && o.spec != nil {
				t.Errorf("Parse returned a spec with its error")
			}
			if o.parseErr != nil {
				for _, e := range leafErrors(o.parseErr) {
					var se *SpecError
					if !errors.As(e, &se) {
						t.Errorf("Parse error %v (%T) is not a *SpecError", e, e)
					}
					if len(e.Error()) > 2*maxMsgBytes {
						t.Errorf("a Parse error is %d bytes long; errors repeat at most a glimpse of the spec", len(e.Error()))
					}
				}
			}
			err := o.parseErr
			if err == nil {
				err = o.expandErr
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want the spec accepted, got:\n%v", shorten(err.Error(), 4096))
				}
				checkTrials(t, o.trials)
				if tc.trials != 0 && len(o.trials) != tc.trials {
					t.Errorf("got %d trials, want %d", len(o.trials), tc.trials)
				}
				if tc.check != nil {
					tc.check(t, o.spec, o.trials)
				}
				return
			}
			if err == nil {
				t.Fatalf("want an error containing %q, the spec was accepted with %d trials", tc.want, len(o.trials))
			}
			if tc.atExpand != (o.parseErr == nil) {
				t.Errorf("atExpand %t, but the error came from %s: %v", tc.atExpand, map[bool]string{true: "Parse", false: "Expand"}[o.parseErr != nil], err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%s\nwant it to contain:\n%s", shorten(err.Error(), 4096), tc.want)
			}
		})
	}
}

const poisonHead = "name: poison\nmethod: m\n"

// gridOf returns a space: section of n axes a0, a1, ... each with the
// given flow list.
func gridOf(n int, values string) string {
	var b strings.Builder
	b.WriteString("space:\n")
	for i := range n {
		fmt.Fprintf(&b, "  a%d: %s\n", i, values)
	}
	return b.String()
}

// numbers returns "[0, 1, ..., n-1]".
func numbers(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprint(i)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// values checks that axis name of the spec holds exactly want.
func values(name string, want ...any) func(*testing.T, *Spec, []Trial) {
	return func(t *testing.T, s *Spec, _ []Trial) {
		t.Helper()
		for _, a := range s.Axes {
			if a.Name != name {
				continue
			}
			if fmt.Sprintf("%#v", a.Values) != fmt.Sprintf("%#v", want) {
				t.Errorf("axis %s = %#v, want %#v", name, a.Values, want)
			}
			for _, v := range a.Values {
				if f, ok := v.(float64); ok && f == 0 && math.Signbit(f) {
					t.Errorf("axis %s holds -0; -0 and 0 are one value", name)
				}
			}
			return
		}
		t.Errorf("no axis %s", name)
	}
}

func sizeCases() []poisonCase {
	big := strings.Repeat("x", 1<<20)
	// padding is a comment line; lines of it fill a spec to a size.
	const padding = "# padding padding padding\n"
	key := strings.Repeat("k", 100<<10)
	return []poisonCase{
		{name: "10 MiB spec", src: poisonHead + strings.Repeat(padding, 10<<20/len(padding)),
			want: "poison.yaml: the spec is 10485"},
		{name: "10 MiB string under fixed", src: poisonHead + "fixed:\n  note: " + strings.Repeat(big, 10) + "\n",
			want: "over the limit of 4194304 (4 MiB) for any spec; put large configuration in a file"},
		{name: "4 MiB of comments is under the limit", src: poisonHead + strings.Repeat(padding, (MaxSpecBytes-100)/len(padding)) + "fixed: {a: 1}\n",
			trials: 1},
		// How long a value may be is the coordinator's limit
		// (-max-param-bytes); the spec itself carries it intact.
		{name: "1 MiB string under fixed", src: poisonHead + "fixed:\n  note: " + big + "\n",
			trials: 1, check: func(t *testing.T, _ *Spec, trials []Trial) {
				if trials[0].Params["note"] != big {
					t.Errorf("the 1 MiB note did not come through intact")
				}
			}},
		{name: "1 MiB quoted string in an axis", src: poisonHead + "space:\n  note: [a, \"" + big + "\"]\n",
			trials: 2},
		{name: "100 KiB key at the top", src: poisonHead + key + ": 1\n",
			want: `poison.yaml:3: kkkk`},
		{name: "100 KiB key under fixed", src: poisonHead + "fixed:\n  " + key + ": 1\n",
			want: `poison.yaml:4: fixed.kkkk`},
		{name: "100 KiB key under space", src: poisonHead + "space:\n  " + key + ": [1]\n",
			want: `invalid parameter name "kkkk`},
		{name: "100 KiB unknown key in a section", src: poisonHead + "resources: {" + key + ": 1}\n",
			want: `resources.kkkk`},
		{name: "100,000 values in one axis", src: poisonHead + "space:\n  x: " + numbers(100_000) + "\n",
			trials: 100_000},
		{name: "100,000 duplicate values stop at the error limit", src: poisonHead + "space:\n  x: [" + strings.Repeat("1, ", 100_000) + "1]\n",
			want: "stopped after 100 problems"},
		{name: "100,000 unknown keys stop at the error limit", src: poisonHead + "spcae: 1\n" + unknownKeys(100_000),
			want: "stopped after 100 problems"},
		{name: "5000 axes of 2 values", src: poisonHead + gridOf(5000, "[0, 1]"),
			want: "poison.yaml:1: the spec defines 5000 parameters, over the limit of 1000"},
		{name: "1000 axes of 2 values overflow any int", src: poisonHead + gridOf(1000, "[0, 1]"),
			want: "poison.yaml:3: space: the spec expands to 1.07e+301 trials (2 a0 × 2 a1 × "},
		{name: "64 axes of 2 values are 2^64 trials", src: poisonHead + gridOf(64, "[0, 1]"),
			want: "the spec expands to 1.84e+19 trials (2 a0 × 2 a1 × 2 a10 × 2 a11 × 2 a12 × 2 a13 × 2 a14 × 2 a15 × 2 a16 × 2 a17 × 54 more factors × 1 seeds), over the limit of 1000000"},
		{name: "20 axes of 2 values pass the limit", src: poisonHead + gridOf(20, "[0, 1]"),
			want: "the spec expands to 1048576 trials"},
		{name: "1000 range axes stop at the error limit", src: poisonHead + gridOf(1000, "{range: [0, 1], count: 2}"),
			want: "space.a20.count: count 2 makes the grid larger than the limit of 1000000 trials"},
		{name: "1,000,000 trials are the limit", src: poisonHead + "space:\n  a: {range: [0, 1], count: 1000}\n  b: {range: [0, 1], count: 1000}\n",
			stream: 1000},
		{name: "a seeds list of 100,000", src: poisonHead + "seeds: " + numbers(100_000) + "\n",
			trials: 100_000},
	}
}

// unknownKeys returns n lines of distinct keys that no spec allows.
func unknownKeys(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "k%d: 1\n", i)
	}
	return b.String()
}

func nestingCases() []poisonCase {
	const deep = 100_000
	// Block nesting needs one more space a level, so the 1 MiB limit
	// allows about 1,400 levels.
	var block strings.Builder
	for i := range 1400 {
		block.WriteString(strings.Repeat(" ", i+2) + "a:\n")
	}
	return []poisonCase{
		{name: "100,000 nested flow lists", src: poisonHead + "fixed:\n  x: " + strings.Repeat("[", deep) + strings.Repeat("]", deep) + "\n",
			want: "poison.yaml:4: nesting deeper than 64 levels"},
		{name: "100,000 unclosed flow lists", src: poisonHead + "space:\n  x: " + strings.Repeat("[", deep) + "\n",
			want: "poison.yaml:4: nesting deeper than 64 levels"},
		{name: "100,000 nested flow mappings", src: poisonHead + "fixed: " + strings.Repeat("{a: ", deep) + "1" + strings.Repeat("}", deep) + "\n",
			want: "poison.yaml:3: nesting deeper than 64 levels"},
		{name: "100,000 nested block lists", src: poisonHead + "seeds:\n  " + strings.Repeat("- ", deep) + "1\n",
			want: "poison.yaml:4: nesting deeper than 64 levels"},
		{name: "1,400 nested block mappings", src: poisonHead + "fixed:\n" + block.String(),
			want: "nesting deeper than 64 levels"},
		{name: "64 nested flow lists are allowed by the reader", src: poisonHead + "fixed:\n  x: " + strings.Repeat("[", 63) + strings.Repeat("]", 63) + "\n",
			want: "fixed.x: want a number, string or true/false, got a list"},
		{name: "100,000 nested parentheses", src: poisonHead + "fixed: {x: 1}\nderived:\n  y: \"" + strings.Repeat("(", deep) + "x" + strings.Repeat(")", deep) + "\"\n",
			want: "poison.yaml:5: derived.y: the expression is 200001 bytes, over the limit of 1000; split it"},
		{name: "100,000 unary minuses", src: poisonHead + "fixed: {x: 1}\nderived:\n  y: " + strings.Repeat("-", deep) + "x\n",
			want: "derived.y: the expression is 100001 bytes"},
		{name: "a chain of 100,000 additions", src: poisonHead + "fixed: {x: 1}\nderived:\n  y: " + strings.Repeat("x + ", deep) + "x\n",
			want: "derived.y: the expression is 400001 bytes"},
		{name: "450 nested parentheses fit", src: poisonHead + "fixed: {x: 2}\nderived:\n  y: " + strings.Repeat("(", 450) + "x" + strings.Repeat(")", 450) + " ^ 2\n",
			trials: 1, check: func(t *testing.T, _ *Spec, trials []Trial) {
				if y := trials[0].Params["y"]; y != 4.0 {
					t.Errorf("y = %v, want 4", y)
				}
			}},
		{name: "a chain of 240 powers", src: poisonHead + "fixed: {x: 1}\nderived:\n  y: " + strings.Repeat("x ^ ", 240) + "x\n",
			trials: 1},
	}
}

func unicodeCases() []poisonCase {
	const rlm, rlo, bom = "\u200f", "\u202e", "\ufeff"
	return []poisonCase{
		{name: "emoji in the study name", src: "name: 🚀-study\nmethod: m\n",
			want: `poison.yaml:1: name: invalid name "🚀-study"`},
		{name: "emoji as a parameter name", src: poisonHead + "fixed: {\"🚀\": 1}\n",
			want: `poison.yaml:3: fixed.🚀: invalid parameter name "🚀"`},
		{name: "right-to-left mark in a parameter name", src: poisonHead + "space:\n  lr" + rlm + ": [1]\n",
			want: `poison.yaml:4: space.lr\u200f: invalid parameter name "lr\u200f"`},
		{name: "right-to-left mark in the method", src: "name: a\nmethod: m" + rlm + "\n",
			want: `poison.yaml:2: method: the value "m\u200f" holds the invisible character U+200F`},
		{name: "raw NUL byte", src: poisonHead + "fixed: {a: \"x\x00y\"}\n",
			want: "poison.yaml:3: control character U+0000; YAML allows only printable characters"},
		{name: "escaped NUL in a value", src: poisonHead + "fixed: {a: \"x\\x00y\"}\n",
			want: `poison.yaml:3: fixed.a: the value contains a NUL character (an escape such as \x00); remove it`},
		{name: "escaped NUL in an axis value", src: poisonHead + "space:\n  a: [\"\\u0000\", b]\n",
			want: `space.a: the value contains a NUL character`},
		{name: "escaped NUL in the name", src: "name: \"a\\0b\"\nmethod: m\n",
			want: `poison.yaml:1: bad escape sequence`},
		{name: "escaped NUL in the metric", src: poisonHead + "objective: {metric: \"val\\x00loss\"}\n",
			want: `objective.metric: the value contains a NUL character`},
		{name: "escaped NUL in a key", src: poisonHead + "fixed: {\"a\\x00\": 1}\n",
			want: `poison.yaml:3: fixed.a\x00: invalid parameter name "a\x00"`},
		{name: "invalid UTF-8", src: poisonHead + "fixed:\n  a: \xff\xfe\n",
			want: "poison.yaml:4: the file is not valid UTF-8 (byte 0xff); save it as UTF-8"},
		{name: "truncated UTF-8 sequence", src: poisonHead + "fixed: {a: \"\xe2\x82\"}\n",
			want: "poison.yaml:3: the file is not valid UTF-8"},
		{name: "UTF-16 surrogate escape", src: poisonHead + "fixed: {a: \"\\ud800\"}\n",
			want: "poison.yaml:3: bad escape sequence"},
		{name: "byte order mark", src: bom + poisonHead + "fixed: {a: 1}\n", trials: 1},
		{name: "byte order mark in the middle", src: "name: a\n" + bom + "method: m\n",
			want: `poison.yaml:2: \ufeffmethod: unknown key "\ufeffmethod"`},
		{name: "two byte order marks", src: bom + bom + poisonHead,
			want: `unknown key "\ufeffname"`},
		{name: "right-to-left mark after a number", src: poisonHead + "fixed:\n  lr: 1e-3" + rlm + "\n",
			want: `poison.yaml:4: fixed.lr: the value "1e-3\u200f" holds the invisible character U+200F; delete it, or quote the value to keep it`},
		{name: "zero-width space in an axis value", src: poisonHead + "space:\n  x: [1, \u200b2]\n",
			want: `space.x: the value "\u200b2" holds the invisible character U+200B`},
		{name: "byte order mark in a plain value", src: poisonHead + "fixed: {x: a" + bom + "b}\n",
			want: `fixed.x: the value "a\ufeffb" holds the invisible character U+FEFF`},
		{name: "unicode parameter values", src: poisonHead + "space:\n  s: [🚀, \"a" + rlm + "b\", \"" + rlo + "evil\", née, \"\\u00e9\", 日本]\nfixed: {t: \"x" + bom + "y\"}\n",
			trials: 6, check: values("s", "🚀", "a"+rlm+"b", rlo+"evil", "née", "é", "日本")},
		{name: "a non-ASCII character in an expression", src: poisonHead + "fixed: {x: 1}\nderived:\n  y: π * x\n",
			want: `derived.y: invalid expression "π * x": column 1: unexpected "π"`},
	}
}

func numberCases() []poisonCase {
	var cases []poisonCase
	// Every spelling of a non-finite number, in each place a parameter
	// value goes.
	for _, v := range []string{".nan", ".NaN", ".inf", "-.inf", "+.INF", ".Inf", "NaN", "nan", "Infinity", "-Infinity", "inf", "+inf", "-INF"} {
		cases = append(cases,
			poisonCase{name: "axis value " + v, src: poisonHead + "space:\n  x: [1, " + v + "]\n",
				want: "poison.yaml:4: space.x: " + v + " is not a finite number"},
			poisonCase{name: "fixed value " + v, src: poisonHead + "fixed: {x: " + v + "}\n",
				want: "poison.yaml:3: fixed.x: " + v + " is not a finite number"},
			poisonCase{name: "choice " + v, src: poisonHead + "random:\n  count: 2\n  space:\n    x: {choice: [1, " + v + "]}\n",
				want: "poison.yaml:6: random.space.x.choice: " + v + " is not a finite number"},
			poisonCase{name: "range bound " + v, src: poisonHead + "space:\n  x: {range: [0, " + v + "], count: 3}\n",
				want: "poison.yaml:4: space.x.range: " + v + " is not a finite number"},
		)
	}
	return append(cases, []poisonCase{
		{name: "quoted NaN is a string", src: poisonHead + "space:\n  x: [\"NaN\", \".inf\", 'Infinity']\n",
			trials: 3, check: values("x", "NaN", ".inf", "Infinity")},
		{name: "extreme finite values", src: poisonHead + "space:\n  x: [1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324, -0]\n",
			trials: 6, check: values("x", 1e308, -1e308, math.MaxFloat64, 5e-324, -5e-324, 0.0)},
		{name: "-0 and 0 are one value", src: poisonHead + "space:\n  x: [0, -0]\n",
			want: "space.x: value -0 is listed twice"},
		{name: "fixed -0", src: poisonHead + "fixed: {x: -0.0}\n", trials: 1, check: func(t *testing.T, _ *Spec, trials []Trial) {
			if x := trials[0].Params["x"].(float64); math.Signbit(x) {
				t.Errorf("x = -0, want 0")
			}
		}},
		{name: "overflow in an axis", src: poisonHead + "space:\n  x: [1, 1e309]\n",
			want: `poison.yaml:4: space.x: 1e309 is out of range: numbers must be finite, at most 1.7976931348623157e+308 in magnitude; write a smaller number, or quote it ("1e309") to keep a string`},
		{name: "overflow in fixed", src: poisonHead + "fixed: {x: -1e309}\n",
			want: "fixed.x: -1e309 is out of range"},
		{name: "overflow with many digits", src: poisonHead + "fixed: {x: 1" + strings.Repeat("0", 400) + "}\n",
			want: "fixed.x: 1000000000"},
		{name: "a 100,000-digit number", src: poisonHead + "fixed: {x: 0." + strings.Repeat("0", 100_000) + "1}\n",
			want: "fixed.x: 0.000000"},
		{name: "underflow in an axis", src: poisonHead + "space:\n  x: [1e-400]\n",
			want: `space.x: 1e-400 is too small to tell from 0 (the smallest positive number is 5e-324); write 0 if you mean zero, or quote it ("1e-400") to keep a string`},
		{name: "zero with a large exponent is zero", src: poisonHead + "fixed: {x: 0e-999}\n", trials: 1},
		{name: "hex literal", src: poisonHead + "space:\n  x: [0x10]\n",
			want: "space.x: 0x10 means a number, boolean or null in some YAML readers but not here"},
		{name: "octal literal", src: poisonHead + "fixed: {x: 0o17}\n",
			want: "fixed.x: 0o17 means a number"},
		{name: "log range from below the smallest float", src: poisonHead + "space:\n  x: {range: [1e-324, 1e308], count: 5, scale: log}\n",
			want: "poison.yaml:4: space.x.range: 1e-324 is too small to tell from 0"},
		{name: "log range from the smallest float", src: poisonHead + "space:\n  x: {range: [5e-324, 1e308], count: 5, scale: log}\n",
			trials: 5},
		{name: "linear range over the whole float range", src: poisonHead + "space:\n  x: {range: [-1e308, 1e308], count: 5}\n",
			trials: 5, check: values("x", -1e308, -5e307, 0.0, 5e307, 1e308)},
		{name: "linear range from -max to max", src: poisonHead + "space:\n  x: {range: [-1.7976931348623157e308, 1.7976931348623157e308], count: 1001}\n",
			trials: 1001},
		{name: "range too narrow for its count", src: poisonHead + "space:\n  x: {range: [1, 1.0000000000001], count: 10}\n",
			want: "poison.yaml:4: space.x.count: count 10 is too many points for the range [1, 1.0000000000001]"},
		{name: "log range too narrow for its count", src: poisonHead + "space:\n  x: {range: [1e-300, 1.000000001e-300], count: 1000, scale: log}\n",
			want: "space.x.count: count 1000 is too many points"},
		{name: "range count huge", src: poisonHead + "space:\n  x: {range: [0, 1], count: 1e12}\n",
			want: "space.x.count: want a whole number from 1 to 2147483647, got 1000000000000"},
		{name: "range count over 2^53", src: poisonHead + "space:\n  x: {range: [0, 1], count: 1e300}\n",
			want: "space.x.count: 1e300 is too large"},
		{name: "range count over the trial limit", src: poisonHead + "space:\n  x: {range: [0, 1], count: 2000000}\n",
			want: "space.x.count: count 2000000 makes the grid larger than the limit of 1000000 trials"},
		{name: "range count infinite", src: poisonHead + "space:\n  x: {range: [0, 1], count: .inf}\n",
			want: "space.x.count: .inf is not a finite number"},
	}...)
}

func settingCases() []poisonCase {
	return []poisonCase{
		{name: "cpu 1e308", src: poisonHead + "resources: {cpu: 1e308}\n",
			want: "poison.yaml:3: resources.cpu: want a positive number of cores, at most 1048576"},
		{name: "cpu infinite", src: poisonHead + "resources: {cpu: .inf}\n",
			want: "resources.cpu: .inf is not a finite number"},
		{name: "cpu NaN", src: poisonHead + "resources: {cpu: NaN}\n",
			want: "resources.cpu: NaN is not a finite number; parameters and other numbers in a spec must be finite, since the JSON that carries them has no NaN or infinity: write a decimal number such as 1e308"},
		{name: "cpu smallest positive", src: poisonHead + "resources: {cpu: 5e-324}\n", trials: 1},
		{name: "memory 1e30GiB", src: poisonHead + "resources: {memory: 1e30GiB}\n",
			want: "resources.memory: memory size 1e30GiB is out of range; want at least 1 byte and at most 4EiB"},
		{name: "memory 1e308 MiB", src: poisonHead + "resources: {memory: 1e308}\n",
			want: "resources.memory: memory size 1e308 is out of range"},
		{name: "memory overflowing number", src: poisonHead + "resources: {memory: 1e309}\n",
			want: "resources.memory: 1e309 is out of range"},
		{name: "memory NaN with a unit", src: poisonHead + "resources: {memory: NaNGiB}\n",
			want: `resources.memory: invalid memory size "NaNGiB"`},
		{name: "gpu huge", src: poisonHead + "resources: {gpu: 1e12}\n",
			want: "resources.gpu: want a whole number from 0 to 2147483647"},
		{name: "timeout huge", src: poisonHead + "timeout: 1000000000h\n",
			want: `poison.yaml:3: timeout: invalid duration "1000000000h"; want a positive duration with a unit such as 90s, 10m or 1h30m, of at most 2562047h (about 292 years)`},
		{name: "timeout at the limit", src: poisonHead + "timeout: 2562047h\n", trials: 1},
		{name: "timeout in nanoseconds", src: poisonHead + "timeout: 9223372036854775807ns\n", trials: 1},
		{name: "retries huge", src: poisonHead + "retries: 99999999999\n",
			want: "retries: want a whole number from 0 to 2147483647, got 99999999999"},
		{name: "retries past 2^53", src: poisonHead + "retries: 1e300\n",
			want: "retries: 1e300 is too large"},
		{name: "priority huge", src: poisonHead + "priority: 2147483648\n",
			want: "priority: priority 2147483648 is out of range"},
		{name: "priority past 64 bits", src: poisonHead + "priority: 99999999999999999999\n",
			want: "priority: 99999999999999999999 is too large"},
		{name: "seeds at the int64 limits", src: poisonHead + "seeds: [9223372036854775807, -9223372036854775808]\n",
			trials: 2, check: func(t *testing.T, _ *Spec, trials []Trial) {
				if trials[0].Seed != math.MaxInt64 || trials[1].Seed != math.MinInt64 {
					t.Errorf("seeds = %d, %d", trials[0].Seed, trials[1].Seed)
				}
			}},
		{name: "seed past int64", src: poisonHead + "seeds: [9223372036854775808]\n",
			want: "seeds: 9223372036854775808 is too large"},
		{name: "seed 1e19", src: poisonHead + "seeds: [1e19]\n",
			want: "seeds: 1e19 is too large"},
		{name: "seed overflowing", src: poisonHead + "seeds: [1e309]\n",
			want: "seeds: 1e309 is out of range"},
		{name: "seed NaN", src: poisonHead + "seeds: [.nan]\n",
			want: "seeds: .nan is not a finite number"},
		{name: "replicates at the limit", src: poisonHead + "replicates: 1000000\n", stream: 1000},
		{name: "replicates over the limit", src: poisonHead + "replicates: 1000001\n",
			want: "replicates: 1000001 replicates exceed the limit of 1000000 trials"},
		{name: "replicates huge", src: poisonHead + "replicates: 1e300\n",
			want: "replicates: 1e300 is too large"},
		{name: "replicates times a grid", src: poisonHead + "replicates: 1000\nspace:\n  x: " + numbers(1001) + "\n",
			want: "space: the spec expands to 1001000 trials (1001 x × 1000 seeds)"},
		{name: "budget overflowing", src: poisonHead + "budget: {flops: 1e309}\n",
			want: "budget.flops: 1e309 is out of range"},
		{name: "budget infinite", src: poisonHead + "budget: {device_hours: .inf}\n",
			want: "budget.device_hours: .inf is not a finite number"},
		{name: "budget huge", src: poisonHead + "budget: {flops: 1e308}\n", trials: 1},
		{name: "halving eta overflowing the rungs", src: poisonHead + "fixed: {tokens: 1e300}\nsearch:\n  halving: {fidelity: tokens, max: 1e308, eta: 1e300}\n",
			want: "search.halving.max: max 1e+308 leaves no rung past the first"},
		{name: "asha rungs NaN", src: poisonHead + "search:\n  asha: {rungs: [1, NaN]}\n",
			want: "search.asha.rungs: NaN is not a finite number"},
		{name: "100,000 asha rungs", src: poisonHead + "search:\n  asha: {rungs: " + strings.Replace(numbers(100_001), "[0, ", "[", 1) + "}\n",
			trials: 1},
	}
}

func derivedCases() []poisonCase {
	const grid = "space:\n  x: [-1, 0, 1000]\n"
	return []poisonCase{
		{name: "divide by zero", src: poisonHead + grid + "derived:\n  y: x / 0\n", atExpand: true,
			want: "derived.y = x / 0: -Inf is not a finite number for {x=-1}"},
		{name: "zero over zero", src: poisonHead + "derived:\n  y: 0 / 0\n", atExpand: true,
			want: "derived.y = 0 / 0: NaN is not a finite number"},
		{name: "log of a negative", src: poisonHead + grid + "derived:\n  y: log(x)\n", atExpand: true,
			want: "derived.y = log(x): NaN is not a finite number for {x=-1}"},
		{name: "sqrt of a negative", src: poisonHead + grid + "derived:\n  y: sqrt(x)\n", atExpand: true,
			want: "derived.y = sqrt(x): NaN"},
		{name: "log of zero", src: poisonHead + "fixed: {x: 0}\nderived:\n  y: log10(x)\n", atExpand: true,
			want: "derived.y = log10(x): -Inf is not a finite number"},
		{name: "exp overflows", src: poisonHead + grid + "derived:\n  y: exp(x)\n", atExpand: true,
			want: "derived.y = exp(x): +Inf is not a finite number for {x=1000}"},
		{name: "power overflows", src: poisonHead + grid + "derived:\n  y: 10 ^ x\n", atExpand: true,
			want: "derived.y = 10 ^ x: +Inf"},
		{name: "product overflows", src: poisonHead + "fixed: {x: 1e308}\nderived:\n  y: x * 10\n", atExpand: true,
			want: "derived.y = x * 10: +Inf"},
		{name: "a NaN in a chain", src: poisonHead + grid + "derived:\n  y: x / x\n  z: y + 1\n", atExpand: true,
			want: "derived.y = x / x: NaN is not a finite number for {x=0}"},
		{name: "a long string beside a failing derived", src: poisonHead + grid + "fixed: {note: " + strings.Repeat("n", 60<<10) + "}\nderived:\n  y: x / 0\n", atExpand: true,
			want: "derived.y = x / 0"},
		{name: "overflowing literal", src: poisonHead + "derived:\n  y: 1e309 * 2\n",
			want: `poison.yaml:4: derived.y: invalid expression "1e309 * 2": column 1: bad number "1e309"`},
		{name: "NaN is a name in an expression", src: poisonHead + "fixed: {x: 1}\nderived:\n  y: NaN * x\n",
			want: `derived.y: unknown parameter "NaN"`},
		{name: "derived value NaN", src: poisonHead + "derived:\n  y: .nan\n",
			want: "derived.y: .nan is not a finite number"},
		{name: "tiny results stay finite", src: poisonHead + grid + "derived:\n  y: x * 1e-320\n  z: 2 ^ -1e6\n",
			trials: 3},
		{name: "an infinite intermediate with a finite result", src: poisonHead + "fixed: {x: 1e308}\nderived:\n  y: 1 / (x * 10)\n",
			trials: 1},
		{name: "derived over a 100,000-point grid", src: poisonHead + "space:\n  x: " + numbers(100_000) + "\nderived:\n  y: 1 / (x - 99999)\n", atExpand: true,
			want: "derived.y = 1 / (x - 99999): +Inf is not a finite number for {x=99999}"},
	}
}

func randomCases() []poisonCase {
	random := func(count, space string) string {
		return poisonHead + "random:\n  count: " + count + "\n  space:\n    " + space + "\n"
	}
	return []poisonCase{
		{name: "random count huge", src: random("1e12", "x: {uniform: [0, 1]}"),
			want: "poison.yaml:4: random.count: want a whole number from 1 to 2147483647"},
		{name: "random count past 2^53", src: random("1e300", "x: {uniform: [0, 1]}"),
			want: "random.count: 1e300 is too large"},
		{name: "random count over the limit", src: random("1000001", "x: {uniform: [0, 1]}"),
			want: "random.count: count 1000001 is over the limit of 1000000 trials"},
		{name: "random count times a grid", src: random("1000", "x: {uniform: [0, 1]}") + "space:\n  g: " + numbers(1001) + "\n",
			want: "the spec expands to 1001000 trials (1001 g × 1000 random draws × 1 seeds)"},
		{name: "random count infinite", src: random(".inf", "x: {uniform: [0, 1]}"),
			want: "random.count: .inf is not a finite number"},
		{name: "random seed huge", src: random("2", "x: {uniform: [0, 1]}") + "  seed: 1e300\n",
			want: "random.seed: 1e300 is too large"},
		{name: "100,000 draws", src: random("100000", "x: {uniform: [0, 1]}"), trials: 100_000},
		{name: "uniform over the whole float range", src: random("200", "x: {uniform: [-1.7976931348623157e308, 1.7976931348623157e308]}"),
			trials: 200},
		{name: "uniform from the smallest float", src: random("50", "x: {uniform: [0, 5e-324]}"),
			trials: 2}, // draws of 0 or 5e-324 repeat, and repeats are one trial
		{name: "loguniform over the whole float range", src: random("200", "x: {loguniform: [5e-324, 1.7976931348623157e308]}"),
			trials: 200},
		{name: "int over 2^53", src: random("200", "x: {int: [-9007199254740992, 9007199254740992]}"),
			trials: 200},
		{name: "int past 2^53", src: random("2", "x: {int: [0, 1e300]}"),
			want: "random.space.x.int: bounds [0, 1e+300] are too large; int bounds must be at most 2^53"},
		{name: "uniform to infinity", src: random("2", "x: {uniform: [0, .inf]}"),
			want: "random.space.x.uniform: .inf is not a finite number"},
		{name: "uniform overflowing", src: random("2", "x: {uniform: [-1e309, 0]}"),
			want: "random.space.x.uniform: -1e309 is out of range"},
		{name: "loguniform from below the smallest float", src: random("2", "x: {loguniform: [1e-400, 1]}"),
			want: "random.space.x.loguniform: 1e-400 is too small to tell from 0"},
	}
}

// TestPoisonHandBuilt checks that Expand, given a Spec no Parse made,
// errs or yields nothing rather than panicking or emitting a NaN.
func TestPoisonHandBuilt(t *testing.T) {
	t.Parallel()
	many := make([]Axis, 5000)
	for i := range many {
		many[i] = Axis{Name: fmt.Sprintf("a%d", i), Values: []any{0.0, 1.0}}
	}
	tests := []struct {
		name string
		spec Spec
		want string // "" for no trials and no error
	}{
		{"zero value", Spec{}, ""},
		{"empty axis", Spec{Seeds: []int64{0}, Axes: []Axis{{Name: "x"}}}, ""},
		{"no draws", Spec{Seeds: []int64{0}, Random: &Random{}}, ""},
		{"negative draws", Spec{Seeds: []int64{0}, Random: &Random{Count: -5, Dists: []Dist{{Name: "x", Kind: Uniform, High: 1}}}}, ""},
		{"empty choice", Spec{Seeds: []int64{0}, Random: &Random{Count: 2, Dists: []Dist{{Name: "x", Kind: Choice}}}},
			"random.space.x: a choice needs at least one value"},
		{"loguniform from 0", Spec{Seeds: []int64{0}, Random: &Random{Count: 2, Dists: []Dist{{Name: "x", Kind: LogUniform, High: 1}}}},
			"random.space.x: draw 0 is NaN"},
		{"uniform over infinity", Spec{Seeds: []int64{0}, Random: &Random{Count: 2, Dists: []Dist{{Name: "x", Kind: Uniform, High: math.Inf(1)}}}},
			"random.space.x: draw 0 is"},
		{"NaN axis value", Spec{Seeds: []int64{0}, Axes: []Axis{{Name: "x", Values: []any{math.NaN()}}}},
			"space.x: value NaN is not a finite number"},
		{"infinite fixed value", Spec{Seeds: []int64{0}, Fixed: map[string]any{"x": math.Inf(-1)}},
			"fixed.x: value -Inf is not a finite number"},
		{"NaN choice", Spec{Seeds: []int64{0}, Random: &Random{Count: 1, Dists: []Dist{{Name: "x", Kind: Choice, Choices: []any{float32(math.NaN())}}}}},
			"random.space.x: choice NaN is not a finite number"},
		{"5000 axes of 2 values", Spec{Seeds: []int64{0}, Axes: many},
			"more than 1.7976931348623157e+308 trials (2 a0 × 2 a1 × 2 a2 × 2 a3 × 2 a4 × 2 a5 × 2 a6 × 2 a7 × 2 a8 × 2 a9 × 4990 more factors × 1 seeds)"},
		{"bad derived", Spec{Seeds: []int64{0}, Derived: []Derived{{Name: "y", Expr: "(("}}}, "derived.y: invalid expression"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			done := make(chan struct{})
			var trials []Trial
			var err error
			go func() {
				defer close(done)
				trials, err = tt.spec.Expand()
			}()
			select {
			case <-done:
			case <-time.After(poisonDeadline):
				t.Fatalf("Expand did not finish within %v", poisonDeadline)
			}
			switch {
			case tt.want == "" && (err != nil || len(trials) != 0):
				t.Errorf("Expand = %d trials, %v; want none and no error", len(trials), err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Expand error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestPoisonExtend checks that neither Extend nor Variant lets a
// non-finite value into a trial.
func TestPoisonExtend(t *testing.T) {
	t.Parallel()
	s := mustParse(t, poisonHead+"space:\n  x: [1, 2]\nderived:\n  y: x * 2\n")
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := s.Extend("x", v); err == nil || !strings.Contains(err.Error(), "parameters must be finite numbers") {
			t.Errorf("Extend(x, %v) error = %v, want a refusal", v, err)
		}
		if _, err := s.Variant(map[string]any{"x": 1.0, "y": 2.0}, map[string]any{"x": v}, 0); err == nil || !strings.Contains(err.Error(), "parameters must be finite numbers") {
			t.Errorf("Variant(x = %v) error = %v, want a refusal", v, err)
		}
	}
	if _, err := s.Variant(map[string]any{"x": 1.0, "y": 2.0}, map[string]any{"x": 1e308}, 0); err == nil || !strings.Contains(err.Error(), "derived.y = x * 2: +Inf is not a finite number") {
		t.Errorf("Variant(x = 1e308) error = %v, want derived.y refused", err)
	}
}
