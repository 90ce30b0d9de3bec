package methodmgr

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies how an attempt failed, for the agent's retry policy.
type Kind int

// The ways an attempt fails.
const (
	// Crashed: the plugin process died, before or during the trial (exit,
	// signal, panic).
	Crashed Kind = iota + 1
	// Hung: the trial's deadline passed. When the method did not return
	// within KillGrace of it, its process was killed.
	Hung
	// Protocol: the plugin broke the protocol: a bad handshake (for example
	// garbage on stdout), a malformed stream, or a flood of output.
	Protocol
	// Failed: the method returned an error.
	Failed
	// InvalidParams: the method rejected the trial's parameters
	// (Err is an *sdk.ParamError); retrying cannot help.
	InvalidParams
	// Cancelled: the trial's context was cancelled (other than by its
	// deadline) or the manager was closed.
	Cancelled
	// Refused: the method is unknown, or its executable is not in the
	// allowlist or does not match its hash; nothing was launched.
	Refused
)

var kindNames = map[Kind]string{
	Crashed:       "crashed",
	Hung:          "hung",
	Protocol:      "protocol",
	Failed:        "failed",
	InvalidParams: "invalid_params",
	Cancelled:     "cancelled",
	Refused:       "refused",
}

// String returns the kind's snake_case name.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Errors wrapped in MethodError.Err for failures the manager detects itself.
var (
	// ErrUnknownMethod: the method is neither built in nor in the allowlist.
	ErrUnknownMethod = errors.New("unknown method")
	// ErrHashMismatch: an external method's executable does not have the
	// SHA-256 its allowlist entry names.
	ErrHashMismatch = errors.New("executable hash does not match the allowlist")
	// ErrExited: the plugin process exited on its own.
	ErrExited = errors.New("plugin process exited")
	// ErrKilled: the manager killed the plugin process (the method ignored
	// cancellation past KillGrace).
	ErrKilled = errors.New("plugin process killed")
	// ErrHandshake: the plugin did not complete go-plugin's handshake.
	ErrHandshake = errors.New("plugin handshake failed")
	// ErrOutputFlood: the plugin wrote more than MaxOutputBytes during one
	// trial.
	ErrOutputFlood = errors.New("plugin flooded its output")
	// ErrClosed: the manager was closed.
	ErrClosed = errors.New("method manager closed")
)

// MethodError reports a failed attempt: which method, how it failed, and
// the last bytes the plugin wrote to stderr during the attempt.
type MethodError struct {
	Method string
	Kind   Kind
	// Stderr is the tail (at most about 2 KiB) of what the plugin process
	// wrote to stderr since the attempt began.
	Stderr string
	Err    error
}

// Error names the method and the kind of failure, and appends the stderr
// tail on lines of its own.
func (e *MethodError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "method %s: %s: %v", e.Method, e.Kind, e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		fmt.Fprintf(&b, "\nstderr tail:\n%s", s)
	}
	return b.String()
}

// Unwrap returns Err, so errors.Is and errors.As see the cause (for
// example a *sdk.ParamError or context.DeadlineExceeded).
func (e *MethodError) Unwrap() error { return e.Err }
