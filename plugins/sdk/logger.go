package sdk

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// stderr is the process's real standard error, saved before Serve points
// os.Stderr at go-plugin's stdio stream: the host reads this one line by
// line and turns JSON lines into structured log entries.
var stderr = os.Stderr

// LogLevelEnv names the environment variable holding the level for
// [Logger] (debug, info, warn or error; default info). The agent sets it
// from its own log level.
const LogLevelEnv = "ASYMPTOTE_LOG_LEVEL"

// timeFormat is the timestamp layout go-plugin's host parses.
const timeFormat = "2006-01-02T15:04:05.000000Z07:00"

var logger = sync.OnceValue(func() *slog.Logger { return newLogger(stderr, logLevel()) })

// Logger returns the method's logger: JSON lines on standard error with
// the keys go-plugin's host expects (@message, @level, @timestamp), so each
// line shows up in the agent's log as a structured entry under the
// method's name, with its attributes kept. Add trial_id and attempt to
// entries about a trial.
func Logger() *slog.Logger { return logger() }

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(os.Getenv(LogLevelEnv)))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// newLogger returns a JSON logger renaming slog's built-in keys to
// go-plugin's.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format(timeFormat))
			case slog.LevelKey:
				return slog.String("@level", strings.ToLower(a.Value.String()))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	}))
}
