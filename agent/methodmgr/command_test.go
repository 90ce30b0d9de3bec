package methodmgr

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/procgroup"
	"asymptote.dev/asymptote/plugins/methods/command"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/sweep"
)

// TestCommandInPluginGroup runs the command method as the agent does, in a
// plugin process that leads its own group: the program shares the group,
// so a timeout stops the program and what it started (here a program that
// ignores SIGTERM and a child of it), and the plugin survives for the next
// trial.
func TestCommandInPluginGroup(t *testing.T) {
	t.Parallel()
	m := newManager(t, nil)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	script := filepath.Join(dir, "hang.sh")
	body := "#!/bin/sh\ntrap '' TERM\nsleep 300 &\necho $! > " + pidFile + "\necho '{\"step\": 1, \"val_loss\": 3}' >&3\nwait\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	sh, _ := exec.LookPath("sh")
	allow := map[string]string{}
	for _, p := range []string{script, sh} {
		real, _ := filepath.EvalSymlinks(p)
		sum, err := command.Hash(real)
		if err != nil {
			t.Fatal(err)
		}
		allow[real] = sum
	}
	b, _ := json.Marshal(allow)
	env := []string{command.AllowEnv + "=" + string(b)}
	run := func(ctx context.Context, prog string) (*sdk.Result, error) {
		cfg, _ := json.Marshal(sweep.MethodConfig{Command: &sweep.Command{Program: prog, Workdir: dir, Grace: 100 * time.Millisecond}})
		req := request("t1", nil)
		req.Config = cfg
		return m.Run(ctx, Run{Method: "command", Request: req, Env: env}, func(sdk.Metrics) error { return nil })
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err := run(ctx, "hang.sh")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want a timeout", err)
	}
	var pid int
	for range 100 {
		b, _ := os.ReadFile(pidFile)
		if pid, _ = strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pid == 0 {
		t.Fatal("the program never started its child")
	}
	// Gone or a zombie (its parent, the killed script, cannot reap it).
	if _, alive := procgroup.Of(pid); alive {
		t.Errorf("the program's child %d outlived the timeout", pid)
	}
	// The plugin process is still good for another trial.
	ok := filepath.Join(dir, "ok.sh")
	_ = os.WriteFile(ok, []byte("#!/bin/sh\necho '{\"val_loss\": 1.25}' >&3\n"), 0o755)
	realOK, _ := filepath.EvalSymlinks(ok)
	allow[realOK], _ = command.Hash(realOK)
	b, _ = json.Marshal(allow)
	env[0] = command.AllowEnv + "=" + string(b)
	res, err := run(t.Context(), "ok.sh")
	if err != nil {
		t.Fatal(err)
	}
	if res.Metrics["val_loss"] != 1.25 {
		t.Errorf("result %v", res.Metrics)
	}
}
