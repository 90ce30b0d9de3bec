package sweep

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzDeadline is how long one input may take before it counts as a hang.
const fuzzDeadline = 5 * time.Second

// FuzzParse checks that no input makes Parse panic, that Parse either
// returns a spec or errors that are all *SpecErrors of bounded size, and
// that whatever it accepts hashes and expands (up to a size) into trials
// whose parameters are finite and encode as JSON.
func FuzzParse(f *testing.F) {
	var files []string
	for _, pattern := range []string{"testdata/*.yaml", "../examples/*.yaml"} {
		m, err := filepath.Glob(filepath.FromSlash(pattern))
		if err != nil {
			f.Fatal(err)
		}
		files = append(files, m...)
	}
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	for _, s := range []string{
		"a: [1, {b: c}]\n", "- - x\n", "a:\n- 1\n", "derived: {a: 'max(1,2)'}\n",
		"name: f\nmethod: m\nspace:\n  x: {range: [-1e308, 1e308], count: 3}\nderived:\n  y: x / 2\n",
		"name: f\nmethod: m\nrandom:\n  count: 3\n  space:\n    u: {uniform: [-1e308, 1e308]}\n    c: {choice: [a, 1, true]}\n",
		"name: f\nmethod: m\nfixed: {x: 5e-324, s: \"\\u00e9\\ud7ff\"}\nseeds: [9223372036854775807]\n",
		"name: f\nmethod: m\nresources: {memory: 1e3GiB, cpu: 1e-300}\ntimeout: 2562047h\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		// A hang is a failure too: the fuzzer has no deadline of its own
		// for one input, and would wait on it silently.
		done := make(chan struct{})
		timer := time.AfterFunc(fuzzDeadline, func() {
			select {
			case <-done:
			default:
				panic(fmt.Sprintf("Parse and Expand took over %v on %q", fuzzDeadline, shorten(string(src), 2000)))
			}
		})
		defer func() {
			close(done)
			timer.Stop()
		}()
		s, err := Parse("fuzz.yaml", src)
		if err != nil {
			if s != nil {
				t.Fatalf("Parse returned a spec and an error %v", err)
			}
			for _, e := range leafErrors(err) {
				var se *SpecError
				if !errors.As(e, &se) {
					t.Fatalf("Parse error %v (%T) is not a *SpecError", e, e)
				}
				if len(se.Msg) > maxMsgBytes+64 || len(se.Field) > maxFieldBytes+64 {
					t.Fatalf("a %d-byte message or %d-byte field: %.200s", len(se.Msg), len(se.Field), se)
				}
			}
			return
		}
		_ = s.Hash()
		if n, _ := s.size(); n > 10_000 {
			return
		}
		trials, err := s.Expand()
		if err != nil {
			// Only a derived parameter's value, known per trial, may fail
			// after Parse.
			return
		}
		for _, tr := range trials {
			for name, v := range tr.Params {
				if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
					t.Fatalf("trial %d: %s = %v", tr.Index, name, f)
				}
			}
			if _, err := json.Marshal(tr); err != nil {
				t.Fatalf("trial %d does not encode as JSON: %v", tr.Index, err)
			}
		}
	})
}
