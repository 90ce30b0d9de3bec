package command

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/bus"
)

// runCLIFor runs the command line like runCLI but gives up after d: a
// command that should have refused its flags at once runs instead.
func runCLIFor(t *testing.T, d time.Duration, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	code := Main(ctx, args, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	return code, errb.String()
}

// TestAgentRefusesBadFlags checks that bad resource and allowlist values
// stop `agent` and `dev` before anything starts, naming the flag, instead
// of quietly offering the whole host or a default.
func TestAgentRefusesBadFlags(t *testing.T) {
	clearAsymptoteEnv(t)
	notHex := strings.Repeat("zz", 32)
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		want      []string
		agentOnly bool // dev names its agents itself
	}{
		{name: "negative cpus", args: []string{"-cpus", "-4"}, want: []string{"-cpus -4", "positive"}},
		{name: "zero cpus", args: []string{"-cpus", "0"}, want: []string{"-cpus 0", "leave -cpus out"}},
		{name: "NaN cpus", args: []string{"-cpus", "NaN"}, want: []string{"-cpus NaN"}},
		{name: "infinite cpus", args: []string{"-cpus", "+Inf"}, want: []string{"-cpus +Inf"}},
		{name: "cpus not a number", args: []string{"-cpus", "four"}, want: []string{`"four"`, "-cpus"}},
		{name: "cpus from the environment", env: map[string]string{"ASYMPTOTE_CPUS": "-4"}, want: []string{"-cpus -4"}},
		{name: "memory that does not parse", args: []string{"-memory", "16 gigs"}, want: []string{"-memory", `"16 gigs"`, "2GiB"}},
		{name: "memory with junk after the unit", args: []string{"-memory", "16GiBs"}, want: []string{"-memory", `"16GiBs"`}},
		{name: "zero memory", args: []string{"-memory", "0"}, want: []string{"-memory", "positive"}},
		{name: "negative memory", args: []string{"-memory", "-1GiB"}, want: []string{"-memory", `"-1GiB"`}},
		{name: "NaN memory", args: []string{"-memory", "NaN"}, want: []string{"-memory", `"NaN"`}},
		{name: "zero heartbeat", args: []string{"-heartbeat", "0s"}, want: []string{"-heartbeat 0s", "positive"}},
		{name: "NaN queue", args: []string{"-queue", "NaN"}, want: []string{"-queue NaN"}},
		{name: "bad node ID", args: []string{"-node-id", "gpu.1"}, want: []string{`-node-id "gpu.1"`}, agentOnly: true},
		{name: "allow hash not hex", args: []string{"-allow", "m=" + notHex}, want: []string{"-allow", "hex"}},
		{name: "allow hash too short", args: []string{"-allow", "m=abc123"}, want: []string{"-allow", "64 hex digits"}},
		{name: "allow without a hash", args: []string{"-allow", "m"}, want: []string{"-allow", "NAME=SHA256"}},
	}
	for _, tt := range tests {
		for _, cmd := range []string{"agent", "dev"} {
			if tt.agentOnly && cmd != "agent" {
				continue
			}
			t.Run(cmd+"/"+tt.name, func(t *testing.T) {
				for k, v := range tt.env {
					t.Setenv(k, v)
				}
				data := filepath.Join(t.TempDir(), "data")
				args := append([]string{cmd, "-data-dir", data}, tt.args...)
				if cmd == "agent" {
					args = append(args, "-nats-url", "nats://127.0.0.1:1")
				} else {
					args = append(args, "-nats-port", "-1")
				}
				code, errOut := runCLIFor(t, 10*time.Second, args...)
				if code != 2 {
					t.Errorf("asymptote %s: exit %d, want 2\nstderr: %s", strings.Join(args[1:], " "), code, errOut)
				}
				for _, w := range tt.want {
					if !strings.Contains(errOut, w) {
						t.Errorf("stderr lacks %q:\n%s", w, errOut)
					}
				}
				if _, err := os.Stat(data); !os.IsNotExist(err) {
					t.Errorf("refused flags must not create state (stat %s: %v)", data, err)
				}
			})
		}
	}
}

