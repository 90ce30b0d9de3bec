package api

import (
	"strings"
	"testing"
	"time"
)

// TestAllowlistApply walks a list through allows and revocations: the
// version changes exactly when what agents need changes, and the empty
// list's version is what an agent that holds none reports.
func TestAllowlistApply(t *testing.T) {
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	var l Allowlist
	if v := l.Version(); v != "" {
		t.Fatalf("empty list version %q, want \"\"", v)
	}
	steps := []struct {
		req     AllowRequest
		changed bool
		note    string
	}{
		{AllowRequest{Kind: AllowMethod, Name: "m", SHA256: strings.ToUpper(a)}, true, "allowed method m"},
		{AllowRequest{Kind: AllowMethod, Name: "m", SHA256: a}, false, "already allowed"},
		{AllowRequest{Kind: AllowMethod, Name: "m", SHA256: b}, true, "instead of " + a},
		{AllowRequest{Kind: AllowProgram, Name: "/usr/bin/python3", SHA256: a}, true, "allowed program"},
		{AllowRequest{Kind: AllowProgram, Name: "/usr/bin/env", Revoke: true}, false, "was not allowed"},
		{AllowRequest{Kind: AllowMethod, Name: "m", Revoke: true}, true, "revoked method m"},
		{AllowRequest{Kind: AllowProgram, Name: "/usr/bin/python3", Revoke: true}, true, "revoked program"},
	}
	seen := map[string]bool{}
	for i, st := range steps {
		if err := st.req.Check(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		before := l.Version()
		next, note, changed := l.Apply(st.req, "", now)
		if changed != st.changed || !strings.Contains(note, st.note) {
			t.Errorf("step %d: changed %v note %q, want %v and %q", i, changed, note, st.changed, st.note)
		}
		if (next.Version() != before) != st.changed {
			t.Errorf("step %d: version %q -> %q, changed %v", i, before, next.Version(), st.changed)
		}
		if st.changed && next.Version() != "" && seen[next.Version()] {
			t.Errorf("step %d: version %q repeats an earlier list's", i, next.Version())
		}
		seen[next.Version()] = true
		l = next
	}
	if l.Version() != "" || len(l.Methods)+len(l.Programs) != 0 {
		t.Errorf("after revoking everything: %+v (version %q)", l, l.Version())
	}
}

// TestAllowRequestCheck names the field and the fix of each bad request.
func TestAllowRequestCheck(t *testing.T) {
	sum := strings.Repeat("c", 64)
	for _, c := range []struct {
		req  AllowRequest
		want string
	}{
		{AllowRequest{Kind: AllowMethod, Name: "m", SHA256: "xyz"}, "sha256sum m"},
		{AllowRequest{Kind: AllowMethod, Name: "a/b", SHA256: sum}, "plugin directory"},
		{AllowRequest{Kind: AllowMethod, Name: "..", SHA256: sum}, "not a method name"},
		{AllowRequest{Kind: AllowProgram, Name: "/usr/../bin/sh", SHA256: sum}, "clean absolute path"},
		{AllowRequest{Kind: "script", Name: "m", SHA256: sum}, "kind"},
		{AllowRequest{Kind: AllowMethod, Name: "m", SHA256: sum, Revoke: true}, "no hash"},
		{AllowRequest{Kind: AllowMethod, SHA256: sum}, "name: empty"},
	} {
		if err := c.req.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want it to say %q", c.req, err, c.want)
		}
	}
}
