package methodmgr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/plugins/methods/faulty"
	"asymptote.dev/asymptote/plugins/sdk"
)

func faultyRun(id string, params map[string]any) Run {
	return Run{Method: "faulty", Request: request(id, params)}
}

// TestFaults runs each kind of misbehaviour and checks the attempt fails
// with the right kind and message, that the stderr tail says what the
// plugin wrote, and that the manager still works afterwards.
func TestFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		run        Run
		timeout    time.Duration
		kind       Kind
		is         error  // when set, errors.Is(err, is) must hold
		stderr     string // the stderr tail must contain it
		samePID    bool   // the next trial reuses the process
		minReports int
	}{
		{name: "crash", run: faultyRun("c", map[string]any{"mode": "crash"}), kind: Crashed, is: ErrExited, stderr: "crashing as asked", minReports: 1},
		{name: "panic", run: faultyRun("p", map[string]any{"mode": "panic"}), kind: Crashed, is: sdk.ErrMethodPanicked, stderr: "panicking as asked", minReports: 1},
		{name: "hang past deadline", run: faultyRun("h", map[string]any{"mode": "hang"}), timeout: 300 * time.Millisecond, kind: Hung, is: ErrKilled, stderr: "ignoring cancellation", minReports: 1},
		{name: "slow past deadline", run: faultyRun("s", map[string]any{"mode": "slow", "seconds": 30.0}), timeout: 200 * time.Millisecond, kind: Hung, is: context.DeadlineExceeded, samePID: true},
		{name: "fail", run: faultyRun("f", map[string]any{"mode": "fail"}), kind: Failed, samePID: true},
		{name: "bad param", run: faultyRun("b", map[string]any{"mode": "bad_param"}), kind: InvalidParams, samePID: true},
		{name: "flood", run: faultyRun("fl", map[string]any{"mode": "flood", "bytes": float64(8 << 20)}), kind: Protocol, is: ErrOutputFlood, stderr: "flood flood"},
		{name: "exit before handshake", run: Run{Method: "faulty", Env: []string{faulty.StartupEnv + "=exit_early"}, Request: request("e", nil)}, kind: Crashed, is: ErrExited, stderr: "exiting before the handshake"},
		{name: "garbage on stdout", run: Run{Method: "faulty", Env: []string{faulty.StartupEnv + "=garbage"}, Request: request("g", nil)}, kind: Protocol, is: ErrHandshake},
		{name: "unknown method", run: Run{Method: "nosuch", Request: request("u", nil)}, kind: Refused, is: ErrUnknownMethod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newManager(t, func(c *Config) { c.MaxOutputBytes = 1 << 20 })
			before := 0
			if tt.samePID {
				before = pidOf(t, m, faultyRun("warm", map[string]any{"mode": "ok"}))
			}
			ctx := t.Context()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			reports := 0
			start := time.Now()
			_, err := m.Run(ctx, tt.run, func(sdk.Metrics) error { reports++; return nil })
			var me *MethodError
			if !errors.As(err, &me) {
				t.Fatalf("Run error = %v, want a *MethodError", err)
			}
			if me.Kind != tt.kind {
				t.Errorf("Kind = %v, want %v (err: %v)", me.Kind, tt.kind, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want it to match %v", err, tt.is)
			}
			if !strings.Contains(me.Stderr, tt.stderr) {
				t.Errorf("Stderr = %q, want it to contain %q", me.Stderr, tt.stderr)
			}
			if reports < tt.minReports {
				t.Errorf("got %d reports, want at least %d", reports, tt.minReports)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Run took %v", d)
			}
			after := pidOf(t, m, faultyRun("after", map[string]any{"mode": "ok"}))
			if tt.samePID && after != before {
				t.Errorf("after the fault the process changed from %d to %d, want it reused", before, after)
			}
		})
	}
}

func TestGarbageAfterHandshakeIsHarmless(t *testing.T) {
	t.Parallel()
	m := newManager(t, nil)
	first := pidOf(t, m, faultyRun("g", map[string]any{"mode": "garbage"}))
	if again := pidOf(t, m, faultyRun("ok", nil)); again != first {
		t.Errorf("process changed from %d to %d", first, again)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	cause := errors.New("lease lost")
	tests := []struct {
		name    string
		mode    string
		killed  bool
		maxTime time.Duration
	}{
		{name: "method honours cancellation", mode: "slow", maxTime: 2 * time.Second},
		{name: "method ignores cancellation", mode: "hang", killed: true, maxTime: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newManager(t, nil)
			// Start the plugin process first: on a loaded machine its
			// start can outlast the 200ms below, and a cancellation
			// during the start is another case (the start is abandoned).
			if _, err := m.Run(t.Context(), faultyRun("warm", nil), nil); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancelCause(t.Context())
			time.AfterFunc(200*time.Millisecond, func() { cancel(cause) })
			start := time.Now()
			_, err := m.Run(ctx, faultyRun("x", map[string]any{"mode": tt.mode, "seconds": 30.0}), nil)
			var me *MethodError
			if !errors.As(err, &me) || me.Kind != Cancelled || !errors.Is(err, cause) {
				t.Fatalf("err = %v, want Cancelled wrapping the cause", err)
			}
			if got := errors.Is(err, ErrKilled); got != tt.killed {
				t.Errorf("errors.Is(err, ErrKilled) = %v, want %v", got, tt.killed)
			}
			if d := time.Since(start); d > tt.maxTime {
				t.Errorf("Run returned after %v, want at most %v", d, tt.maxTime)
			}
		})
	}
}

