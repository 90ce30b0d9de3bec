package command

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	code := Main(ctx, args, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const devSpec = `name: devtest
method: synthetic
space:
  params: [1e6, 1e7, 1e8]
fixed:
  tokens: 1e9
seeds: [0, 1]
resources: {cpu: 0.25, memory: 32MiB}
`

// TestDevRunsAStudyAndResumes runs a real study through `asymptote dev`:
// embedded etcd and NATS, a coordinator, an agent, and the synthetic method
// in plugin subprocesses. Running it again on the same data directory
// finds the study finished and schedules nothing.
func TestDevRunsAStudyAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs embedded servers and plugin processes")
	}
	dir := t.TempDir()
	spec := writeFile(t, dir, "study.yaml", devSpec)
	data := filepath.Join(dir, "data")
	code, out, errOut := runCLI(t, "dev", spec, "-data-dir", data, "-nats-port", "-1")
	if code != 0 {
		t.Fatalf("dev exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "submitted 6 trials") || !strings.Contains(out, "6 of 6 trials succeeded") {
		t.Fatalf("dev output lacks the submission or the summary\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	if !strings.Contains(out, "VAL_LOSS") || strings.Count(out, "succeeded") < 6 {
		t.Errorf("results table missing:\n%s", out)
	}

	code, out, errOut = runCLI(t, "dev", spec, "-data-dir", data, "-nats-port", "-1")
	if code != 0 {
		t.Fatalf("second dev exited %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "nothing new to schedule (6 trials already known)") {
		t.Errorf("second run should find the study finished, stderr:\n%s", errOut)
	}
}

func TestDevFailsNamingFailedTrials(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs embedded servers and plugin processes")
	}
	dir := t.TempDir()
	spec := writeFile(t, dir, "study.yaml", `name: crashy
method: faulty
space:
  mode: [ok, crash]
retries: 1
resources: {cpu: 0.5, memory: 32MiB}
`)
	code, out, errOut := runCLI(t, "dev", spec, "-data-dir", filepath.Join(dir, "data"), "-nats-port", "-1", "-test-methods")
	if code != 1 {
		t.Fatalf("dev exited %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "1 of 2 trials succeeded") || !strings.Contains(out, "failed trial") || !strings.Contains(out, "mode=crash") {
		t.Errorf("summary should name the failed trial and why:\n%s", out)
	}
	if !strings.Contains(errOut, "1 of 2 trials did not succeed") {
		t.Errorf("stderr should say what failed:\n%s", errOut)
	}
}

func TestBadSpecIsRejectedBeforeAnythingStarts(t *testing.T) {
	dir := t.TempDir()
	spec := writeFile(t, dir, "bad.yaml", "name: bad\nmethod: synthetic\nspace:\n  lr: {range: [1, 2], count: 3, scale: logg}\n")
	code, _, errOut := runCLI(t, "dev", spec, "-data-dir", filepath.Join(dir, "data"))
	if code == 0 {
		t.Fatal("dev accepted a bad spec")
	}
	if !strings.Contains(errOut, "bad.yaml:4") || !strings.Contains(errOut, "logg") {
		t.Errorf("error should name the file, line and value:\n%s", errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("a rejected spec must not create state (stat data dir: %v)", err)
	}
}

func TestUnknownCommandAndFlags(t *testing.T) {
	if code, _, errOut := runCLI(t, "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "results", "x", "-format", "xml"); code != 2 || !strings.Contains(errOut, "want table, csv or json") {
		t.Errorf("bad -format: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "agent", "-queue", "-1", "-data-dir", t.TempDir()); code != 2 || !strings.Contains(errOut, "-queue -1") || !strings.Contains(errOut, "at least 0") {
		t.Errorf("negative -queue: exit %d, %q", code, errOut)
	}
	t.Setenv("ASYMPTOTE_AGENTS", "zero")
	if code, _, errOut := runCLI(t, "dev", "-data-dir", t.TempDir()); code != 2 || !strings.Contains(errOut, "ASYMPTOTE_AGENTS") {
		t.Errorf("bad environment variable: exit %d, %q", code, errOut)
	}
}
