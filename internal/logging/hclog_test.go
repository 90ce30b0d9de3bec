package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHCLog(t *testing.T) {
	var buf bytes.Buffer
	l := HCLog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Named("host").Named("synthetic").With("plugin_pid", 42).Warn("step", "trial_id", "t1", "lonely")
	l.Trace("dropped below debug")
	var entry map[string]any
	if err := json.Unmarshal(buf.Bytes(), &entry); err != nil {
		t.Fatalf("want exactly one JSON entry, got %q: %v", buf.String(), err)
	}
	for key, want := range map[string]any{
		"msg": "step", "level": "WARN", "module": "host.synthetic",
		"plugin_pid": 42.0, "trial_id": "t1", "EXTRA_VALUE_AT_END": "lonely",
	} {
		if entry[key] != want {
			t.Errorf("%s = %v, want %v", key, entry[key], want)
		}
	}
}

func TestHCLogLevel(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  hclog.Level
	}{
		{LevelTrace, hclog.Trace},
		{slog.LevelDebug, hclog.Debug},
		{slog.LevelInfo, hclog.Info},
		{slog.LevelError, hclog.Error},
		{slog.LevelError + 4, hclog.Off},
	}
	for _, tt := range tests {
		l := HCLog(slog.New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: tt.level})))
		if got := l.GetLevel(); got != tt.want {
			t.Errorf("GetLevel() with slog level %v = %v, want %v", tt.level, got, tt.want)
		}
	}
}
