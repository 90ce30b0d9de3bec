package command

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/plugins/sdk/sdktest"
	"asymptote.dev/asymptote/sweep"
)

// counter is a shell script that sums 1…30, one step every 20 ms,
// resuming from $ASYMPTOTE_RESUME_DIR. It checkpoints every
// $ASYMPTOTE_PARAM_every steps (0: never on its own) and, when it traps
// SIGUSR1 (trap=1), at the next step after the signal.
const counter = `#!/bin/sh
step=0 total=0 want=0
if [ -n "$ASYMPTOTE_RESUME_DIR" ]; then
	read step total < "$ASYMPTOTE_RESUME_DIR/state"
	[ "$step" = "$ASYMPTOTE_RESUME_STEP" ] || { echo "resume step $ASYMPTOTE_RESUME_STEP, state $step" >&2; exit 9; }
fi
[ "$ASYMPTOTE_PARAM_trap" = 1 ] && trap 'want=1' USR1
while [ $step -lt 30 ]; do
	step=$((step + 1)) total=$((total + step))
	sleep 0.02
	ck=""
	if [ -n "$ASYMPTOTE_CHECKPOINT_DIR" ] && [ $step -lt 30 ] &&
		{ [ $want = 1 ] || { [ $ASYMPTOTE_PARAM_every -gt 0 ] && [ $((step % ASYMPTOTE_PARAM_every)) = 0 ]; }; }; then
		want=0
		mkdir "$ASYMPTOTE_CHECKPOINT_DIR/at-$step"
		echo "$step $total" > "$ASYMPTOTE_CHECKPOINT_DIR/at-$step/state"
		ck=", \"checkpoint\": \"at-$step\""
	fi
	echo "{\"step\": $step, \"total\": $total$ck}" >&3
done
`

func checkpointed(ms []sdk.Metrics) []sdk.Metrics {
	return slices.DeleteFunc(slices.Clone(ms), func(m sdk.Metrics) bool { return m.Checkpoint == "" })
}

func steps(ms []sdk.Metrics) []int64 {
	var s []int64
	for _, m := range ms {
		s = append(s, m.Step)
	}
	return s
}

// withRoot gives a request a checkpoint root of its own.
func withRoot(t *testing.T) func(*sdk.TrialRequest) *sdk.TrialRequest {
	return func(r *sdk.TrialRequest) *sdk.TrialRequest { return r.WithCheckpointRoot(t.TempDir()) }
}

// resumeFrom gives a request a new root, attempt 2 and the checkpoint m.
func resumeFrom(t *testing.T, m sdk.Metrics) func(*sdk.TrialRequest) *sdk.TrialRequest {
	return func(r *sdk.TrialRequest) *sdk.TrialRequest {
		r = r.WithCheckpointRoot(t.TempDir())
		r.Attempt = 2
		r.Resume = &sdk.Checkpoint{Step: m.Step, Metrics: m.Values, Dir: m.Checkpoint}
		return r
	}
}

