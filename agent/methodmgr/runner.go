package methodmgr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin/runner"
	"golang.org/x/sys/unix"
)

// pipeCloseDelay is how long after a plugin exits its output pipes are
// force-closed. Normally they reach EOF when the process group dies; a
// descendant that left the group could hold them open forever, and
// go-plugin waits for EOF before it lets go of the process.
const pipeCloseDelay = 2 * time.Second

// procRunner runs one plugin process for go-plugin (it implements
// runner.Runner), adding what go-plugin's own runner lacks: the process
// leads its own process group, which is killed as a whole; the group's
// pid is registered under WorkDir until the group is gone; the exit status
// is kept; and the process is forked from a thread that lives as long as
// the agent, so Pdeathsig fires only when the agent dies.
type procRunner struct {
	cmd    *exec.Cmd
	name   string
	reg    *registry
	entry  regEntry
	sum    []byte // when set, the executable's required SHA-256
	stdout *os.File
	stderr *os.File

	exited chan struct{} // closed once the process is reaped
	waited chan struct{} // closed once go-plugin's Wait returned: output drained
	wOnce  sync.Once

	mu      sync.Mutex
	pid     int
	aborted bool  // abort was called: do not start, or kill at once
	killed  bool  // we killed the group before it exited
	reaped  bool  // the pid may now be reused: never signal it again
	waitErr error // from cmd.Wait
}

var _ runner.Runner = (*procRunner)(nil)

func newProcRunner(name string, reg *registry, entry regEntry, sum []byte) *procRunner {
	return &procRunner{name: name, reg: reg, entry: entry, sum: sum, exited: make(chan struct{}), waited: make(chan struct{})}
}

// Start starts cmd (set by the RunnerFunc) in its own process group.
func (r *procRunner) Start(context.Context) error {
	if r.sum != nil {
		if err := checkSHA256(r.cmd.Path, r.sum); err != nil {
			return err
		}
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return errors.Join(err, outR.Close(), outW.Close())
	}
	// Our own pipes rather than exec's: cmd.Wait would close exec's pipes
	// as soon as the process exits, losing the end of its stderr.
	r.cmd.Stdout, r.cmd.Stderr = outW, errW
	r.stdout, r.stderr = outR, errR

	r.mu.Lock()
	if r.aborted {
		r.mu.Unlock()
		return errors.Join(errAborted, outR.Close(), outW.Close(), errR.Close(), errW.Close())
	}
	err = spawn(r.cmd)
	// The children hold the write ends now.
	_ = outW.Close()
	_ = errW.Close()
	if err != nil {
		r.mu.Unlock()
		_ = outR.Close()
		_ = errR.Close()
		return err
	}
	r.pid = r.cmd.Process.Pid
	r.entry.PID = r.pid
	r.mu.Unlock()

	if err := r.reg.add(r.entry); err != nil {
		_ = r.Kill(context.Background())
		go r.reap()
		return fmt.Errorf("register plugin process: %w", err)
	}
	go r.reap()
	return nil
}

var errAborted = errors.New("launch aborted")

// reap waits for the process to exit, kills the rest of its group while the
// leader's pid is still reserved (a zombie), and only then reaps it: so a
// group id is never signalled after it could have been reused.
func (r *procRunner) reap() {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, r.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	r.mu.Lock()
	_ = syscall.Kill(-r.pid, syscall.SIGKILL)
	err := r.cmd.Wait()
	r.reaped = true
	r.waitErr = err
	r.mu.Unlock()
	_ = r.reg.remove(r.pid)
	close(r.exited)
	time.AfterFunc(pipeCloseDelay, func() {
		_ = r.stdout.Close()
		_ = r.stderr.Close()
	})
}

// abort stops a launch: before the spawn it prevents it, after it kills.
func (r *procRunner) abort() {
	r.mu.Lock()
	r.aborted = true
	r.mu.Unlock()
	_ = r.Kill(context.Background())
}

// Wait waits for the process to exit and returns its exit error.
func (r *procRunner) Wait(ctx context.Context) error {
	select {
	case <-r.exited:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.wOnce.Do(func() { close(r.waited) })
	return r.waitErr
}

// Kill kills the process group. It is safe to call at any time, any number
// of times.
func (r *procRunner) Kill(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pid == 0 || r.reaped {
		return nil
	}
	r.killed = true
	if err := syscall.Kill(-r.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", r.pid, err)
	}
	return nil
}

// exitedOnItsOwn reports whether the process has exited without being
// killed by us, and its exit error. Our kill is SIGKILL; a process that
// was already exiting when it arrived keeps its own status.
func (r *procRunner) exitedOnItsOwn() (bool, error) {
	select {
	case <-r.exited:
	default:
		return false, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	byUs := r.killed
	if ps := r.cmd.ProcessState; ps != nil {
		ws, ok := ps.Sys().(syscall.WaitStatus)
		byUs = byUs && ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
	}
	return !byUs, r.waitErr
}

// dead reports whether the process has exited.
func (r *procRunner) dead() bool {
	select {
	case <-r.exited:
		return true
	default:
		return false
	}
}

func (r *procRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *procRunner) Stderr() io.ReadCloser { return r.stderr }
func (r *procRunner) Name() string          { return r.name }

func (r *procRunner) ID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pid == 0 {
		return ""
	}
	return strconv.Itoa(r.pid)
}

func (r *procRunner) Diagnose(context.Context) string {
	return "the plugin must print go-plugin's handshake line first on stdout; see its stderr"
}

func (r *procRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *procRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// spawnReqs feeds the spawner goroutine.
var spawnReqs = make(chan spawnReq)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

var startSpawner = sync.OnceFunc(func() {
	go func() {
		// Pdeathsig fires when the thread that forked the child exits, not
		// the process. Fork from one locked thread that lives forever.
		runtime.LockOSThread()
		for req := range spawnReqs {
			req.done <- req.cmd.Start()
		}
	}()
})

// spawn starts cmd from the spawner thread.
func spawn(cmd *exec.Cmd) error {
	startSpawner()
	done := make(chan error, 1)
	spawnReqs <- spawnReq{cmd: cmd, done: done}
	return <-done
}
