package python

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// python is Debian's interpreter, which has pandas and pytest
// (scripts/install-test-deps.sh installs them).
const python = "/usr/bin/python3"

func requirePython(t *testing.T) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import pandas, pytest").CombinedOutput()
	if err != nil {
		t.Fatalf("%s cannot import pandas and pytest (scripts/install-test-deps.sh installs python3-pandas and python3-pytest): %v\n%s", python, err, out)
	}
}

// startDev builds asymptote and runs `asymptote dev` with no study, serving
// the HTTP API on a free port, with the extra flags; it returns the API's
// base URL and dev's data directory.
func startDev(t *testing.T, extra ...string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "asymptote")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/asymptote").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, append([]string{"dev", "-data-dir", data, "-nats-port", "-1", "-http", "127.0.0.1:0", "-agents", "1"}, extra...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	urlRE := regexp.MustCompile(`HTTP API at (http://\S+)/api/v1/studies`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := urlRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
			t.Log(sc.Text())
		}
	}()
	select {
	case u := <-found:
		return u, data
	case <-time.After(60 * time.Second):
		t.Fatal("asymptote dev did not print its HTTP API address within 60s")
		return "", ""
	}
}

// TestClient runs the Python client's tests against a real asymptote dev.
func TestClient(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds asymptote and runs asymptote dev")
	}
	requirePython(t)
	url, _ := startDev(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests")
	cmd.Env = append(os.Environ(), "ASYMPTOTE_URL="+url, "PYTHONPATH=.", "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pytest: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestClientToken runs the client against `asymptote dev -secure`, whose
// HTTP API needs the tokens 'secure init' wrote: without one the client
// says what to send; the viewer's token reads but may not submit; the
// submitter's submits.
func TestClientToken(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds asymptote and runs asymptote dev -secure")
	}
	requirePython(t)
	url, data := startDev(t, "-secure")
	script := `
import os, sys
import asymptote
spec = {"name": "tok", "method": "synthetic", "space": {"params": [1e6]}, "fixed": {"tokens": 2e9, "steps": 2},
        "resources": {"cpu": 0.25, "memory": "16MiB"}}
def fails(c, call, status, says):
    try:
        call(c)
    except asymptote.AsymptoteError as e:
        assert e.status == status and says in e.message, (e.status, e.message)
        return
    raise AssertionError("no error")
fails(asymptote.Client(token=""), lambda c: c.studies(), 401, "Bearer")
fails(asymptote.Client(token="nope"), lambda c: c.studies(), 401, "rotated or revoked")
viewer = asymptote.Client(token=open(os.environ["SECURE"] + "/viewer.http-token").read().strip())
viewer.studies()
fails(viewer, lambda c: c.submit(spec), 403, "viewer")
os.environ["ASYMPTOTE_TOKEN_FILE"] = os.environ["SECURE"] + "/submitter.http-token"
assert asymptote.Client().submit(spec)["added"] == 1
print("ok")
`
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", script)
	cmd.Env = append(os.Environ(), "ASYMPTOTE_URL="+url, "SECURE="+filepath.Join(data, "secure"), "PYTHONPATH=.", "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("python: %v\n%s", err, out)
	}
}

// TestInstall installs the client and the method SDK with pip, as a user
// outside the repository would, and imports them from elsewhere.
func TestInstall(t *testing.T) {
	requirePython(t)
	if out, err := exec.Command(python, "-m", "pip", "--version").CombinedOutput(); err != nil {
		t.Fatalf("%s has no pip (scripts/install-test-deps.sh installs python3-pip): %v\n%s", python, err, out)
	}
	for _, pkg := range []struct{ dir, module string }{{".", "asymptote"}, {"../../plugins/python", "asymptote_method"}} {
		target := t.TempDir()
		src := t.TempDir()
		// Build from a copy, so the checkout gets no build directory.
		if out, err := exec.Command("cp", "-r", pkg.dir+"/.", src).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v\n%s", pkg.dir, err, out)
		}
		cmd := exec.Command(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "--target", target, src)
		cmd.Env = append(os.Environ(), "PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_ROOT_USER_ACTION=ignore")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("pip install %s: %v\n%s", pkg.dir, err, out)
		}
		imp := exec.Command(python, "-c", "import "+pkg.module+", sys; print("+pkg.module+".__file__)")
		imp.Dir = t.TempDir()
		imp.Env = append(os.Environ(), "PYTHONPATH="+target, "PYTHONDONTWRITEBYTECODE=1")
		out, err := imp.CombinedOutput()
		if err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), target) {
			t.Fatalf("import %s after pip install: %v\n%s", pkg.module, err, out)
		}
	}
}
