package devcluster_test

import (
	"log/slog"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/devcluster"
)

// TestJetStreamSync: the embedded single server had no replica to recover
// a power cut from, yet flushed on nats-server's 2 min interval, so what
// the docs said survived a power cut did not. It syncs every write unless
// told an interval.
func TestJetStreamSync(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
		always   bool
	}{
		{"default syncs every write", 0, true},
		{"an interval flushes on it", 2 * time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := devcluster.Start(t.Context(), devcluster.Config{DataDir: t.TempDir(), NATSPort: -1, Logger: slog.New(slog.DiscardHandler), NATSSyncInterval: tc.interval})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			js := cl.NATS.JetStreamConfig()
			if js == nil {
				t.Fatal("JetStream is off")
			}
			if js.SyncAlways != tc.always || (!tc.always && js.SyncInterval != tc.interval) {
				t.Errorf("sync always %v, interval %s; want always %v, interval %s", js.SyncAlways, js.SyncInterval, tc.always, tc.interval)
			}
		})
	}
}