func TestScriptCheckpointsAndResumes(t *testing.T) {
	h := newHarness(t)
	h.script("count.sh", counter)
	c := sweep.Command{Program: "count.sh"}
	params := map[string]any{"every": 10.0, "trap": 0.0}
	full, err := h.runWith(t.Context(), c, params, withRoot(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if full.Metrics["total"] != 465 {
		t.Fatalf("total %v, want 465", full.Metrics["total"])
	}
	saved := checkpointed(h.reports)
	if got := steps(saved); !slices.Equal(got, []int64{10, 20}) {
		t.Fatalf("checkpoints at steps %v, want 10 and 20", got)
	}
	for _, m := range saved {
		// Handed over in a directory of the SDK's, with the program's
		// files in it.
		if base := filepath.Base(m.Checkpoint); !strings.HasPrefix(base, "step-") {
			t.Errorf("checkpoint %s is not a directory from NewCheckpoint", m.Checkpoint)
		}
		if _, err := os.Stat(filepath.Join(m.Checkpoint, "state")); err != nil {
			t.Errorf("checkpoint of step %d: %v", m.Step, err)
		}
		if m.Values["total"] == 0 {
			t.Errorf("checkpoint of step %d carries no metrics: %v", m.Step, m.Values)
		}
	}
	h.reports = nil
	res, err := h.runWith(t.Context(), c, params, resumeFrom(t, saved[0]), nil)
	if err != nil {
		t.Fatalf("resume from step 10: %v", err)
	}
	if res.Metrics["total"] != full.Metrics["total"] {
		t.Errorf("resumed total %v, uninterrupted %v", res.Metrics["total"], full.Metrics["total"])
	}
	if len(h.reports) != 20 || h.reports[0].Step != 11 {
		t.Errorf("resumed reports at steps %v, want 11…30", steps(h.reports))
	}
}

// TestSignalAsksForCheckpoint checks that the agent's request for a
// checkpoint reaches a program that handles SIGUSR1, in shell and in
// Python, exactly once per request, and that a program that does not
// handle it is not sent it (it would die of it) and finishes unharmed.
func TestSignalAsksForCheckpoint(t *testing.T) {
	h := newHarness(t)
	h.script("count.sh", counter)
	h.script("count.py", `#!/usr/bin/env python3
import json, os, signal, time
want = False
def ask(sig, frame):
    global want
    want = True
signal.signal(signal.SIGUSR1, ask)
step, total = 0, 0
if os.environ.get("ASYMPTOTE_RESUME_DIR"):
    with open(os.path.join(os.environ["ASYMPTOTE_RESUME_DIR"], "state")) as f:
        step, total = map(int, f.read().split())
out = open(os.environ["ASYMPTOTE_METRICS"], "w", buffering=1)
while step < 30:
    step += 1
    total += step
    time.sleep(0.02)
    line = {"step": step, "total": total}
    if want and step < 30:
        want = False
        d = os.path.join(os.environ["ASYMPTOTE_CHECKPOINT_DIR"], f"at-{step}")
        os.mkdir(d)
        with open(os.path.join(d, "state"), "w") as f:
            f.write(f"{step} {total}")
        line["checkpoint"] = d  # an absolute path inside the directory works too
    out.write(json.dumps(line) + "\n")
`)
	for _, tc := range []struct {
		name    string
		program string
		trap    float64
		saved   int
	}{
		{"shell trap", "count.sh", 1, 1},
		{"python handler", "count.py", 0, 1},
		{"shell without a trap", "count.sh", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.reports = nil
			c := sweep.Command{Program: tc.program}
			params := map[string]any{"every": 0.0, "trap": tc.trap}
			asked := int64(0)
			full, err := h.runWith(t.Context(), c, params, withRoot(t), func(req *sdk.TrialRequest, m sdk.Metrics) {
				if m.Step == 5 {
					asked = m.Step
					req.AskCheckpoint()
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if full.Metrics["total"] != 465 {
				t.Fatalf("total %v, want 465", full.Metrics["total"])
			}
			saved := checkpointed(h.reports)
			if len(saved) != tc.saved || tc.saved > 0 && saved[0].Step <= asked {
				t.Fatalf("asked after step %d; checkpoints at steps %v, want %d after it", asked, steps(saved), tc.saved)
			}
			if tc.saved == 0 {
				return
			}
			h.reports = nil
			res, err := h.runWith(t.Context(), c, params, resumeFrom(t, saved[0]), nil)
			if err != nil {
				t.Fatalf("resume from step %d: %v", saved[0].Step, err)
			}
			if res.Metrics["total"] != full.Metrics["total"] {
				t.Errorf("resumed total %v, uninterrupted %v", res.Metrics["total"], full.Metrics["total"])
			}
		})
	}
}

func TestBadCheckpointsFailTheAttempt(t *testing.T) {
	for _, tc := range []struct {
		name, line, want string
	}{
		{"outside", `mkdir -p "$ASYMPTOTE_CHECKPOINT_DIR/../x"; echo '{"step": 1, "checkpoint": "../x"}' >&3`, "is not a directory inside $ASYMPTOTE_CHECKPOINT_DIR"},
		{"the directory itself", `echo "{\"step\": 1, \"checkpoint\": \"$ASYMPTOTE_CHECKPOINT_DIR\"}" >&3`, "is not a directory inside"},
		{"missing", `echo '{"step": 1, "checkpoint": "nothing"}' >&3`, "write the directory before the line that announces it"},
		{"a file", `touch "$ASYMPTOTE_CHECKPOINT_DIR/f"; echo '{"step": 1, "checkpoint": "f"}' >&3`, "is not a directory"},
		{"a symbolic link", `mkdir "$ASYMPTOTE_CHECKPOINT_DIR/d"; ln -s d "$ASYMPTOTE_CHECKPOINT_DIR/l"; echo '{"step": 1, "checkpoint": "l"}' >&3`, "is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.script("bad.sh", "#!/bin/sh\n"+tc.line+"\n")
			_, err := h.runWith(t.Context(), sweep.Command{Program: "bad.sh"}, nil, withRoot(t), nil)
			wantError(t, err, "metrics line 1", tc.want)
		})
	}
}

// TestNoCheckpointsKept checks that a program gets no checkpoint
// directory when the agent keeps none, and that a checkpoint it
// announces anyway is ignored rather than failing the attempt.
func TestNoCheckpointsKept(t *testing.T) {
	h := newHarness(t)
	h.script("none.sh", `#!/bin/sh
[ -z "$ASYMPTOTE_CHECKPOINT_DIR" ] || exit 9
[ -z "$ASYMPTOTE_RESUME_DIR" ] || exit 10
echo '{"step": 1, "loss": 2, "checkpoint": "somewhere"}' >&3
`)
	res, err := h.runWith(context.Background(), sweep.Command{Program: "none.sh"}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Metrics["loss"] != 2 || len(h.reports) != 1 || h.reports[0].Checkpoint != "" {
		t.Errorf("result %v, reports %+v; want loss 2 and one report without a checkpoint", res.Metrics, h.reports)
	}
}

// TestPatternAnnouncesCheckpoint checks that a pattern's checkpoint group
// announces a checkpoint, as a metrics line's key does.
func TestPatternAnnouncesCheckpoint(t *testing.T) {
	h := newHarness(t)
	h.script("print.sh", `#!/bin/sh
echo "step 1 loss 2.5"
mkdir "$ASYMPTOTE_CHECKPOINT_DIR/c2" && echo x > "$ASYMPTOTE_CHECKPOINT_DIR/c2/f"
echo "step 2 loss 2.0 saved c2"
echo "step 3 loss 1.5"
`)
	c := sweep.Command{Program: "print.sh", Pattern: `step (?P<step>\d+) loss (?P<loss>\S+)(?: saved (?P<checkpoint>\S+))?`}
	res, err := h.runWith(t.Context(), c, nil, withRoot(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	saved := checkpointed(h.reports)
	if res.Metrics["loss"] != 1.5 || len(saved) != 1 || saved[0].Step != 2 || saved[0].Values["loss"] != 2 {
		t.Fatalf("result %v, checkpoints %+v; want one at step 2 with loss 2", res.Metrics, saved)
	}
	if _, err := os.Stat(filepath.Join(saved[0].Checkpoint, "f")); err != nil {
		t.Error(err)
	}
}

// TestResumeConformance runs the SDK's resume check over the gRPC
// transport the agent uses: resumed from its middle checkpoint, the
// script reports what it reported uninterrupted, bit for bit.
func TestResumeConformance(t *testing.T) {
	h := newHarness(t)
	h.script("count.sh", counter)
	b, _ := json.Marshal(h.allow)
	t.Setenv(AllowEnv, string(b))
	cfg, _ := json.Marshal(sweep.MethodConfig{Command: &sweep.Command{Program: "count.sh", Workdir: h.dir}})
	n := sdktest.Resume(t, New(), sdktest.ResumeCase{Request: &sdk.TrialRequest{
		TrialID: "t", Attempt: 1, Params: map[string]any{"every": 7.0, "trap": 0.0}, Config: cfg,
	}})
	if n != 4 { // after steps 7, 14, 21 and 28
		t.Errorf("saved %d checkpoints, want 4", n)
	}
}
