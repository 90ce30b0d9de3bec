package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// OptunaRun is one run of bench/optuna/optuna_bench.py.
type OptunaRun struct {
	Storage       string  `json:"storage"`
	Workers       int     `json:"workers"`
	Trials        int     `json:"trials"`
	Seconds       float64 `json:"seconds"`
	TrialsPerSec  float64 `json:"trials_per_s"`
	FailedWorkers int     `json:"failed_workers"`
	Error         string  `json:"error"`
	// Rep is the repetition of the suite the run belongs to.
	Rep int `json:"repeat"`
}

// optunaScript is the peer benchmark's path relative to the module root.
const optunaScript = "bench/optuna/optuna_bench.py"

// findOptunaScript looks for the script in dir and its parents.
func findOptunaScript(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		p := filepath.Join(d, optunaScript)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("bench: %s not found above %s", optunaScript, dir)
		}
	}
}

// OptunaPeer is bench/optuna/optuna_bench.py serving runs (--serve): one
// Python process, with Optuna imported and PostgreSQL started once, that
// runs each measurement when asked, so the suite interleaves Optuna's runs
// with asymptote's (Run's schedule) instead of running them in a phase of
// their own.
type OptunaPeer struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan []byte
	stderr  *lockedBuffer
	timeout time.Duration
	log     *slog.Logger

	waitOnce sync.Once
	waitErr  error
}

// wait waits for the process once (its stderr is complete after it).
func (p *OptunaPeer) wait() error {
	p.waitOnce.Do(func() { p.waitErr = p.cmd.Wait() })
	return p.waitErr
}

// StartOptuna starts the peer with Debian's python3 and python3-optuna and
// sets up storages. It returns an error, and the suite reports the peer as
// missing, when Optuna is not installed.
func StartOptuna(ctx context.Context, opts Options, storages []string) (*OptunaPeer, error) {
	opts.setDefaults()
	script := opts.OptunaScript
	if script == "" {
		wd, _ := os.Getwd()
		var err error
		if script, err = findOptunaScript(wd); err != nil {
			return nil, err
		}
	}
	// Not CommandContext: the process outlives the call; Close ends it.
	cmd := exec.Command(opts.Python, script, "--serve", "--storages", strings.Join(storages, ","), "--tmp", opts.TempDir)
	p := &OptunaPeer{cmd: cmd, lines: make(chan []byte), stderr: &lockedBuffer{}, timeout: opts.RunTimeout, log: opts.Logger}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("bench: optuna: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench: optuna: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: optuna: %w", err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.lines <- slices.Clone(sc.Bytes())
		}
	}()
	var ready struct {
		Ready bool `json:"ready"`
	}
	if err := p.read(ctx, 2*time.Minute, &ready); err != nil || !ready.Ready {
		p.Close()
		return nil, fmt.Errorf("bench: optuna did not start: %v", err)
	}
	return p, nil
}

// read waits for the peer's next JSON line and decodes it into v.
func (p *OptunaPeer) read(ctx context.Context, timeout time.Duration, v any) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				err := p.wait()
				return fmt.Errorf("the script exited (%v): %s", err, lastLines(p.stderr.String(), 5))
			}
			if json.Unmarshal(line, v) == nil {
				return nil
			}
			// Not ours (a library's print): skip it.
		case <-t.C:
			return fmt.Errorf("no answer within %s", timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Run runs trials no-op trials on storage with workers worker processes,
// on a fresh study in a fresh database; rep labels the repetition.
func (p *OptunaPeer) Run(ctx context.Context, storage string, workers, trials, rep int) (OptunaRun, error) {
	q, _ := json.Marshal(map[string]any{"storage": storage, "workers": workers, "trials": trials, "repeat": rep})
	if _, err := p.stdin.Write(append(q, '\n')); err != nil {
		return OptunaRun{}, fmt.Errorf("bench: optuna: %w: %s", err, lastLines(p.stderr.String(), 5))
	}
	var r OptunaRun
	// The script gives up on a run after 10 minutes itself.
	if err := p.read(ctx, max(p.timeout, 11*time.Minute), &r); err != nil {
		return OptunaRun{}, fmt.Errorf("bench: optuna %s with %d workers: %w", storage, workers, err)
	}
	p.log.Info("optuna run", "storage", r.Storage, "workers", r.Workers, "trials_per_s", r.TrialsPerSec, "error", r.Error)
	return r, nil
}

// Close ends the peer: at the end of its input it stops PostgreSQL and
// removes its files.
func (p *OptunaPeer) Close() error {
	p.stdin.Close()
	done := make(chan error, 1)
	go func() {
		for range p.lines {
		}
		done <- p.wait()
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		return <-done
	}
}

// lockedBuffer collects a process's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 1<<20 {
		b.b.Reset() // only the last lines are ever shown
	}
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
