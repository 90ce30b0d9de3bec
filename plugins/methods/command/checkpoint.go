package command

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"asymptote.dev/asymptote/plugins/sdk"
)

// Checkpoints, from the program's side (docs/scripts.md#checkpoints):
//
//   - $ASYMPTOTE_CHECKPOINT_DIR, set when the agent keeps checkpoints for
//     the attempt, is where the program writes them: each into a new
//     directory of its own there, announced by a metrics line with
//     "checkpoint" set to that directory beside the step's values. The
//     method moves the directory into one from the SDK's NewCheckpoint and
//     hands it to the agent, which uploads it and deletes it.
//   - $ASYMPTOTE_RESUME_DIR and $ASYMPTOTE_RESUME_STEP, set when the
//     attempt resumes, are the checkpoint to continue from and its step.
//   - SIGUSR1 asks the program for a checkpoint now (the agent is about to
//     stop the attempt). It is sent only to a program that handles it:
//     unhandled, SIGUSR1 would kill it.
const (
	EnvCheckpointDir = "ASYMPTOTE_CHECKPOINT_DIR"
	EnvResumeDir     = "ASYMPTOTE_RESUME_DIR"
	EnvResumeStep    = "ASYMPTOTE_RESUME_STEP"
	// CheckpointSignal asks the program for a checkpoint now.
	CheckpointSignal = syscall.SIGUSR1
	// checkpointKey is the metrics line's key (and the pattern's group)
	// that announces a checkpoint.
	checkpointKey = "checkpoint"
	// checkpointPoll is how often the method looks whether the agent
	// asked for a checkpoint.
	checkpointPoll = 100 * time.Millisecond
	// programDir is the program's directory under the request's
	// checkpoint root; NewCheckpoint's are named step-N-K beside it.
	programDir = "program"
)

// checkpoints connects a program's checkpoints with the SDK's request.
type checkpoints struct {
	req *sdk.TrialRequest
	// dir is $ASYMPTOTE_CHECKPOINT_DIR; empty when the agent keeps no
	// checkpoints for the attempt.
	dir string
	// taken counts the checkpoints handed over, so the watcher signals
	// once per request of the agent.
	taken  atomic.Int64
	warned atomic.Bool
}

func newCheckpoints(req *sdk.TrialRequest) (*checkpoints, error) {
	c := &checkpoints{req: req}
	if req.Checkpoints() {
		c.dir = filepath.Join(req.CheckpointRoot(), programDir)
		if err := os.MkdirAll(c.dir, 0o700); err != nil {
			return nil, fmt.Errorf("command: checkpoint directory: %w", err)
		}
	}
	return c, nil
}

// env is the program's environment for checkpoints.
func (c *checkpoints) env() []string {
	var env []string
	if c.dir != "" {
		env = append(env, EnvCheckpointDir+"="+c.dir)
	}
	if r := c.req.Resume; r != nil {
		env = append(env, EnvResumeDir+"="+r.Dir, EnvResumeStep+"="+strconv.FormatInt(r.Step, 10))
	}
	return env
}

// take hands the checkpoint the program announced in name (a directory
// under dir, relative to it or absolute) over as the checkpoint after
// step: it moves it into a directory from NewCheckpoint and returns that.
// When the agent keeps none it returns "" and leaves the directory alone.
func (c *checkpoints) take(step int64, name string) (string, error) {
	if c.dir == "" {
		if !c.warned.Swap(true) {
			sdk.Logger().Warn("the program announced a checkpoint, but the agent keeps none for this attempt; it is ignored", "checkpoint", name)
		}
		return "", nil
	}
	src := name
	if !filepath.IsAbs(src) {
		src = filepath.Join(c.dir, src)
	}
	src = filepath.Clean(src)
	rel, err := filepath.Rel(c.dir, src)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("checkpoint %q is not a directory inside $%s (%s); write each checkpoint into a new directory there", name, EnvCheckpointDir, c.dir)
	}
	fi, err := os.Lstat(src)
	switch {
	case err != nil:
		return "", fmt.Errorf("checkpoint %q: %w; write the directory before the line that announces it", name, err)
	case !fi.IsDir():
		return "", fmt.Errorf("checkpoint %q is not a directory (a checkpoint is a directory of regular files)", name)
	}
	dst, err := c.req.NewCheckpoint(step)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	// NewCheckpoint made dst empty; rename(2) replaces an empty
	// directory, but os.Rename refuses any.
	if err := os.Remove(dst); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(src, dst); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	c.taken.Add(1)
	return dst, nil
}

// watch sends the program (pid) CheckpointSignal each time the agent asks
// for a checkpoint, until done closes. A program that does not handle the
// signal is not sent it (it would die of it); the agent's request then
// goes unanswered, and the log says why.
func (c *checkpoints) watch(done <-chan struct{}, pid int) {
	if c.dir == "" {
		return
	}
	t := time.NewTicker(checkpointPoll)
	defer t.Stop()
	sent, warned := int64(-1), int64(-1)
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		n := c.taken.Load()
		if !c.req.CheckpointWanted() || sent == n {
			continue
		}
		if !catches(pid, CheckpointSignal) {
			if warned != n {
				warned = n
				sdk.Logger().Warn("the agent asked for a checkpoint, but the program does not handle SIGUSR1; it is not sent (it would kill the program)",
					slog.Int("pid", pid))
			}
			continue
		}
		if err := syscall.Kill(pid, CheckpointSignal); err == nil {
			sent = n
		}
	}
}

// catches reports whether process pid has a handler for sig, from the
// SigCgt mask in /proc/<pid>/status.
func catches(pid int, sig syscall.Signal) bool {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		mask, ok := strings.CutPrefix(sc.Text(), "SigCgt:")
		if !ok {
			continue
		}
		m, err := strconv.ParseUint(strings.TrimSpace(mask), 16, 64)
		return err == nil && m&(1<<(uint(sig)-1)) != 0
	}
	return false
}
