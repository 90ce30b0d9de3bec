package command

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/clustertest"
)

// TestWatchTellsNoStudyFromNoLeader checks that `watch` on a study the
// leader does not know stops at once with the leader's answer, while
// without a leader it keeps waiting (here until its context ends).
func TestWatchTellsNoStudyFromNoLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs embedded servers")
	}
	clearAsymptoteEnv(t)
	tests := []struct {
		name    string
		leader  bool
		within  time.Duration // the context watch runs under
		timeout string        // watch -timeout: how long one request waits for a leader
		want    []string
		notWant string
	}{
		{
			name: "unknown study", leader: true, within: 60 * time.Second, timeout: "20s",
			want:    []string{`asymptote watch: no study named "nosuch"`},
			notWant: "waiting for a leader",
		},
		{
			name: "no leader", within: 3 * time.Second, timeout: "500ms",
			want: []string{"waiting for a leader", "asymptote watch: context deadline exceeded"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := clustertest.New(t)
			if tt.leader {
				cl.StartCoordinator("c1", nil)
			}
			ctx, cancel := context.WithTimeout(t.Context(), tt.within)
			defer cancel()
			var stderr bytes.Buffer
			code := Main(ctx, []string{"watch", "nosuch", "-nats-url", cl.Servers.NATSURL, "-timeout", tt.timeout, "-interval", "100ms"},
				Env{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &stderr})
			if code == 0 {
				t.Errorf("watch exited 0, want non-zero")
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if tt.notWant != "" && strings.Contains(stderr.String(), tt.notWant) {
				t.Errorf("stderr says %q, but a leader answered:\n%s", tt.notWant, stderr.String())
			}
		})
	}
}
