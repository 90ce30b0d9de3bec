package sdk

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"
)

// TestLoggerKeys checks the keys go-plugin's host parses.
func TestLoggerKeys(t *testing.T) {
	var buf bytes.Buffer
	newLogger(&buf, slog.LevelInfo).Warn("step done", "trial_id", "t1", "attempt", 2)
	var entry map[string]any
	if err := json.Unmarshal(buf.Bytes(), &entry); err != nil {
		t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
	}
	for key, want := range map[string]any{"@message": "step done", "@level": "warn", "trial_id": "t1", "attempt": 2.0} {
		if entry[key] != want {
			t.Errorf("%s = %v, want %v", key, entry[key], want)
		}
	}
	ts, _ := entry["@timestamp"].(string)
	if _, err := time.Parse(timeFormat, ts); err != nil {
		t.Errorf("@timestamp %q: %v", ts, err)
	}
}
