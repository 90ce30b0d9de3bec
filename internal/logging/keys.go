// Package logging holds asymptote's log vocabulary and the adapters that
// route other libraries' loggers into log/slog.
package logging

// Attribute keys used across asymptote's logs. Use these constants rather
// than string literals so entries from every component can be joined.
const (
	KeyError     = "error"
	KeySweepID   = "sweep_id"
	KeyStudy     = "study"
	KeyTrialID   = "trial_id"
	KeyAttempt   = "attempt"
	KeyNodeID    = "node_id"
	KeyPool      = "pool"
	KeyMethod    = "method"
	KeyPluginPID = "plugin_pid"
	KeyLeaderRev = "leader_rev"
)
