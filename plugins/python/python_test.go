package python_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"asymptote.dev/asymptote/agent/methodmgr"
	"asymptote.dev/asymptote/plugins/methods/corpus"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/plugins/sdk/sdktest"
	"asymptote.dev/asymptote/sweep"
)

// python is the interpreter the plugins run on: Debian's, which sees the
// python3-* packages (a python3 earlier on PATH, from pyenv say, does not).
const python = "/usr/bin/python3"

// requirePython fails t unless Debian's python3 can import the packages
// the Python methods need. It never skips: a green run must mean the
// Python path was exercised. scripts/install-test-deps.sh installs them.
func requirePython(t testing.TB) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import grpc, google.protobuf, torch").CombinedOutput()
	if err != nil {
		t.Fatalf("%s cannot import grpc, protobuf and torch (%v): %s\n"+
			"install Debian's python3-grpcio, python3-protobuf and python3-torch: run scripts/install-test-deps.sh as root",
			python, err, strings.TrimSpace(string(out)))
	}
}

// requireKJV fails t unless the KJV text is installed.
func requireKJV(t testing.TB) *corpus.Text {
	t.Helper()
	text, err := corpus.LoadKJV(nil)
	if err != nil {
		t.Fatalf("%v (scripts/install-data.sh installs the data)", err)
	}
	return text
}

func hashFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// shortTempDir is a temporary directory with a short path, for sockets.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "py")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// testWriter sends log lines to the test's output.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newManager returns a manager whose only methods are the executables in
// dir named in allow, allowlisted by their current hashes, as an agent
// configured with --plugin-dir and --allow would run them.
func newManager(t testing.TB, dir string, allow ...string) *methodmgr.Manager {
	t.Helper()
	list := map[string]string{}
	for _, name := range allow {
		list[name] = hashFile(t, filepath.Join(dir, name))
	}
	var out io.Writer = io.Discard
	if testing.Verbose() {
		out = testWriter{t}
	}
	m, err := methodmgr.New(methodmgr.Config{
		PluginDir: dir,
		Allowlist: list,
		WorkDir:   filepath.Join(shortTempDir(t), "w"),
		KillGrace: 500 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func request(id string, seed int64, params map[string]any) *sdk.TrialRequest {
	return &sdk.TrialRequest{Study: "test", TrialID: id, Attempt: 1, Params: params, Seed: seed, Threads: 1}
}

// small is a torch_charlm trial of about a second on one core: 60 steps of
// 8 sequences of 32 characters, reported every 20 steps.
func small() map[string]any {
	return map[string]any{
		"width": 32.0, "depth": 1.0, "heads": 2.0, "context": 32.0, "batch": 8.0,
		"tokens": 8.0 * 32 * 60, "eval_tokens": 2000.0, "report_every": 20.0, "unique_tokens": 100000.0,
	}
}

// binDir is where the committed entry points live.
var binDir = filepath.Join(".", "bin")

// TestPythonUnit runs the SDK's and torch_charlm's Python unit tests.
func TestPythonUnit(t *testing.T) {
	t.Parallel()
	requirePython(t)
	requireKJV(t)
	cmd := exec.Command(python, "-m", "unittest", "discover", "-s", "tests", "-t", ".")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python unit tests: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestSplitMatchesGo checks that the Python corpus module splits the KJV
// text exactly as plugins/methods/corpus does: same vocabulary, and the
// same training and validation characters byte for byte.
func TestSplitMatchesGo(t *testing.T) {
	t.Parallel()
	requirePython(t)
	text := requireKJV(t)
	out, err := exec.Command(python, "-c", `
import hashlib
from torch_charlm import corpus
t = corpus.load_kjv()
print(t.vocab.hex(), hashlib.sha256(t.train).hexdigest(), hashlib.sha256(t.val).hexdigest(), t.train[:4096].hex())
`).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 4 {
		t.Fatalf("python printed %q", out)
	}
	sum := func(b []uint8) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	if want := hex.EncodeToString(text.Vocab); f[0] != want {
		t.Errorf("vocab: python %s, go %s", f[0], want)
	}
	if want := hex.EncodeToString(text.Train[:4096]); f[3] != want {
		t.Errorf("train prefix differs:\npython %.80s…\ngo     %.80s…", f[3], want)
	}
	if want := sum(text.Train); f[1] != want {
		t.Errorf("train split sha256: python %s, go %s", f[1], want)
	}
	if want := sum(text.Val); f[2] != want {
		t.Errorf("validation split sha256: python %s, go %s", f[2], want)
	}
}

// TestTorchCharlm runs torch_charlm through the method manager, as an
// agent runs an allowlisted external method, on one pooled process.
func TestTorchCharlm(t *testing.T) {
	t.Parallel()
	requirePython(t)
	requireKJV(t)
	m := newManager(t, binDir, "torch_charlm")
	ctx := t.Context()

	t.Run("info", func(t *testing.T) {
		info, err := m.Info(ctx, "torch_charlm")
		if err != nil {
			t.Fatal(err)
		}
		if info.Name != "torch_charlm" || info.Version == "" {
			t.Errorf("info = %+v", info)
		}
		names := map[string]sdk.ParamInfo{}
		for _, p := range info.Params {
			names[p.Name] = p
		}
		for _, want := range []string{"width", "depth", "heads", "context", "lr", "weight_decay", "dropout",
			"unique_tokens", "tokens", "epochs", "batch", "members", "eval_tokens"} {
			if _, ok := names[want]; !ok {
				t.Errorf("parameter %q missing", want)
			}
		}
		if d := names["width"].Default; d != 64.0 {
			t.Errorf("width default = %v, want 64", d)
		}
		if p := names["tokens"]; p.Default != nil || !p.Optional {
			t.Errorf("tokens = %+v, want optional without default", p)
		}
	})

	t.Run("example study", func(t *testing.T) {
		// examples/torch-charlm.yaml names only parameters the method
		// takes, with values it accepts (checked on its smallest trial,
		// cut short).
		spec, err := sweep.ParseFile(filepath.Join("..", "..", "examples", "torch-charlm.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		trials, err := spec.Expand()
		if err != nil {
			t.Fatal(err)
		}
		if spec.Method != "torch_charlm" || len(trials) == 0 {
			t.Fatalf("method %q, %d trials", spec.Method, len(trials))
		}
		p := trials[0].Params
		p["tokens"], p["eval_tokens"], p["width"] = 2048.0, 1000.0, 8.0
		if _, err := m.Run(ctx, methodmgr.Run{Method: "torch_charlm", Request: request("example", trials[0].Seed, p)}, nil); err != nil {
			t.Fatalf("params %v: %v", p, err)
		}
	})

	run := func(t *testing.T, id string, seed int64, params map[string]any) (*sdk.Result, []sdk.Metrics) {
		t.Helper()
		var reports []sdk.Metrics
		res, err := m.Run(ctx, methodmgr.Run{Method: "torch_charlm", Request: request(id, seed, params)},
			func(mt sdk.Metrics) error { reports = append(reports, mt); return nil })
		if err != nil {
			t.Fatal(err)
		}
		return res, reports
	}

	var first *sdk.Result
	t.Run("loss falls", func(t *testing.T) {
		res, reports := run(t, "a", 1, small())
		first = res
		if len(reports) != 3 {
			t.Fatalf("%d reports, want 3: %v", len(reports), reports)
		}
		v0, v1 := reports[0].Values["val_loss"], reports[len(reports)-1].Values["val_loss"]
		if !(v1 < v0-0.1) {
			t.Errorf("val_loss went from %v to %v, want a fall", v0, v1)
		}
		if tr := reports[len(reports)-1].Values["train_loss"]; !(tr < reports[0].Values["train_loss"]) {
			t.Errorf("train_loss did not fall: %v", reports)
		}
		if u := math.Log(73); !(v0 < u) {
			t.Errorf("val_loss %v not below the uniform %v", v0, u)
		}
		want := map[string]float64{"tokens": 15360, "unique_tokens": 100000, "epochs": 0.1536, "members": 1, "cuda": 0}
		for k, w := range want {
			if g := res.Metrics[k]; math.Abs(g-w) > 1e-9 {
				t.Errorf("%s = %v, want %v", k, g, w)
			}
		}
		if res.Metrics["val_loss"] != v1 {
			t.Errorf("final val_loss %v, last report %v", res.Metrics["val_loss"], v1)
		}
		for _, k := range []string{"params", "flops", "train_loss"} {
			if !(res.Metrics[k] > 0) {
				t.Errorf("%s = %v, want > 0", k, res.Metrics[k])
			}
		}
	})

	t.Run("reproducible", func(t *testing.T) {
		if first == nil {
			t.Skip("needs the first trial")
		}
		again, _ := run(t, "b", 1, small())
		if g, w := again.Metrics["val_loss"], first.Metrics["val_loss"]; g != w {
			t.Errorf("same seed: val_loss %v, then %v", w, g)
		}
		other, _ := run(t, "c", 2, small())
		if other.Metrics["val_loss"] == first.Metrics["val_loss"] {
			t.Errorf("seeds 1 and 2 gave the same val_loss %v", first.Metrics["val_loss"])
		}
	})

	t.Run("bad params", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			params map[string]any
			param  string
		}{
			{"width not a multiple of heads", map[string]any{"width": 30.0, "heads": 4.0}, "width"},
			{"out of range", map[string]any{"context": 65.0}, "context"},
			{"not an integer", map[string]any{"depth": 1.5}, "depth"},
			{"unknown", map[string]any{"widht": 3.0}, "widht"},
			{"tokens and epochs", map[string]any{"tokens": 1e5, "epochs": 2.0}, "epochs"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := m.Run(ctx, methodmgr.Run{Method: "torch_charlm", Request: request("bad", 1, tc.params)}, nil)
				var me *methodmgr.MethodError
				var pe *sdk.ParamError
				if !errors.As(err, &me) || me.Kind != methodmgr.InvalidParams || !errors.As(err, &pe) || pe.Param != tc.param {
					t.Fatalf("err = %v, want InvalidParams naming %q", err, tc.param)
				}
				if !strings.Contains(err.Error(), tc.param) {
					t.Errorf("message %q does not name %q", err, tc.param)
				}
			})
		}
	})

	t.Run("cancel", func(t *testing.T) {
		long := small()
		long["tokens"] = 1e8
		long["report_every"] = 5.0
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var once sync.Once
		var cancelled time.Time
		_, err := m.Run(cctx, methodmgr.Run{Method: "torch_charlm", Request: request("long", 1, long)},
			func(sdk.Metrics) error {
				once.Do(func() { cancelled = time.Now(); cancel() })
				return nil
			})
		took := time.Since(cancelled)
		var me *methodmgr.MethodError
		if !errors.As(err, &me) || me.Kind != methodmgr.Cancelled || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want Cancelled", err)
		}
		if took > time.Second {
			t.Errorf("stopped %v after cancellation, want within a second", took)
		}
		if errors.Is(err, methodmgr.ErrKilled) {
			t.Errorf("the process was killed (%v); the method should have returned", err)
		}
		// The process honoured the cancellation, so it serves the next trial.
		run(t, "after-cancel", 1, small())
	})

	t.Run("deadline", func(t *testing.T) {
		long := small()
		long["tokens"] = 1e8
		dctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := m.Run(dctx, methodmgr.Run{Method: "torch_charlm", Request: request("slow", 1, long)}, nil)
		var me *methodmgr.MethodError
		if !errors.As(err, &me) || me.Kind != methodmgr.Hung {
			t.Fatalf("err = %v, want Hung", err)
		}
		if took := time.Since(start); took > 2500*time.Millisecond {
			t.Errorf("returned after %v, want about 1.5s", took)
		}
	})

	t.Run("resume", func(t *testing.T) {
		// Through the plugin process, as the agent runs it: checkpoints
		// every 25 steps (between reports, which come every 20), and a
		// new attempt resumed from the first ends with the uninterrupted
		// losses (tests/test_torch_charlm.py checks the pieces).
		p := small()
		p["checkpoint_every"], p["dropout"] = 25.0, 0.1
		collect := func(reports *[]sdk.Metrics) func(sdk.Metrics) error {
			return func(mt sdk.Metrics) error { *reports = append(*reports, mt); return nil }
		}
		var reports []sdk.Metrics
		full, err := m.Run(ctx, methodmgr.Run{Method: "torch_charlm", Request: request("ck", 4, p).WithCheckpointRoot(shortTempDir(t))}, collect(&reports))
		if err != nil {
			t.Fatal(err)
		}
		var saved []sdk.Metrics
		for _, r := range reports {
			if r.Checkpoint != "" {
				saved = append(saved, r)
			}
		}
		if len(saved) != 2 || saved[0].Step != 25 || saved[1].Step != 50 {
			t.Fatalf("checkpoints at %v, want steps 25 and 50", saved)
		}
		req := request("ck", 4, p).WithCheckpointRoot(shortTempDir(t))
		req.Attempt = 2
		req.Resume = &sdk.Checkpoint{Step: saved[0].Step, Metrics: saved[0].Values, Dir: saved[0].Checkpoint}
		var after []sdk.Metrics
		res, err := m.Run(ctx, methodmgr.Run{Method: "torch_charlm", Request: req}, collect(&after))
		if err != nil {
			t.Fatalf("resume from step 25: %v", err)
		}
		if len(after) == 0 || after[0].Step != 40 {
			t.Fatalf("resumed reports %v, want the first at step 40", after)
		}
		const tol = 1e-6 // on the CPU they agree bit for bit; the tolerance leaves room for other builds
		for _, k := range []string{"val_loss", "train_loss", "tokens", "flops"} {
			if g, w := res.Metrics[k], full.Metrics[k]; math.Abs(g-w) > tol*math.Abs(w) {
				t.Errorf("%s = %v after resume, %v uninterrupted", k, g, w)
			}
		}
	})

	t.Run("graceful shutdown", func(t *testing.T) {
		start := time.Now()
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		// go-plugin waits 2s for a plugin to exit after Shutdown before
		// killing it; a prompt exit shows the controller works.
		if took := time.Since(start); took > 1500*time.Millisecond {
			t.Errorf("Close took %v: the plugin did not exit on Shutdown", took)
		}
	})
}

// TestConformance runs the Go SDK's conformance suite against
// torch_charlm, talking to it through go-plugin directly (over TCP, as a
// host without a socket directory would).
func TestConformance(t *testing.T) {
	t.Parallel()
	requirePython(t)
	requireKJV(t)
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.PluginSet(nil),
		Cmd:              exec.Command(filepath.Join(binDir, "torch_charlm")),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
	})
	t.Cleanup(pc.Kill)
	rpc, err := pc.Client()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	long := small()
	long["tokens"] = 1e8
	bad := small()
	bad["heads"] = 3.0
	sdktest.Conformance(t, raw.(*sdk.Client), sdktest.Cases{
		Long:    request("long", 1, long),
		Invalid: request("bad", 1, bad),
	})
}

