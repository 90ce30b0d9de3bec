package bus

import (
	"strings"
	"testing"
)

// TestParseAPISubject: the caller comes from the subject, the unscoped
// layout has none, and anything else is refused.
func TestParseAPISubject(t *testing.T) {
	tests := []struct {
		subject string
		verb    string
		caller  Caller
		err     string
	}{
		{subject: "asymptote.api.status", verb: "status"},
		{subject: "asymptote.api.cancel.vision.submitter-vision", verb: "cancel", caller: Caller{Team: "vision", Identity: "submitter-vision"}},
		{subject: TeamAPISubject("delete", AllTeams, "operator"), verb: "delete", caller: Caller{Team: AllTeams, Identity: "operator"}},
		{subject: "asymptote.api.status.vision", err: "neither"},
		{subject: "asymptote.api.status.vision.a.b", err: "neither"},
		{subject: "asymptote.api.status..x", err: "neither"},
		{subject: "asymptote.api.", err: "neither"},
		{subject: "asymptote.events.s.t.n", err: "not under"},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			verb, caller, err := ParseAPISubject(tt.subject)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseAPISubject(%q) = %v, want an error with %q", tt.subject, err, tt.err)
				}
				return
			}
			if err != nil || verb != tt.verb || caller != tt.caller {
				t.Errorf("ParseAPISubject(%q) = %q, %+v, %v; want %q, %+v", tt.subject, verb, caller, err, tt.verb, tt.caller)
			}
		})
	}
}

// TestCaller: only a team's identities are scoped to their team; an
// unscoped request is recorded as anonymous.
func TestCaller(t *testing.T) {
	tests := []struct {
		c      Caller
		scoped bool
		who    string
	}{
		{Caller{}, false, "anonymous"},
		{Caller{Team: AllTeams, Identity: "operator"}, false, "operator"},
		{Caller{Team: "vision", Identity: "viewer-vision"}, true, "viewer-vision"},
	}
	for _, tt := range tests {
		if got := tt.c.Scoped(); got != tt.scoped {
			t.Errorf("%+v.Scoped() = %v, want %v", tt.c, got, tt.scoped)
		}
		if got := tt.c.Who(); got != tt.who {
			t.Errorf("%+v.Who() = %q, want %q", tt.c, got, tt.who)
		}
	}
}

// TestValidTeam: a team names subjects, and AllTeams is no team.
func TestValidTeam(t *testing.T) {
	for name, ok := range map[string]bool{"vision": true, "nlp-2": true, DefaultTeam: true, AllTeams: false, "_x": false, "a.b": false, "a*": false, "": false} {
		if err := ValidTeam(name); (err == nil) != ok {
			t.Errorf("ValidTeam(%q) = %v, want ok %v", name, err, ok)
		}
	}
}

// FuzzParseAPISubject: whatever the subject, parsing does not panic, and
// a subject it accepts is the one its parts build.
func FuzzParseAPISubject(f *testing.F) {
	f.Add("asymptote.api.status")
	f.Add("asymptote.api.submit.vision.submitter-vision")
	f.Add("asymptote.api..")
	f.Fuzz(func(t *testing.T, subject string) {
		verb, c, err := ParseAPISubject(subject)
		if err != nil {
			return
		}
		rebuilt := APISubject(verb)
		if c.Team != "" {
			rebuilt = TeamAPISubject(verb, c.Team, c.Identity)
		}
		if rebuilt != subject {
			t.Errorf("ParseAPISubject(%q) = %q, %+v, which builds %q", subject, verb, c, rebuilt)
		}
	})
}
