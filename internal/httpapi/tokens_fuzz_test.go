package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// FuzzTokens feeds arbitrary token files to the parser: it returns an
// error or entries that each have a known role, and a file it accepts
// parses to the same entries when written out again.
//
//	go test -run '^$' -fuzz FuzzTokens -fuzztime 30s ./internal/httpapi/
func FuzzTokens(f *testing.F) {
	sum := sha256.Sum256([]byte("t"))
	h := hex.EncodeToString(sum[:])
	for _, s := range []string{"", "# c\n", "viewer viewer " + h + "\n", "a submitter " + h + " # x\n\nb operator " + h, "x y z", "viewer viewer " + h[:10]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		m, err := parseTokens("f", []byte(data))
		if err != nil {
			return
		}
		var b strings.Builder
		for k, e := range m {
			switch e.role {
			case roleViewer, roleSubmitter, roleOperator:
			default:
				t.Fatalf("accepted role %q", e.role)
			}
			b.WriteString(e.name + " " + e.role + " " + hex.EncodeToString(k[:]) + "\n")
		}
		again, err := parseTokens("f", []byte(b.String()))
		if err != nil || len(again) != len(m) {
			t.Fatalf("accepted %q but not its rewrite %q: %v", data, b.String(), err)
		}
	})
}
