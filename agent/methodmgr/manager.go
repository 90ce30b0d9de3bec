// Package methodmgr is the agent's go-plugin host: it launches method
// plugins (built-in methods by re-executing the agent binary, external
// methods from a plugin directory after checking their SHA-256), keeps a
// pool of idle plugin processes for reuse, runs trials on them one at a
// time, and turns every way a plugin can misbehave into a *MethodError.
//
// Plugin processes lead their own process groups, die with the agent
// (Pdeathsig), and are recorded in a pid registry under WorkDir so that a
// restarted agent kills whatever its predecessor left behind.
package methodmgr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"

	"asymptote.dev/asymptote/internal/logging"
	"asymptote.dev/asymptote/plugins/sdk"
)

// Defaults for zero Config fields.
const (
	DefaultIdleTimeout    = time.Minute
	DefaultKillGrace      = 2 * time.Second
	DefaultStartTimeout   = 30 * time.Second
	DefaultMaxOutputBytes = 64 << 20
)

// exitWait bounds how long the manager waits, after a plugin's connection
// broke, for the process to exit and its stderr to drain.
const exitWait = 2 * time.Second

// maxSocketDir is the longest socket directory that leaves room for the
// paths go-plugin creates under it (a unix socket path holds at most 107
// bytes).
const maxSocketDir = 64

// Config configures a Manager.
type Config struct {
	// Executable is the binary re-executed for built-in methods, as
	// `<Executable> method <name>`; default os.Executable().
	Executable string
	// Builtins names the built-in methods.
	Builtins []string
	// PluginDir holds external methods: executables <PluginDir>/<name>.
	PluginDir string
	// Allowlist maps an external method's name to the SHA-256 (hex) of its
	// executable. A method not listed, or whose executable's hash differs,
	// is refused before launch.
	Allowlist map[string]string
	// WorkDir is a private directory (created 0700) for the plugins' unix
	// sockets and the pid registry. Required, and stable across agent
	// restarts. When its path is too long for unix socket paths, the
	// sockets go to a private directory under os.TempDir() instead,
	// asymptote-sock-<uid>-<hash of WorkDir>, which Close removes.
	WorkDir string
	// IdleTimeout stops plugin processes idle this long; default 1m.
	IdleTimeout time.Duration
	// KillGrace is how long a method gets to return after its trial is
	// cancelled or times out before its process group is killed;
	// default 2s.
	KillGrace time.Duration
	// StartTimeout bounds a plugin's launch and handshake; default 30s.
	StartTimeout time.Duration
	// MaxOutputBytes bounds what a plugin may write to stderr and stdout
	// during one trial; past it the process is killed and the attempt
	// fails with ErrOutputFlood. Default 64 MiB; negative means no limit.
	MaxOutputBytes int64
	// Logger receives the manager's and the plugins' log entries; plugin
	// entries carry module=<method>. Default: discard.
	Logger *slog.Logger
	// PassEnv names environment variables (NAME, or PREFIX*) that method
	// processes inherit from the agent besides a short base list (PATH,
	// HOME, locales, CUDA_*, ...; environ.go). Everything else of the
	// agent's environment, its bus URL and credentials included, is left
	// out; a Run's Env is added on top.
	PassEnv []string
}

// Run describes one attempt to run.
type Run struct {
	// Method names a built-in or allowlisted external method.
	Method string
	// Request is the attempt.
	Request *sdk.TrialRequest
	// Env is extra environment for the plugin process, for example
	// CUDA_VISIBLE_DEVICES=0. Processes are pooled per (Method, Env).
	Env []string
	// Checkpoint, when not nil, carries the host's requests for a
	// checkpoint now; each is passed to the running method, and its Found
	// answered.
	Checkpoint <-chan CheckpointRequest
}

// CheckpointRequest asks a running method for a checkpoint at its next
// safe point. Found, if not nil, receives whether the method was running
// and understood the request (a plugin that predates checkpoints does not).
type CheckpointRequest struct {
	Reason string
	Found  chan<- bool
}

