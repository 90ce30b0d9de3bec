package command

import (
	"testing"

	"asymptote.dev/asymptote/internal/security"
)

// TestCaller: the API requests name the -team and the -identity, whose
// default is the name of the identity's -nats-inbox.
func TestCaller(t *testing.T) {
	tests := []struct {
		name           string
		flags          clientFlags
		team, identity string
	}{
		{"open bus", clientFlags{}, "", ""},
		{"team and identity", clientFlags{team: "vision", identity: "submitter-vision"}, "vision", "submitter-vision"},
		{"identity from the inbox", clientFlags{team: "vision", sec: natsSecurityFlags{security.NATS{Inbox: "_INBOX.viewer-vision"}}}, "vision", "viewer-vision"},
		{"identity over the inbox", clientFlags{team: "a", identity: "x", sec: natsSecurityFlags{security.NATS{Inbox: "_INBOX.y"}}}, "a", "x"},
		{"an inbox of no identity", clientFlags{team: "a", sec: natsSecurityFlags{security.NATS{Inbox: "_MINE"}}}, "a", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			team, id := tt.flags.caller()
			if team != tt.team || id != tt.identity {
				t.Errorf("caller() = %q, %q; want %q, %q", team, id, tt.team, tt.identity)
			}
		})
	}
}
