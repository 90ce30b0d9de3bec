// Package command is the built-in method that runs any program as a trial:
// an existing training script, unchanged. The study's command section
// (sweep.Command) names the program and its arguments, templated from the
// trial's parameters; the program reports metrics as JSON lines on file
// descriptor 3 (also named by $ASYMPTOTE_METRICS), or by lines of its
// standard output that match the section's pattern. The last value of each
// metric is the result.
//
// The program saves checkpoints where $ASYMPTOTE_CHECKPOINT_DIR says and
// announces each on a metrics line; it resumes from $ASYMPTOTE_RESUME_DIR,
// and SIGUSR1 asks it for a checkpoint now (checkpoint.go).
//
// The program runs in the plugin's process group, so the agent's handling
// of a method that crashes, hangs or floods its output covers it and
// everything it starts. A cancellation or a timeout sends SIGTERM to all
// of them and SIGKILL after the command's grace; processes the program
// leaves behind when it exits are killed too.
//
// Only programs the agent allows run: the agent hands the plugin its
// allowlist (paths and SHA-256 sums, AllowEnv), and both the program and
// its interpreter must be on it with their current contents.
package command

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"asymptote.dev/asymptote/internal/procgroup"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/sweep"
)

// Version is the method's version; bump it when what a program receives
// or how its metrics are read changes.
const Version = "1"

// ExitPreempted is the exit status by which a program says it was
// interrupted through no fault of its own (it caught SIGTERM from a
// preempting scheduler, say) and wants to be run again: EX_TEMPFAIL from
// sysexits.h. The attempt is reported lost and runs again without counting
// as a failure.
const ExitPreempted = 75

// AllowEnv names the environment variable through which the agent hands
// the plugin its program allowlist: a JSON object from absolute path (with
// symbolic links resolved) to hex SHA-256.
const AllowEnv = "ASYMPTOTE_ALLOWED_PROGRAMS"

// The environment a program gets, beside the agent's.
const (
	// EnvMetrics names the file the program writes metrics to, one JSON
	// object a line: /dev/fd/3.
	EnvMetrics = "ASYMPTOTE_METRICS"
	// EnvParams names a JSON file holding the trial: study, trial_id,
	// attempt, seed and params.
	EnvParams = "ASYMPTOTE_PARAMS"
	// EnvParamPrefix prefixes one variable per parameter:
	// ASYMPTOTE_PARAM_lr=0.001.
	EnvParamPrefix = "ASYMPTOTE_PARAM_"
)

// Bounds on what a program may send back.
const (
	// maxLine bounds one metrics or output line.
	maxLine = 64 << 10
	// maxMetricsBytes bounds the metrics one attempt may write.
	maxMetricsBytes = 64 << 20
	// tailBytes is how much of the program's stderr an error quotes.
	tailBytes = 2 << 10
	// drainWait bounds the wait for the program's output to end after
	// it exited and its group was killed: a process that left the group
	// may still hold a pipe open.
	drainWait = 2 * time.Second
)

// Method is the command method. The zero value is ready to use.
type Method struct{}

var _ sdk.Method = Method{}

// New returns the command method.
func New() Method { return Method{} }

// Info describes the method. It reads any parameters: they all reach the
// program.
func (Method) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{
		Name:        sweep.CommandMethod,
		Version:     Version,
		Description: "runs any program (the spec's command section): parameters as arguments, environment and a JSON file; metrics as JSON lines on fd 3 or matched on stdout; checkpoints through $ASYMPTOTE_CHECKPOINT_DIR and SIGUSR1",
	}, nil
}

// Run runs the program once for the trial.
func (m Method) Run(ctx context.Context, req *sdk.TrialRequest, report func(sdk.Metrics) error) (*sdk.Result, error) {
	c, err := config(req.Config)
	if err != nil {
		return nil, err
	}
	allow, err := allowlist(os.Getenv(AllowEnv))
	if err != nil {
		return nil, err
	}
	argv, dir, err := resolve(c, allow)
	if err != nil {
		return nil, err
	}
	vars := map[string]any{"seed": req.Seed, "trial_id": req.TrialID, "attempt": req.Attempt, "study": req.Study}
	args, err := c.Argv(req.Params, vars)
	if err != nil {
		return nil, &sdk.ParamError{Param: "command.args", Reason: err.Error()}
	}
	tmp, err := os.MkdirTemp("", "asymptote-trial-")
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	paramsFile := filepath.Join(tmp, "params.json")
	doc, _ := json.Marshal(map[string]any{"study": req.Study, "trial_id": req.TrialID, "attempt": req.Attempt, "seed": req.Seed, "params": req.Params})
	if err := os.WriteFile(paramsFile, doc, 0o600); err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	ck, err := newCheckpoints(req)
	if err != nil {
		return nil, err
	}
	r := &run{
		cmd:         c,
		argv:        append(argv, args...),
		dir:         dir,
		env:         append(environment(os.Environ(), req, paramsFile), ck.env()...),
		report:      report,
		checkpoints: ck,
	}
	if req.Resume != nil {
		// Reports without a step go on numbering after the checkpoint's.
		r.reports = req.Resume.Step
	}
	return r.do(ctx)
}