// Manager runs trials on pooled plugin processes. Its methods are safe for
// concurrent use.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	reg     *registry
	sockDir string

	mu     sync.Mutex
	closed bool
	// cluster is the external methods the cluster's allowlist adds
	// (name to SHA-256 in hex), set by Allow.
	cluster map[string]string
	idle    map[string][]*proc // pool key -> idle processes, most recent last
	procs   map[*proc]struct{} // every live process, idle or busy
	wg      sync.WaitGroup     // background stops, started only while not closed
}

// New validates cfg, prepares WorkDir and kills plugin process groups left
// behind by a previous agent using the same WorkDir. It starts nothing.
func New(cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = DefaultKillGrace
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.MaxOutputBytes == 0 {
		cfg.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if cfg.Executable == "" && len(cfg.Builtins) > 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("methodmgr: find own executable: %w", err)
		}
		cfg.Executable = exe
	}
	if cfg.WorkDir == "" {
		return nil, errors.New("methodmgr: WorkDir is required")
	}
	wd, err := filepath.Abs(cfg.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("methodmgr: %w", err)
	}
	cfg.WorkDir = wd
	m := &Manager{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "methodmgr"),
		reg:     &registry{dir: filepath.Join(wd, "pids")},
		sockDir: socketDir(wd),
		idle:    map[string][]*proc{},
		procs:   map[*proc]struct{}{},
	}
	for _, d := range []string{wd, m.reg.dir, m.sockDir} {
		if err := privateDir(d); err != nil {
			return nil, fmt.Errorf("methodmgr: prepare work dir: %w", err)
		}
	}
	killed, err := m.reg.cleanOrphans()
	if len(killed) > 0 {
		m.log.Warn("killed plugin processes left by a previous agent", "process_groups", killed)
	}
	if err != nil {
		m.log.Warn("cleaning orphaned plugin processes", logging.KeyError, err)
	}
	// Sockets of dead plugins; live ones were just killed.
	if ents, err := os.ReadDir(m.sockDir); err == nil {
		for _, e := range ents {
			_ = os.RemoveAll(filepath.Join(m.sockDir, e.Name()))
		}
	}
	return m, nil
}

// socketDir returns where plugins' unix sockets go: under WorkDir, or,
// when WorkDir's path is too long for socket paths, in a directory under
// the system's temporary directory named after WorkDir.
func socketDir(workDir string) string {
	dir := filepath.Join(workDir, "sock")
	if len(dir) <= maxSocketDir {
		return dir
	}
	sum := sha256.Sum256([]byte(workDir))
	return filepath.Join(os.TempDir(), fmt.Sprintf("asymptote-sock-%d-%x", os.Getuid(), sum[:6]))
}

// privateDir makes dir a directory only we can use: created 0700, not a
// symlink, owned by us (it may live in a shared temporary directory).
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || (ok && int(st.Uid) != os.Getuid()) {
		return fmt.Errorf("%s is not a directory owned by us", dir)
	}
	return os.Chmod(dir, 0o700)
}

// launchSpec says how to start a method's plugin.
type launchSpec struct {
	name string
	path string
	args []string
	sum  []byte // an external method's SHA-256, checked before exec
}

