package httpapi

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzValid checks valid against json.Valid.
func FuzzValid(f *testing.F) {
	for _, s := range []string{``, ` `, `0`, `-0`, `01`, `-`, `1.`, `1.5e`, `1.5E+3`, `1e-9`, `.5`, `"a\u00e9\n"`, `"\x"`, `"\u12"`, "\"\x01\"",
		`[]`, `[1,]`, `[,1]`, `{}`, `{"a":1,}`, `{"a" : [true, false, null]}`, `{a:1}`, `{"a":1}}`, `nul`, `truex`, ` [ 1 , 2 ] `,
		strings.Repeat("[", 1001) + strings.Repeat("]", 1001), strings.Repeat("[", 10001) + strings.Repeat("]", 10001)} {
		f.Add([]byte(s))
	}
	for _, b := range rowSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := valid(b), json.Valid(b); got != want {
			t.Fatalf("valid(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}