// config decodes the study's command section from the request.
func config(raw json.RawMessage) (*sweep.Command, error) {
	var mc sweep.MethodConfig
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &mc); err != nil {
			return nil, &sdk.ParamError{Param: "command", Reason: "the method configuration is not valid JSON: " + err.Error()}
		}
	}
	if mc.Command == nil || mc.Command.Program == "" {
		return nil, &sdk.ParamError{Param: "command", Reason: "the study has no command section; method: command runs the program it names (docs/scripts.md)"}
	}
	if mc.Command.Grace <= 0 {
		mc.Command.Grace = sweep.DefaultCommandGrace
	}
	return mc.Command, nil
}

// allowlist decodes AllowEnv.
func allowlist(s string) (map[string]string, error) {
	if s == "" {
		return nil, errors.New("command: this agent allows no programs; start it with -allow-program PATH for the program and its interpreter (docs/scripts.md)")
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("command: the agent's program allowlist (%s) is not a JSON object: %w", AllowEnv, err)
	}
	return m, nil
}

// resolve finds the program and its interpreter, checks both against the
// allowlist, and returns the argument vector that runs them (before the
// trial's arguments) and the working directory. A script's #! line is
// read here and its interpreter run directly, so the file the allowlist
// checked is the one that runs.
func resolve(c *sweep.Command, allow map[string]string) (argv []string, dir string, err error) {
	dir = c.Workdir
	if dir == "" {
		if dir, err = os.Getwd(); err != nil {
			return nil, "", fmt.Errorf("command: %w", err)
		}
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, "", fmt.Errorf("command.workdir: %s is not a directory on this agent's host (node %s); use a path every agent sees, such as a shared filesystem", dir, hostname())
	}
	prog, err := Locate(c.Program, dir, "command.program")
	if err != nil {
		return nil, "", err
	}
	var interp []string
	if c.Interpreter != "" {
		p, err := Locate(c.Interpreter, dir, "command.interpreter")
		if err != nil {
			return nil, "", err
		}
		interp = []string{p}
	} else if interp, err = shebang(prog, dir); err != nil {
		return nil, "", err
	}
	checked := []string{prog}
	if len(interp) > 0 {
		checked = append(checked, interp[0]) // its argument, if any, is not a file
	}
	for _, p := range checked {
		if err := check(p, allow); err != nil {
			return nil, "", err
		}
	}
	if len(interp) == 0 {
		if st, err := os.Stat(prog); err == nil && st.Mode()&0o111 == 0 {
			return nil, "", fmt.Errorf("command.program: %s is not executable and names no interpreter; chmod +x it, give it a #! line, or set command.interpreter", prog)
		}
	}
	return append(interp, prog), dir, nil
}

// Locate resolves name as a path (absolute, or relative to dir) when it
// holds a slash or names a file in dir, and on PATH otherwise; symbolic
// links are resolved, since the allowlist names real files. Errors start
// with field. The agent's -allow-program resolves its paths the same way.
func Locate(name, dir, field string) (string, error) {
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, name)
	}
	if !strings.Contains(name, "/") {
		if _, err := os.Stat(p); err != nil {
			found, lerr := exec.LookPath(name)
			if lerr != nil {
				return "", fmt.Errorf("%s: %s is neither in %s nor on PATH on this agent's host (node %s); install it or give its full path", field, name, dir, hostname())
			}
			p = found
		}
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w (node %s)", field, name, unwrapPath(err), hostname())
	}
	real, _ = filepath.Abs(real)
	st, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s: %s is not a regular file", field, real)
	}
	return real, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// shebang returns the interpreter and its argument from prog's #! line,