// resolve finds the executable for method, checking an external one
// against the allowlist.
func (m *Manager) resolve(method string) (launchSpec, error) {
	if slices.Contains(m.cfg.Builtins, method) {
		return launchSpec{name: method, path: m.cfg.Executable, args: []string{"method", method}}, nil
	}
	want, ok := m.cfg.Allowlist[method]
	if !ok {
		m.mu.Lock()
		want, ok = m.cluster[method]
		m.mu.Unlock()
	}
	if !ok || m.cfg.PluginDir == "" || method == "" || method != filepath.Base(method) || method == "." || method == ".." {
		return launchSpec{}, fmt.Errorf("%w %q: not built in and not in the allowlist", ErrUnknownMethod, method)
	}
	sum, err := hex.DecodeString(strings.TrimSpace(want))
	if err != nil || len(sum) != sha256.Size {
		return launchSpec{}, fmt.Errorf("allowlist entry for %q is not a hex SHA-256: %q", method, want)
	}
	path := filepath.Join(m.cfg.PluginDir, method)
	if err := checkSHA256(path, sum); err != nil {
		return launchSpec{}, err
	}
	// The runner checks again right before it executes the file, as
	// go-plugin's SecureConfig would (which cannot be combined with our
	// runner: it checks the blank command's empty path).
	return launchSpec{name: method, path: path, sum: sum}, nil
}

// Allow sets the external methods that the cluster's allowlist adds to
// Config.Allowlist (name to SHA-256 in hex; Config.Allowlist wins where
// both name a method), replacing those of the last call, and returns the
// names of the methods it adds whose executables in PluginDir have the
// hash it gives: those the agent can offer. It logs the others. Built-in
// names are not looked up: a built-in method always runs as built in.
func (m *Manager) Allow(methods map[string]string) []string {
	var offered []string
	for name, want := range methods {
		if _, local := m.cfg.Allowlist[name]; local || slices.Contains(m.cfg.Builtins, name) {
			continue
		}
		sum, err := hex.DecodeString(want)
		if err == nil && len(sum) == sha256.Size && m.cfg.PluginDir != "" {
			err = checkSHA256(filepath.Join(m.cfg.PluginDir, name), sum)
		} else if err == nil {
			err = errors.New("the agent has no plugin directory (-plugin-dir)")
		}
		if err != nil {
			m.log.Warn("the cluster allows a method this agent cannot run", "method", name, "error", err)
			continue
		}
		offered = append(offered, name)
	}
	slices.Sort(offered)
	m.mu.Lock()
	m.cluster = maps.Clone(methods)
	m.mu.Unlock()
	return offered
}

// checkSHA256 returns an error wrapping ErrHashMismatch unless the file at
// path has SHA-256 sum.
func checkSHA256(path string, sum []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("hash external method: %w", err)
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hash external method: %w", err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, sum) {
		return fmt.Errorf("%w: %s has sha256 %x, the allowlist wants %x", ErrHashMismatch, path, got, sum)
	}
	return nil
}

// poolKey identifies interchangeable processes.
func poolKey(method string, env []string) string {
	return method + "\x00" + strings.Join(env, "\x00")
}

// Run runs one attempt of a trial on a plugin process of r.Method,
// calling report for each metrics event. ctx bounds the attempt: when it
// ends, the method is asked to stop and gets KillGrace to return before
// its process group is killed. Every failure is a *MethodError; its Kind
// is Hung when ctx's deadline passed and Cancelled when ctx was cancelled
// otherwise (Err is then context.Cause(ctx)). When report returns an
// error, the attempt is cancelled with that error as the cause.
func (m *Manager) Run(ctx context.Context, r Run, report func(sdk.Metrics) error) (*sdk.Result, error) {
	if r.Request == nil {
		return nil, &MethodError{Method: r.Method, Kind: Failed, Err: errors.New("nil trial request")}
	}
	if ctx.Err() != nil {
		return nil, m.ctxError(ctx, r.Method, "", nil)
	}
	spec, err := m.resolve(r.Method)
	if err != nil {
		return nil, &MethodError{Method: r.Method, Kind: Refused, Err: err}
	}
	p, err := m.acquire(ctx, spec, r.Env)
	if err != nil {
		return nil, err
	}
	return m.runOn(ctx, p, r, report)
}

