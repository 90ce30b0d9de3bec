package methodmgr

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/procgroup"
	"asymptote.dev/asymptote/plugins/methods"
	"asymptote.dev/asymptote/plugins/sdk"
)

// shortTempDir returns a fresh directory with a short path: unix socket
// paths under WorkDir must stay short, and t.TempDir's can be long.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// newManager returns a Manager re-executing this test binary, closed when
// the test ends.
func newManager(t *testing.T, mod func(*Config)) *Manager {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Executable:  exe,
		Builtins:    append(methods.Names(), methods.TestNames()...),
		WorkDir:     filepath.Join(shortTempDir(t), "w"),
		IdleTimeout: time.Minute,
		KillGrace:   300 * time.Millisecond,
		Logger:      testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

func request(id string, params map[string]any) *sdk.TrialRequest {
	return &sdk.TrialRequest{Study: "test", TrialID: id, Attempt: 1, Params: params, Seed: 7, Threads: 1}
}

func TestRunSynthetic(t *testing.T) {
	t.Parallel()
	m := newManager(t, nil)
	var reports []sdk.Metrics
	res, err := m.Run(t.Context(), Run{Method: "synthetic", Request: request("t1", map[string]any{
		"params": 1e8, "tokens": 2e9, "steps": 4.0,
	})}, func(mt sdk.Metrics) error {
		reports = append(reports, mt)
		return nil
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(reports) != 4 {
		t.Errorf("got %d reports, want 4", len(reports))
	}
	if got, want := res.Metrics[sdk.MetricFLOPs], 6*1e8*2e9; got != want {
		t.Errorf("flops = %v, want %v", got, want)
	}
	if v := res.Metrics[sdk.MetricValLoss]; !(v > 1.69 && v < 10) {
		t.Errorf("val_loss = %v, want within (1.69, 10)", v)
	}
}

// pidOf runs a faulty trial with mode ok and returns the plugin's pid.
func pidOf(t *testing.T, m *Manager, r Run) int {
	t.Helper()
	res, err := m.Run(t.Context(), r, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return int(res.Metrics["pid"])
}

func TestReuse(t *testing.T) {
	t.Parallel()
	m := newManager(t, nil)
	ok := Run{Method: "faulty", Request: request("t1", map[string]any{"mode": "ok"})}
	first := pidOf(t, m, ok)
	if second := pidOf(t, m, ok); second != first {
		t.Errorf("second trial ran in pid %d, want the first's %d", second, first)
	}
	// A different environment gets a process of its own.
	withEnv := ok
	withEnv.Env = []string{"CUDA_VISIBLE_DEVICES=0"}
	if other := pidOf(t, m, withEnv); other == first {
		t.Errorf("trial with other env ran in pid %d too", other)
	}
	// A rejected parameter leaves the process reusable.
	bad := Run{Method: "faulty", Request: request("t2", map[string]any{"mode": "bad_param"})}
	_, err := m.Run(t.Context(), bad, nil)
	var me *MethodError
	var pe *sdk.ParamError
	if !errors.As(err, &me) || me.Kind != InvalidParams || !errors.As(err, &pe) || pe.Param != "mode" {
		t.Fatalf("bad_param: err = %v, want InvalidParams with a ParamError for mode", err)
	}
	if again := pidOf(t, m, ok); again != first {
		t.Errorf("after bad_param, trial ran in pid %d, want %d", again, first)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	m := newManager(t, func(c *Config) { c.IdleTimeout = 100 * time.Millisecond })
	ok := Run{Method: "faulty", Request: request("t1", map[string]any{"mode": "ok"})}
	first := pidOf(t, m, ok)
	waitGone(t, first)
	if second := pidOf(t, m, ok); second == first {
		t.Errorf("trial after the idle timeout ran in the old pid %d", first)
	}
}

// waitGone waits until pid no longer runs (gone or a zombie).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d still running", pid)
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	_, ok := procgroup.Of(pid)
	return ok
}

func TestInfo(t *testing.T) {
	t.Parallel()
	m := newManager(t, nil)
	info, err := m.Info(t.Context(), "synthetic")
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Name != "synthetic" || len(info.Params) == 0 {
		t.Errorf("Info = %+v, want synthetic with params", info)
	}
	_ = context.Background
}

func TestClose(t *testing.T) {
	t.Parallel()
	m := newManager(t, nil)
	idle := pidOf(t, m, faultyRun("idle", map[string]any{"mode": "ok"}))
	busyPID := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		_, err := m.Run(context.Background(), faultyRun("busy", map[string]any{"mode": "hang"}), func(mt sdk.Metrics) error {
			busyPID <- int(mt.Values["pid"])
			return nil
		})
		done <- err
	}()
	busy := <-busyPID
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	err := <-done
	var me *MethodError
	if !errors.As(err, &me) || me.Kind != Cancelled || !errors.Is(err, ErrClosed) {
		t.Errorf("busy trial: err = %v, want Cancelled with ErrClosed", err)
	}
	for _, pid := range []int{idle, busy} {
		if alive(pid) {
			t.Errorf("process %d survived Close", pid)
		}
	}
	_, err = m.Run(t.Context(), faultyRun("late", nil), nil)
	if !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: err = %v, want ErrClosed", err)
	}
}

func TestConcurrentTrials(t *testing.T) {
	t.Parallel()
	m := newManager(t, nil)
	const n = 4
	pids := make(chan int, 3*n)
	errs := make(chan error, 3*n)
	for range 3 {
		for range n {
			go func() {
				res, err := m.Run(t.Context(), faultyRun("c", map[string]any{"mode": "slow", "seconds": 0.05}), nil)
				if err != nil {
					errs <- err
					return
				}
				pids <- int(res.Metrics["pid"])
				errs <- nil
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatalf("Run: %v", err)
			}
		}
	}
	close(pids)
	distinct := map[int]bool{}
	for pid := range pids {
		distinct[pid] = true
	}
	if len(distinct) > n {
		t.Errorf("%d processes for %d concurrent trials, want at most %d (reuse)", len(distinct), n, n)
	}
}

func TestLongWorkDir(t *testing.T) {
	t.Parallel()
	long := filepath.Join(shortTempDir(t), strings.Repeat("d", 80))
	m := newManager(t, func(c *Config) { c.WorkDir = long })
	if !strings.HasPrefix(m.sockDir, os.TempDir()) {
		t.Errorf("socket dir %s, want one under %s", m.sockDir, os.TempDir())
	}
	t.Cleanup(func() { _ = os.RemoveAll(m.sockDir) })
	pidOf(t, m, faultyRun("l", map[string]any{"mode": "ok"}))
	// The stand-in lives outside WorkDir, so nothing else would remove it.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.sockDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket dir %s left behind after Close (stat: %v)", m.sockDir, err)
	}
}

// BenchmarkRunWarm measures one trial of the synthetic method on a warm,
// pooled plugin process: the agent's per-trial overhead.
func BenchmarkRunWarm(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "mmb")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	m, err := New(Config{Executable: exe, Builtins: append(methods.Names(), methods.TestNames()...), WorkDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = m.Close() }()
	r := Run{Method: "synthetic", Request: request("b", map[string]any{"params": 1e8, "noise": 0.02})}
	if _, err := m.Run(b.Context(), r, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := m.Run(b.Context(), r, nil); err != nil {
			b.Fatal(err)
		}
	}
}