// resolved like an interpreter the spec names (#!/usr/bin/env python3 runs
// the python3 on PATH), or nil for a file without one.
func shebang(prog, dir string) ([]string, error) {
	f, err := os.Open(prog)
	if err != nil {
		return nil, fmt.Errorf("command.program: %w", err)
	}
	defer func() { _ = f.Close() }()
	buf := make([]byte, 256)
	n, _ := f.Read(buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	if !strings.HasPrefix(line, "#!") {
		return nil, nil
	}
	fields := strings.Fields(strings.TrimPrefix(line, "#!"))
	if len(fields) == 0 {
		return nil, fmt.Errorf("command.program: %s has an empty #! line; name its interpreter there or in command.interpreter", prog)
	}
	name, rest := fields[0], fields[1:]
	if filepath.Base(name) == "env" && len(rest) > 0 {
		name, rest = rest[0], rest[1:]
	}
	p, err := Locate(name, dir, "command.program's #! interpreter")
	if err != nil {
		return nil, err
	}
	out := []string{p}
	if len(rest) > 0 {
		// As the kernel does: whatever follows the interpreter is one
		// argument.
		out = append(out, strings.Join(rest, " "))
	}
	return out, nil
}

// check refuses a file the allowlist does not name, or whose contents
// changed since it was allowed.
func check(path string, allow map[string]string) error {
	want, ok := allow[path]
	if !ok {
		return fmt.Errorf("command: this agent does not allow %s; start it with -allow-program %s (the allowlist covers each program and its interpreter)", path, path)
	}
	got, err := Hash(path)
	if err != nil {
		return fmt.Errorf("command: %w", err)
	}
	if !strings.EqualFold(got, want) {
		return fmt.Errorf("command: %s changed since the agent allowed it: its sha256 is %s, the agent allows %s; allow it as it is now with 'asymptote allow -program %s %s' (an operator; agents apply it within a heartbeat), or restart the agent with -allow-program %s=%s", path, got, want, path, got, path, got)
	}
	return nil
}

// Hash returns the hex SHA-256 of the file at path, as the allowlist
// holds it.
func Hash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// environment is the program's environment: the plugin's (which carries
// the trial's GPUs and thread budget), without the allowlist and the
// plugin handshake, plus the trial.
func environment(base []string, req *sdk.TrialRequest, paramsFile string) []string {
	env := slices.DeleteFunc(slices.Clone(base), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == AllowEnv || k == sdk.Handshake.MagicCookieKey || strings.HasPrefix(k, "PLUGIN_") || strings.HasPrefix(k, EnvParamPrefix) ||
			k == EnvCheckpointDir || k == EnvResumeDir || k == EnvResumeStep
	})
	gpus := make([]string, len(req.GPUs))
	for i, g := range req.GPUs {
		gpus[i] = strconv.Itoa(g)
	}
	env = append(env,
		EnvMetrics+"=/dev/fd/3",
		EnvParams+"="+paramsFile,
		"ASYMPTOTE_STUDY="+req.Study,
		"ASYMPTOTE_TRIAL_ID="+req.TrialID,
		"ASYMPTOTE_ATTEMPT="+strconv.Itoa(req.Attempt),
		"ASYMPTOTE_SEED="+strconv.FormatInt(req.Seed, 10),
		"ASYMPTOTE_THREADS="+strconv.Itoa(req.Threads),
		"ASYMPTOTE_GPUS="+strings.Join(gpus, ","),
	)
	for _, k := range slices.Sorted(maps.Keys(req.Params)) {
		env = append(env, EnvParamPrefix+k+"="+sweep.FormatValue(req.Params[k]))
	}
	return env
}

// run is one execution of the program.
type run struct {
	cmd    *sweep.Command
	argv   []string
	dir    string
	env    []string
	report func(sdk.Metrics) error
	// checkpoints hands the program's checkpoints to the agent and
	// passes the agent's requests for one on as a signal.
	checkpoints *checkpoints

	proc *exec.Cmd
	// own is set when the program leads a process group of its own
	// (the plugin does not lead one, as when a test runs the method in
	// its own process); otherwise it shares the plugin's group.
	own bool

	reportMu sync.Mutex // report is not safe for concurrent use
	mu       sync.Mutex
	last     map[string]float64 // each metric's latest value
	reports  int64
	failure  error // the first error from reading metrics
	stderr   tail
}