// Info describes method, from a (possibly pooled) plugin process.
func (m *Manager) Info(ctx context.Context, method string) (*sdk.Info, error) {
	spec, err := m.resolve(method)
	if err != nil {
		return nil, &MethodError{Method: method, Kind: Refused, Err: err}
	}
	p, err := m.acquire(ctx, spec, nil)
	if err != nil {
		return nil, err
	}
	mark, _ := p.tail.begin(-1)
	info, err := p.client.Info(ctx)
	if err == nil {
		m.release(p)
		return info, nil
	}
	if errors.Is(err, sdk.ErrUnavailable) || p.runner.dead() {
		return nil, m.brokenProcess(p, mark, err)
	}
	m.release(p)
	if ctx.Err() != nil {
		return nil, m.ctxError(ctx, method, p.tail.since(mark), nil)
	}
	return nil, &MethodError{Method: method, Kind: Failed, Stderr: p.tail.since(mark), Err: err}
}

// Close stops every plugin process, idle or busy (busy trials fail with
// ErrClosed), and waits for them to exit. Later calls to Run fail.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	all := make([]*proc, 0, len(m.procs))
	for p := range m.procs {
		all = append(all, p)
	}
	m.idle = map[string][]*proc{}
	m.mu.Unlock()
	// No background work starts once closed is set, so Wait cannot race
	// an Add.
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Go(func() { m.stop(p, p.busy()) })
	}
	wg.Wait()
	m.wg.Wait()
	// A stand-in socket directory under the system's temporary directory
	// is not the agent's to keep: remove it rather than leave it behind.
	// (An agent that dies without Close leaves it; its successor on the
	// same WorkDir reuses it.)
	if m.sockDir != filepath.Join(m.cfg.WorkDir, "sock") {
		if err := os.RemoveAll(m.sockDir); err != nil {
			m.log.Warn("removing the plugins' socket directory", "dir", m.sockDir, logging.KeyError, err)
		}
	}
	return nil
}

func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// ctxError is the error for an attempt stopped by ctx.
func (m *Manager) ctxError(ctx context.Context, method, stderr string, extra error) *MethodError {
	kind := Cancelled
	cause := context.Cause(ctx)
	// ctx.Err() tells a deadline apart even under a custom cause
	// (context.WithTimeoutCause).
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(cause, context.DeadlineExceeded) {
		kind = Hung
	}
	return &MethodError{Method: method, Kind: kind, Stderr: stderr, Err: errors.Join(cause, extra)}
}

// proc is one plugin process.
type proc struct {
	key    string
	method string
	plugin *plugin.Client
	client *sdk.Client
	runner *procRunner
	tail   *tail

	mu        sync.Mutex
	running   bool
	idleTimer *time.Timer
}

func (p *proc) busy() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// acquire takes an idle process for (spec, env) or launches one, and marks
// it busy.
func (m *Manager) acquire(ctx context.Context, spec launchSpec, env []string) (*proc, error) {
	// A process runs the executable that had the hash the allowlist gave
	// when it started: a new hash for the method starts new processes.
	key := poolKey(spec.name+"\x00"+hex.EncodeToString(spec.sum), env)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, &MethodError{Method: spec.name, Kind: Cancelled, Err: ErrClosed}
	}
	var dead []*proc
	defer func() {
		for _, p := range dead {
			m.background(func() { m.stop(p, true) })
		}
	}()
	for list := m.idle[key]; len(list) > 0; list = m.idle[key] {
		p := list[len(list)-1]
		m.idle[key] = list[:len(list)-1]
		p.mu.Lock()
		p.idleTimer.Stop()
		p.running = true
		p.mu.Unlock()
		if p.runner.dead() {
			dead = append(dead, p)
			continue
		}
		m.mu.Unlock()
		return p, nil
	}
	m.mu.Unlock()
	return m.launch(ctx, spec, key, env)
}