// TestOffer checks how agents split a host: each of n agents offers a
// 1/n share of the CPUs and memory unless -cpus or -memory say what each
// offers, and the GPUs are dealt out so no two agents offer the same one.
func TestOffer(t *testing.T) {
	gpus := func(idx ...int) []bus.GPU {
		var out []bus.GPU
		for _, i := range idx {
			out = append(out, bus.GPU{Index: i})
		}
		return out
	}
	host := bus.Resources{CPU: 8, Memory: 16 << 30, GPUs: gpus(0, 1, 2, 3)}
	tests := []struct {
		name  string
		args  []string
		share hostShare
		want  bus.Resources
	}{
		{name: "whole host", want: host},
		{name: "whole host, cpus given", args: []string{"-cpus", "2.5"}, want: bus.Resources{CPU: 2.5, Memory: 16 << 30, GPUs: gpus(0, 1, 2, 3)}},
		{name: "first of two", share: hostShare{0, 2}, want: bus.Resources{CPU: 4, Memory: 8 << 30, GPUs: gpus(0, 2)}},
		{name: "second of two", share: hostShare{1, 2}, want: bus.Resources{CPU: 4, Memory: 8 << 30, GPUs: gpus(1, 3)}},
		{name: "two, cpus given", args: []string{"-cpus", "3"}, share: hostShare{1, 2}, want: bus.Resources{CPU: 3, Memory: 8 << 30, GPUs: gpus(1, 3)}},
		{name: "two, memory given", args: []string{"-memory", "1GiB"}, share: hostShare{0, 2}, want: bus.Resources{CPU: 4, Memory: 1 << 30, GPUs: gpus(0, 2)}},
		{name: "more agents than GPUs", share: hostShare{4, 5}, want: bus.Resources{CPU: 1.6, Memory: (16 << 30) / 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o agentOptions
			o.nodeID = "n"
			fs := newFlagSet(Env{Stderr: os.Stderr}, "test", "")
			o.register(fs)
			if _, err := parseFlags(Env{}, fs, tt.args); err != nil {
				t.Fatal(err)
			}
			if err := o.validate(); err != nil {
				t.Fatal(err)
			}
			if got := o.offer(host, tt.share); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("offer = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer a running command may write while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDevSplitsTheHost runs `asymptote dev -agents 2` and reads from the
// leader what each agent offers: half the host's CPUs and memory, except
// what -cpus or -memory give each.
func TestDevSplitsTheHost(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs embedded servers")
	}
	clearAsymptoteEnv(t)
	host, err := fingerprintHost(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		cpu     float64
		memory  int64
		devices int // GPUs each agent offers, of the host's
	}{
		{name: "shares", cpu: host.CPU / 2, memory: host.Memory / 2},
		{name: "cpus given", args: []string{"-cpus", "0.5"}, cpu: 0.5, memory: host.Memory / 2},
		{name: "memory given", args: []string{"-memory", "64MiB"}, cpu: host.CPU / 2, memory: 64 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freePort(t)
			ctx, cancel := context.WithCancel(t.Context())
			var stderr syncBuffer
			done := make(chan int, 1)
			args := append([]string{"dev", "-agents", "2", "-data-dir", t.TempDir(), "-nats-port", fmt.Sprint(port)}, tt.args...)
			go func() {
				done <- Main(ctx, args, Env{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &stderr})
			}()
			t.Cleanup(func() {
				cancel()
				<-done
			})
			cf := clientFlags{natsURL: fmt.Sprintf("nats://127.0.0.1:%d", port), timeout: 5 * time.Second}
			deadline := time.Now().Add(60 * time.Second)
			for {
				if time.Now().After(deadline) {
					t.Fatalf("the leader did not see two agents\nstderr:\n%s", stderr.String())
				}
				select {
				case code := <-done:
					done <- code
					t.Fatalf("dev exited %d\nstderr:\n%s", code, stderr.String())
				case <-time.After(200 * time.Millisecond):
				}
				c, nc, err := cf.connect(Env{})
				if err != nil {
					continue
				}
				r, err := c.Status(ctx, "")
				nc.Close()
				if err != nil || len(r.Nodes) < 2 {
					continue
				}
				for _, n := range r.Nodes {
					if n.CPU != tt.cpu || n.Memory != tt.memory {
						t.Errorf("agent %s offers cpu %g, memory %d; want cpu %g, memory %d (host: cpu %g, memory %d)",
							n.ID, n.CPU, n.Memory, tt.cpu, tt.memory, host.CPU, host.Memory)
					}
					if want := (len(host.GPUs) + 1) / 2; len(n.GPUs) > want {
						t.Errorf("agent %s offers %d of the host's %d GPUs, want at most %d", n.ID, len(n.GPUs), len(host.GPUs), want)
					}
				}
				return
			}
		})
	}
}

// TestAgentsOnOneHost starts an agent with the default -node-id and
// -data-dir, then a second one: it must refuse to share the first's data
// directory, naming -node-id, while a third with its own -node-id gets a
// data directory of its own.
func TestAgentsOnOneHost(t *testing.T) {
	if testing.Short() {
		t.Skip("runs agents")
	}
	clearAsymptoteEnv(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the default data directories go
	// Nothing listens on port 1: the agents run without a cluster,
	// retrying, which is all this test needs of them.
	start := func(args ...string) (stop func() int) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan int, 1)
		var stderr syncBuffer
		go func() {
			done <- Main(ctx, append([]string{"agent", "-nats-url", "nats://127.0.0.1:1"}, args...), Env{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &stderr})
		}()
		var once sync.Once
		code := 0
		stop = func() int {
			once.Do(func() { cancel(); code = <-done })
			return code
		}
		t.Cleanup(func() { stop() })
		return stop
	}
	waitFor := func(path string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := os.Stat(path); err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never appeared", path)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	first := filepath.Join(tmp, "asymptote-agent-"+defaultNodeID())
	stopFirst := start()
	waitFor(filepath.Join(first, "methods", "pids"))

	code, errOut := runCLIFor(t, 10*time.Second, "agent", "-nats-url", "nats://127.0.0.1:1")
	if code == 0 || !strings.Contains(errOut, first) || !strings.Contains(errOut, "in use by another agent") || !strings.Contains(errOut, "-node-id") {
		t.Errorf("second agent with the defaults: exit %d, stderr %q; want a refusal naming %s and -node-id", code, errOut, first)
	}

	start("-node-id", "other")
	waitFor(filepath.Join(tmp, "asymptote-agent-other", "methods", "pids"))
	if code := stopFirst(); code != 0 {
		t.Errorf("first agent exited %d", code)
	}
	// Its lock went with it: an agent with the defaults runs again, until
	// its context ends.
	if code, errOut := runCLIFor(t, 3*time.Second, "agent", "-nats-url", "nats://127.0.0.1:1"); code != 0 {
		t.Errorf("agent restarted on %s: exit %d, stderr %q", first, code, errOut)
	}
}