// crashy is a Python method that misbehaves on request; the test writes it
// into a plugin directory with the SDK's path baked in.
const crashy = `#!/usr/bin/python3
import os, sys, time
sys.path.insert(0, %q)
from asymptote_method import Info, Method, ParamInfo, serve

class Crashy(Method):
    def info(self):
        return Info("crashy", "1", "misbehaves on request", [ParamInfo("mode", "string", "ok")])

    def run(self, request, report, cancelled):
        mode = request.string("mode", "ok")
        if mode == "exit":
            sys.stderr.write("crashy: something went badly wrong\n")
            sys.stderr.flush()
            os._exit(3)
        if mode == "raise":
            raise RuntimeError("crashy: a bug")
        if mode == "print":
            print("crashy: printed after the handshake")
        if mode == "ignore-cancel":
            time.sleep(30)
        report(1, {"x": 1.0})
        return {"pid": os.getpid()}

serve(Crashy())
`

// TestPythonFaults checks that the manager handles a misbehaving Python
// method as it handles a Go one.
func TestPythonFaults(t *testing.T) {
	t.Parallel()
	requirePython(t)
	sdkDir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := shortTempDir(t)
	if err := os.WriteFile(filepath.Join(dir, "crashy"), fmt.Appendf(nil, crashy, sdkDir), 0o755); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, dir, "crashy")
	ctx := t.Context()
	runMode := func(ctx context.Context, mode string) (*sdk.Result, error) {
		return m.Run(ctx, methodmgr.Run{Method: "crashy", Request: request(mode, 1, map[string]any{"mode": mode})}, nil)
	}

	res, err := runMode(ctx, "ok")
	if err != nil {
		t.Fatalf("ok: %v", err)
	}
	pid := res.Metrics["pid"]

	_, err = runMode(ctx, "exit")
	var me *methodmgr.MethodError
	if !errors.As(err, &me) || me.Kind != methodmgr.Crashed || !errors.Is(err, methodmgr.ErrExited) {
		t.Fatalf("exit: err = %v, want Crashed", err)
	}
	if !strings.Contains(me.Stderr, "something went badly wrong") {
		t.Errorf("exit: stderr tail %q lacks the method's last words", me.Stderr)
	}

	_, err = runMode(ctx, "raise")
	if !errors.As(err, &me) || me.Kind != methodmgr.Failed || !strings.Contains(err.Error(), "RuntimeError: crashy: a bug") {
		t.Fatalf("raise: err = %v, want Failed with the exception", err)
	}
	if !strings.Contains(me.Stderr, "Traceback") {
		t.Errorf("raise: stderr tail %q lacks the traceback", me.Stderr)
	}

	// A method that ignores cancellation is killed after KillGrace.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = runMode(cctx, "ignore-cancel")
	if !errors.As(err, &me) || me.Kind != methodmgr.Hung || !errors.Is(err, methodmgr.ErrKilled) {
		t.Fatalf("ignore-cancel: err = %v, want Hung after a kill", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("ignore-cancel: took %v", took)
	}

	// Prints after the handshake reach the stderr tail instead of vanishing.
	res, err = runMode(ctx, "print")
	if err != nil {
		t.Fatalf("print: %v", err)
	}
	if res.Metrics["pid"] == pid {
		t.Errorf("the crashed process (pid %v) was reused", pid)
	}

	// The allowlist holds for scripts as for binaries: a script changed
	// after it was allowlisted is refused, and so is one not listed.
	script := filepath.Join(dir, "crashy")
	good := hashFile(t, script)
	src, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script+".new", append(src, "# changed\n"...), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(script+".new", script); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		allow map[string]string
		want  error
	}{
		{map[string]string{"crashy": good}, methodmgr.ErrHashMismatch},
		{nil, methodmgr.ErrUnknownMethod},
	} {
		m, err := methodmgr.New(methodmgr.Config{PluginDir: dir, Allowlist: tc.allow, WorkDir: filepath.Join(shortTempDir(t), "w")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.Run(ctx, methodmgr.Run{Method: "crashy", Request: request("ok", 1, nil)}, nil)
		if !errors.As(err, &me) || me.Kind != methodmgr.Refused || !errors.Is(err, tc.want) {
			t.Errorf("allowlist %v: err = %v, want Refused with %v", tc.allow, err, tc.want)
		}
		_ = m.Close()
	}
}

// TestRunByHand checks that the entry point refuses to run without the
// agent's handshake cookie, with a hint.
func TestRunByHand(t *testing.T) {
	t.Parallel()
	requirePython(t)
	cmd := exec.Command(filepath.Join(binDir, "torch_charlm"))
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not meant to be run directly") {
		t.Fatalf("err = %v, output %q; want a failure with a hint", err, out)
	}
}