// release returns a process to its pool after a trial it survived.
func (m *Manager) release(p *proc) {
	m.mu.Lock()
	p.mu.Lock()
	p.running = false
	p.mu.Unlock()
	if m.closed || p.runner.dead() {
		m.mu.Unlock()
		m.background(func() { m.stop(p, true) })
		return
	}
	defer m.mu.Unlock()
	p.mu.Lock()
	p.idleTimer = time.AfterFunc(m.cfg.IdleTimeout, func() { m.expire(p) })
	p.mu.Unlock()
	m.idle[p.key] = append(m.idle[p.key], p)
}

// background runs f in a goroutine Close waits for; once the manager is
// closed it runs f at once instead, since Close may already be waiting.
func (m *Manager) background(f func()) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		f()
		return
	}
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// expire stops p if it is still idle.
func (m *Manager) expire(p *proc) {
	m.mu.Lock()
	list := m.idle[p.key]
	i := slices.Index(list, p)
	if i < 0 {
		m.mu.Unlock()
		return // taken meanwhile
	}
	m.idle[p.key] = slices.Delete(list, i, i+1)
	m.mu.Unlock()
	m.log.Debug("stopping idle plugin", logging.KeyMethod, p.method, logging.KeyPluginPID, p.runner.ID())
	m.stop(p, false)
}

// stop ends p: gracefully through go-plugin (the plugin exits when asked,
// or is killed after go-plugin's 2s), or at once when kill is set. Either
// way the whole process group dies.
func (m *Manager) stop(p *proc, kill bool) {
	if kill {
		_ = p.runner.Kill(context.Background())
	}
	p.plugin.Kill()
	_ = p.runner.Kill(context.Background())
	m.mu.Lock()
	delete(m.procs, p)
	m.mu.Unlock()
}

// discard kills p in the background: it failed a trial.
func (m *Manager) discard(p *proc) {
	_ = p.runner.Kill(context.Background())
	m.background(func() { m.stop(p, true) })
}

// launch starts a plugin process and completes the handshake.
func (m *Manager) launch(ctx context.Context, spec launchSpec, key string, env []string) (*proc, error) {
	entry := regEntry{Token: newToken(), Method: spec.name, Started: time.Now()}
	r := newProcRunner(spec.name, m.reg, entry, spec.sum)
	t := &tail{}
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: sdk.Handshake,
		Plugins:         sdk.PluginSet(nil),
		// With a RunnerFunc go-plugin hands over a blank command holding
		// only its own environment (handshake cookie, socket dir).
		RunnerFunc: func(_ hclog.Logger, cmd *exec.Cmd, _ string) (runner.Runner, error) {
			base := exec.Command(spec.path, spec.args...)
			cmd.Path, cmd.Args, cmd.Err = base.Path, base.Args, base.Err
			pluginEnv := cmd.Env
			cmd.Env = append(scrubEnv(os.Environ(), m.cfg.PassEnv), env...)
			cmd.Env = append(cmd.Env, entry.marker(), sdk.LogLevelEnv+"="+m.pluginLogLevel())
			cmd.Env = append(cmd.Env, pluginEnv...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
			cmd.Stdin = nil // /dev/null, not the agent's stdin
			r.cmd = cmd
			return r, nil
		},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           logging.HCLog(m.cfg.Logger),
		Stderr:           t,
		SyncStdout:       t,
		SyncStderr:       t,
		SkipHostEnv:      true,
		UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: m.sockDir},
		StartTimeout:     m.cfg.StartTimeout,
	})
	p := &proc{key: key, method: spec.name, plugin: pc, runner: r, tail: t, running: true}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, &MethodError{Method: spec.name, Kind: Cancelled, Err: ErrClosed}
	}
	m.procs[p] = struct{}{}
	m.mu.Unlock()

	type started struct {
		client *sdk.Client
		err    error
	}
	done := make(chan started, 1)
	go func() {
		rpc, err := pc.Client()
		if err != nil {
			done <- started{err: err}
			return
		}
		raw, err := rpc.Dispense(sdk.PluginName)
		if err != nil {
			done <- started{err: err}
			return
		}
		c, ok := raw.(*sdk.Client)
		if !ok {
			err = fmt.Errorf("dispensed %T, want *sdk.Client", raw)
		}
		done <- started{client: c, err: err}
	}()
	var s started
	select {
	case s = <-done:
	case <-ctx.Done():
		r.abort()
		s = <-done
		if s.err == nil {
			s.err = errAborted
		}
	}
	if s.err == nil {
		p.client = s.client
		if m.isClosed() {
			// Close ran during the launch and could not stop a process
			// that did not exist yet.
			m.stop(p, true)
			return nil, &MethodError{Method: spec.name, Kind: Cancelled, Err: ErrClosed}
		}
		m.log.Debug("plugin started", logging.KeyMethod, spec.name, logging.KeyPluginPID, r.ID())
		return p, nil
	}

	// The launch failed. A process that exited on its own may not be
	// reaped yet when go-plugin notices its stdout closed.
	select {
	case <-r.exited:
	case <-time.After(exitWait):
	}
	m.stop(p, true)
	merr := &MethodError{Method: spec.name, Stderr: t.since(0)}
	own, exitErr := r.exitedOnItsOwn()
	switch {
	case ctx.Err() != nil:
		merr = m.ctxError(ctx, spec.name, t.since(0), fmt.Errorf("launching plugin: %w", s.err))
	case errors.Is(s.err, ErrHashMismatch):
		merr.Kind, merr.Err = Refused, s.err
	case own:
		merr.Kind, merr.Err = Crashed, fmt.Errorf("%w before the handshake (%v): %w", ErrExited, exitErr, s.err)
	default:
		merr.Kind, merr.Err = Protocol, fmt.Errorf("%w: %w", ErrHandshake, s.err)
	}
	return nil, merr
}