func TestReportErrorCancels(t *testing.T) {
	t.Parallel()
	m := newManager(t, nil)
	stop := errors.New("agent cannot take more metrics")
	_, err := m.Run(t.Context(), Run{Method: "synthetic", Request: request("r", map[string]any{"steps": 100.0, "sleep": 10.0})},
		func(sdk.Metrics) error { return stop })
	var me *MethodError
	if !errors.As(err, &me) || me.Kind != Cancelled || !errors.Is(err, stop) {
		t.Fatalf("err = %v, want Cancelled wrapping the report error", err)
	}
}

func TestFailAttempts(t *testing.T) {
	t.Parallel()
	m := newManager(t, nil)
	for attempt, wantErr := range []bool{true, true, false} {
		req := request("fa", map[string]any{"mode": "ok", "fail_attempts": 2.0})
		req.Attempt = attempt + 1
		_, err := m.Run(t.Context(), Run{Method: "faulty", Request: req}, nil)
		if (err != nil) != wantErr {
			t.Errorf("attempt %d: err = %v, want error %v", attempt+1, err, wantErr)
		}
	}
}

func TestProcessGroupKill(t *testing.T) {
	t.Parallel()
	m := newManager(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	child := 0
	_, err := m.Run(ctx, faultyRun("fork", map[string]any{"mode": "fork"}), func(mt sdk.Metrics) error {
		child = int(mt.Values["child_pid"])
		return nil
	})
	var me *MethodError
	if !errors.As(err, &me) || me.Kind != Hung {
		t.Fatalf("err = %v, want Hung", err)
	}
	if child == 0 {
		t.Fatal("the method reported no child pid")
	}
	waitGone(t, child)
}

func TestAllowlist(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary doubles as an external plugin, under a method name.
	dir := shortTempDir(t)
	if err := os.Symlink(exe, filepath.Join(dir, "faulty")); err != nil {
		t.Fatal(err)
	}
	good := hashFile(t, exe)
	tests := []struct {
		name  string
		allow map[string]string
		kind  Kind
		is    error
	}{
		{name: "listed with the right hash", allow: map[string]string{"faulty": good}},
		{name: "wrong hash", allow: map[string]string{"faulty": strings.Repeat("ab", 32)}, kind: Refused, is: ErrHashMismatch},
		{name: "not listed", allow: map[string]string{"other": good}, kind: Refused, is: ErrUnknownMethod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newManager(t, func(c *Config) {
				c.Builtins = nil
				c.PluginDir = dir
				c.Allowlist = tt.allow
			})
			_, err := m.Run(t.Context(), faultyRun("a", map[string]any{"mode": "ok"}), nil)
			if tt.kind == 0 {
				// The binary is launched, but run as an external method
				// it gets no `method <name>` arguments and cannot serve;
				// TestExternalMethod runs a real one.
				var me *MethodError
				if errors.As(err, &me) && me.Kind == Refused {
					t.Fatalf("err = %v, want the binary launched", err)
				}
				return
			}
			var me *MethodError
			if !errors.As(err, &me) || me.Kind != tt.kind || !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want %v matching %v", err, tt.kind, tt.is)
			}
		})
	}
}

func hashFile(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

func TestOrphanCleanup(t *testing.T) {
	t.Parallel()
	old := newManager(t, nil)
	pid := pidOf(t, old, faultyRun("o", map[string]any{"mode": "ok"}))
	// An unrelated process registered under a pid must survive: it lacks
	// the marker.
	bystander := exec.Command("sleep", "30")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bystander.Process.Kill(); _ = bystander.Wait() })
	if err := old.reg.add(regEntry{PID: bystander.Process.Pid, Token: newToken(), Method: "fake"}); err != nil {
		t.Fatal(err)
	}

	// A new agent on the same WorkDir, the old one never closed.
	cfg := old.cfg
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	waitGone(t, pid)
	if !alive(bystander.Process.Pid) {
		t.Error("the unrelated process was killed")
	}
	if ents, _ := os.ReadDir(m.reg.dir); len(ents) != 0 {
		t.Errorf("registry holds %d entries after cleanup, want 0", len(ents))
	}
}

// TestPluginsDieWithTheAgent kills an agent process outright and checks
// that its plugin follows it (Pdeathsig), and that the next agent on the
// same WorkDir finds nothing left to clean but the registry entry.
func TestPluginsDieWithTheAgent(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(shortTempDir(t), "w")
	agent := exec.Command(exe, "-test.run=^$")
	agent.Env = append(os.Environ(), testAgentEnv+"="+dir)
	agent.Stderr = testWriter{t}
	out, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	var pid int
	if _, err := fmt.Fscan(out, &pid); err != nil {
		t.Fatalf("reading the plugin pid from the agent: %v", err)
	}
	if !alive(pid) {
		t.Fatalf("plugin %d not running while its agent lives", pid)
	}
	if err := agent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()
	waitGone(t, pid)

	m := newManager(t, func(c *Config) { c.WorkDir = dir })
	if ents, _ := os.ReadDir(m.reg.dir); len(ents) != 0 {
		t.Errorf("registry holds %d entries after the restart, want 0", len(ents))
	}
}