// BenchmarkTorchCharlm measures torch_charlm's training throughput
// (characters per second, one member, evaluation excluded) at several
// sizes and thread budgets, next to charlm's BenchmarkTrain. Each case runs
// torch_charlm/bench.py once: its timing excludes starting Python and
// importing torch.
//
//	go test -run '^$' -bench . ./plugins/python ./plugins/methods/charlm
func BenchmarkTorchCharlm(b *testing.B) {
	requirePython(b)
	requireKJV(b)
	for _, bc := range []struct{ width, depth, threads int }{
		{32, 1, 1}, {64, 2, 1}, {64, 2, 2}, {128, 2, 1}, {128, 2, 2}, {256, 2, 1},
	} {
		b.Run(fmt.Sprintf("width=%d/depth=%d/threads=%d", bc.width, bc.depth, bc.threads), func(b *testing.B) {
			for b.Loop() {
				out, err := exec.Command(python, "-m", "torch_charlm.bench", "--width", fmt.Sprint(bc.width),
					"--depth", fmt.Sprint(bc.depth), "--threads", fmt.Sprint(bc.threads)).Output()
				if err != nil {
					b.Fatalf("bench.py: %v", err)
				}
				var rate, params float64
				var device string
				if _, err := fmt.Sscanf(string(out), "tokens/s=%g params=%g device=%s", &rate, &params, &device); err != nil {
					b.Fatalf("bench.py printed %q: %v", out, err)
				}
				b.ReportMetric(rate, "tokens/s")
				b.ReportMetric(params, "params")
			}
		})
	}
}