// pluginLogLevel is the level plugins should log at: the lowest our logger
// keeps.
func (m *Manager) pluginLogLevel() string {
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn} {
		if m.cfg.Logger.Enabled(context.Background(), l) {
			return l.String()
		}
	}
	return slog.LevelError.String()
}

// runOn runs the attempt on p and returns p to the pool or discards it.
func (m *Manager) runOn(ctx context.Context, p *proc, r Run, report func(sdk.Metrics) error) (*sdk.Result, error) {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wrapped := func(mt sdk.Metrics) error {
		if report == nil {
			return nil
		}
		if err := report(mt); err != nil {
			cancel(fmt.Errorf("report metrics: %w", err))
			return err
		}
		return nil
	}
	mark, flood := p.tail.begin(m.cfg.MaxOutputBytes)

	type outcome struct {
		res *sdk.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := p.client.Run(runCtx, r.Request, wrapped)
		done <- outcome{res, err}
	}()
	if r.Checkpoint != nil {
		go func() {
			for {
				select {
				case <-runCtx.Done():
					return
				case req := <-r.Checkpoint:
					cctx, cancel := context.WithTimeout(runCtx, 5*time.Second)
					found, err := p.client.RequestCheckpoint(cctx, r.Request.TrialID, r.Request.Attempt, req.Reason)
					cancel()
					if err != nil {
						m.log.Debug("checkpoint request failed", logging.KeyTrialID, r.Request.TrialID, "error", err)
					}
					if req.Found != nil {
						req.Found <- found
					}
				}
			}
		}()
	}
	var (
		o      outcome
		killed error // why we killed the process, if we did
	)
	kill := func(why error) {
		killed = why
		_ = p.runner.Kill(context.Background())
		o = <-done
	}
	select {
	case o = <-done:
	case <-flood:
		kill(ErrOutputFlood)
	case <-runCtx.Done():
		grace := time.NewTimer(m.cfg.KillGrace)
		defer grace.Stop()
		select {
		case o = <-done:
		case <-flood:
			kill(ErrOutputFlood)
		case <-grace.C:
			kill(fmt.Errorf("%w: the method did not return within %v of cancellation", ErrKilled, m.cfg.KillGrace))
		}
	}

	// The plugin holds its own copy of the trial's deadline, so a method
	// that stopped at it can answer before this process's timer has
	// marked runCtx done; the deadline has passed, so that is imminent:
	// wait for it, so the attempt is classified as hung, not failed.
	if d, ok := runCtx.Deadline(); ok && o.err != nil && !time.Now().Before(d) {
		<-runCtx.Done()
	}
	log := m.log.With(logging.KeyMethod, r.Method, logging.KeyTrialID, r.Request.TrialID,
		logging.KeyAttempt, r.Request.Attempt, logging.KeyPluginPID, p.runner.ID())
	if o.err == nil && killed == nil {
		m.release(p)
		return o.res, nil
	}
	merr := m.classify(runCtx, p, r.Method, mark, o.err, killed)
	log.Debug("attempt failed", "kind", merr.Kind.String(), logging.KeyError, merr.Err)
	return nil, merr
}

