package slurm

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Job is one job as squeue lists it.
type Job struct {
	ID    string
	State JobState
	// SLURMState is squeue's own word (PENDING, RUNNING, COMPLETING, ...).
	SLURMState string
	Reason     string
	Submitted  time.Time
	Started    time.Time // zero while pending
}

// Commands runs SLURM's commands. Every call is bounded by Timeout, so a
// slow or absent slurmctld costs a planning round, never the process.
type Commands struct {
	// Sbatch, Squeue and Scancel are the commands (default: the names,
	// found on PATH).
	Sbatch, Squeue, Scancel string
	// Timeout bounds each command (default 30s).
	Timeout time.Duration
	// Env, when set, is added to the commands' environment (SLURM_CONF,
	// say).
	Env []string
}

func (c *Commands) run(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	// A command killed at the timeout may leave a child holding its
	// output open; stop waiting for it soon after.
	cmd.WaitDelay = time.Second
	if len(c.Env) > 0 {
		cmd.Env = append(cmd.Environ(), c.Env...)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer within %s (is slurmctld up?)", timeout)
		}
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

// Submit submits script with sbatch and returns the job ID.
func (c *Commands) Submit(ctx context.Context, script string) (string, error) {
	out, err := c.run(ctx, script, cmp.Or(c.Sbatch, "sbatch"), "--parsable")
	if err != nil {
		return "", err
	}
	// --parsable prints "ID" or "ID;CLUSTER".
	id, _, _ := strings.Cut(strings.TrimSpace(out), ";")
	if id == "" {
		return "", errors.New("sbatch printed no job ID")
	}
	return id, nil
}

// squeueFormat is what Jobs asks squeue for: ID, state, reason, submit
// and start times.
const squeueFormat = "%i|%T|%r|%V|%S"

// Jobs lists the current user's jobs named name.
func (c *Commands) Jobs(ctx context.Context, name string) ([]Job, error) {
	out, err := c.run(ctx, "", cmp.Or(c.Squeue, "squeue"), "--noheader", "--me", "--name="+name, "--states=all", "--format="+squeueFormat)
	if err != nil {
		return nil, err
	}
	return parseSqueue(out)
}

// Cancel cancels jobs with scancel (SIGTERM to their steps, then SIGKILL
// after SLURM's KillWait).
func (c *Commands) Cancel(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := c.run(ctx, "", cmp.Or(c.Scancel, "scancel"), ids...)
	return err
}

// parseSqueue reads squeueFormat's lines.
func parseSqueue(out string) ([]Job, error) {
	var jobs []Job
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 5 {
			return nil, fmt.Errorf("squeue line %q: want 5 fields (%s)", line, squeueFormat)
		}
		j := Job{ID: f[0], SLURMState: f[1], State: fold(f[1]), Reason: f[2]}
		j.Submitted, _ = parseTime(f[3])
		j.Started, _ = parseTime(f[4])
		if j.State == JobPending {
			j.Started = time.Time{} // squeue's expected start, not a start
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// fold maps SLURM's job states to planning's three.
func fold(state string) JobState {
	switch strings.TrimSuffix(state, "+") {
	case "PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD":
		return JobPending
	case "RUNNING", "CONFIGURING", "RESIZING":
		return JobRunning
	default: // COMPLETING, COMPLETED, CANCELLED, TIMEOUT, PREEMPTED, NODE_FAIL, FAILED, SUSPENDED, STOPPED, ...
		return JobEnding
	}
}

// parseTime reads squeue's times (local, ISO without a zone; N/A or
// Unknown when there is none).
func parseTime(s string) (time.Time, error) {
	return time.ParseInLocation("2006-01-02T15:04:05", s, time.Local)
}