// do starts the program, relays its metrics and waits for it, stopping it
// when ctx ends or its metrics are unreadable.
func (r *run) do(ctx context.Context) (*sdk.Result, error) {
	metricsR, metricsW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	readers := []*os.File{metricsR, outR, errR}
	defer func() {
		for _, f := range readers {
			_ = f.Close()
		}
	}()
	r.last = map[string]float64{}
	r.own = os.Getpid() != syscall.Getpgrp()
	r.proc = &exec.Cmd{
		Path: r.argv[0], Args: r.argv, Dir: r.dir, Env: r.env,
		Stdout: outW, Stderr: errW, ExtraFiles: []*os.File{metricsW},
		SysProcAttr: &syscall.SysProcAttr{Setpgid: r.own},
	}
	err = r.proc.Start()
	for _, f := range []*os.File{metricsW, outW, errW} {
		_ = f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("command: start %s: %w", strings.Join(r.argv, " "), err)
	}
	failed := make(chan struct{})
	var once sync.Once
	fail := func(err error) {
		r.mu.Lock()
		if r.failure == nil {
			r.failure = err
		}
		r.mu.Unlock()
		once.Do(func() { close(failed) })
	}
	var wg sync.WaitGroup
	wg.Go(func() { r.readMetrics(metricsR, fail) })
	wg.Go(func() { r.readStdout(outR, fail) })
	wg.Go(func() { r.readStderr(errR) })

	exited := make(chan error, 1)
	go func() { exited <- r.proc.Wait() }()
	unwatch, unwatched := make(chan struct{}), make(chan struct{})
	go func() { defer close(unwatched); r.checkpoints.watch(unwatch, r.proc.Process.Pid) }()
	var waitErr error
	stopped := false
	select {
	case waitErr = <-exited:
	case <-ctx.Done():
		stopped = true
		waitErr = r.stop(exited)
	case <-failed:
		r.signal(syscall.SIGKILL)
		waitErr = <-exited
	}
	close(unwatch)
	<-unwatched
	// What the program left running dies with the attempt.
	left := r.signal(syscall.SIGKILL)
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainWait):
		for _, f := range readers {
			_ = f.Close()
		}
		<-drained
	}
	if left > 0 && !stopped {
		sdk.Logger().Warn("killed processes the program left running when it exited", "processes", left, "program", r.cmd.Program)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case stopped:
		return nil, fmt.Errorf("command: stopped the program (%v): %w", context.Cause(ctx), ctx.Err())
	case r.failure != nil:
		return nil, r.failure
	}
	if waitErr != nil {
		return nil, r.exitError(waitErr)
	}
	if len(r.last) == 0 {
		return nil, fmt.Errorf("command: the program exited 0 without reporting a metric; write JSON lines such as {\"step\": 100, \"val_loss\": 2.31} to $%s (file descriptor 3), or set command.pattern to read them from its output%s", EnvMetrics, r.stderr.quote())
	}
	return &sdk.Result{Metrics: maps.Clone(r.last)}, nil
}

// stop sends SIGTERM to the program's processes and SIGKILL after the
// grace, and returns the program's exit.
func (r *run) stop(exited <-chan error) error {
	r.signal(syscall.SIGTERM)
	t := time.NewTimer(r.cmd.Grace)
	defer t.Stop()
	select {
	case err := <-exited:
		return err
	case <-t.C:
		r.signal(syscall.SIGKILL)
		return <-exited
	}
}

// signal sends sig to every process of the program's group but the
// plugin, and returns how many it reached.
func (r *run) signal(sig syscall.Signal) int {
	if r.own {
		n := len(procgroup.Members(r.proc.Process.Pid))
		if n > 0 {
			_ = syscall.Kill(-r.proc.Process.Pid, sig)
		}
		return n
	}
	self, n := os.Getpid(), 0
	for _, pid := range procgroup.Members(syscall.Getpgrp()) {
		if pid != self && syscall.Kill(pid, sig) == nil {
			n++
		}
	}
	return n
}

// exitError describes a program that ended badly.
func (r *run) exitError(err error) error {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("command: %w", err)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	switch {
	case ok && ws.Signaled():
		sig := ws.Signal()
		hint := ""
		if sig == syscall.SIGKILL {
			hint = " (out of memory? the kernel's OOM killer sends SIGKILL)"
		}
		return fmt.Errorf("command: the program was killed by signal %d (%s)%s%s", int(sig), sig, hint, r.stderr.quote())
	case ee.ExitCode() == ExitPreempted:
		return fmt.Errorf("%w: the program exited with status %d (preempted, resume me); it runs again without counting a failure", sdk.ErrPreempted, ExitPreempted)
	}
	return fmt.Errorf("command: the program exited with status %d%s", ee.ExitCode(), r.stderr.quote())
}