// classify turns a failed attempt into a MethodError, and releases or
// discards the process accordingly.
func (m *Manager) classify(ctx context.Context, p *proc, method string, mark int64, err, killed error) *MethodError {
	merr := &MethodError{Method: method}
	switch {
	case errors.Is(killed, ErrOutputFlood):
		m.discard(p)
		merr.Kind, merr.Err = Protocol, fmt.Errorf("%w: more than %d bytes in one trial", ErrOutputFlood, m.cfg.MaxOutputBytes)
	case killed != nil:
		m.discard(p)
		merr = m.ctxError(ctx, method, "", killed)
	case m.isClosed() && (p.runner.dead() || errors.Is(err, sdk.ErrUnavailable)):
		m.discard(p)
		merr.Kind, merr.Err = Cancelled, ErrClosed
	case errors.Is(err, sdk.ErrMethodPanicked):
		// The plugin logs the panic to stderr and returns the error over
		// gRPC; the error can overtake the log. The process is done for:
		// kill it and let its output drain, so the stderr tail holds the
		// panic.
		_ = p.runner.Kill(context.Background())
		select {
		case <-p.runner.waited:
		case <-time.After(exitWait):
		}
		m.discard(p)
		merr.Kind, merr.Err = Crashed, err
	case errors.Is(err, sdk.ErrUnavailable) || p.runner.dead():
		return m.brokenProcess(p, mark, err)
	case ctx.Err() != nil:
		// The method returned after cancellation (typically with ctx's
		// error): its process stays.
		m.release(p)
		merr = m.ctxError(ctx, method, "", nil)
	case errors.As(err, new(*sdk.ParamError)):
		m.release(p)
		merr.Kind, merr.Err = InvalidParams, err
	case errors.Is(err, sdk.ErrProtocol) || errors.Is(err, sdk.ErrBusy):
		m.discard(p)
		merr.Kind, merr.Err = Protocol, err
	default:
		m.release(p)
		merr.Kind, merr.Err = Failed, err
	}
	merr.Stderr = p.tail.since(mark)
	return merr
}

// brokenProcess handles a process whose connection broke: it waits for
// the process to exit and its stderr to drain, then reports a crash (or a
// protocol error when the process lives on without its connection).
func (m *Manager) brokenProcess(p *proc, mark int64, err error) *MethodError {
	merr := &MethodError{Method: p.method}
	select {
	case <-p.runner.waited:
	case <-time.After(exitWait):
	}
	if own, exitErr := p.runner.exitedOnItsOwn(); own {
		merr.Kind, merr.Err = Crashed, fmt.Errorf("%w (%v) during the trial: %w", ErrExited, exitErr, err)
	} else {
		merr.Kind, merr.Err = Protocol, fmt.Errorf("connection to the plugin broke: %w", err)
	}
	m.discard(p)
	merr.Stderr = p.tail.since(mark)
	return merr
}
