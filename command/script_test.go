package command

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevRunsAScript runs an existing shell script as a study's method
// through `asymptote dev`: its parameters arrive as arguments, its metrics
// come back on fd 3 and become the results, and its first attempt of each
// trial exits with the "preempted, resume me" status and runs again
// without counting as a failure (retries: 0).
func TestDevRunsAScript(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs embedded servers and plugin processes")
	}
	dir := t.TempDir()
	script := writeFile(t, dir, "train.sh", `#!/bin/sh
# usage: train.sh --width N --lr X
width=$2 lr=$4
marker="$(dirname "$0")/seen-$ASYMPTOTE_TRIAL_ID"
if [ ! -e "$marker" ]; then
  touch "$marker"
  echo "preempted at step 1" >&2
  exit 75
fi
for step in 1 2 3; do
  echo "{\"step\": $step, \"train_loss\": $(awk "BEGIN{print 10/($width*$step)}")}" >&3
done
echo "{\"step\": 3, \"val_loss\": $(awk "BEGIN{print 1 + 1/$width + $lr}")}" >> "$ASYMPTOTE_METRICS"
`)
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	spec := writeFile(t, dir, "study.yaml", `name: script
method: command
command:
  program: `+script+`
  args: ["--width", "{width}", "--lr", "{lr}"]
space:
  width: [4, 16]
fixed:
  lr: 0.5
retries: 0
resources: {cpu: 0.25, memory: 32MiB}
`)
	data := filepath.Join(dir, "data")
	code, out, errOut := runCLI(t, "dev", spec, "-data-dir", data, "-nats-port", "-1", "-allow-program", script, "-allow-program", sh)
	if code != 0 {
		t.Fatalf("dev exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "2 of 2 trials succeeded") {
		t.Fatalf("summary:\n%s\nstderr:\n%s", out, errOut)
	}
	// val_loss = 1 + 1/width + lr: 1.75 for width 4, 1.5625 for 16.
	for _, want := range []string{"1.75", "1.5625"} {
		if !strings.Contains(out, want) {
			t.Errorf("results lack val_loss %s:\n%s", want, out)
		}
	}
	seen, _ := filepath.Glob(filepath.Join(dir, "seen-*"))
	if len(seen) != 2 {
		t.Errorf("%d trials were preempted once, want 2", len(seen))
	}
}

// Without -allow-program dev's agent does not offer the command method, so
// dev refuses the study before starting anything, saying how to allow it.
func TestDevRefusesAScriptNobodyAllowed(t *testing.T) {
	dir := t.TempDir()
	spec := writeFile(t, dir, "study.yaml", "name: script\nmethod: command\ncommand: {program: /bin/true}\n")
	code, out, errOut := runCLI(t, "dev", spec, "-data-dir", filepath.Join(dir, "data"), "-nats-port", "-1")
	if code == 0 {
		t.Fatalf("dev ran a program nobody allowed\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	if !strings.Contains(errOut, "add -allow-program /bin/true") {
		t.Errorf("the refusal should say how to allow a program:\n%s", errOut)
	}
}
