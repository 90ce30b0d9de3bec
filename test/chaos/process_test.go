package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is one OS process of the deployment (a server, a coordinator or an
// agent). It runs in its own process group, writes its output to a log
// file in the work directory, and can be killed, paused and started again
// with the same command line, as an operator or a crash would.
type proc struct {
	t    testing.TB
	name string
	argv []string
	env  []string
	log  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	paused bool
}

// newProc returns a stopped process; start runs it. Cleanup kills it.
func newProc(t testing.TB, dir, name string, argv []string, env ...string) *proc {
	p := &proc{t: t, name: name, argv: argv, env: env, log: filepath.Join(dir, "logs", name+".log")}
	if err := os.MkdirAll(filepath.Dir(p.log), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	return p
}

// start runs the process; it fails the test if it is already running.
func (p *proc) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
			// No fault stops a process without clearing it: it died by
			// itself, which no fault may make a process do.
			p.t.Fatalf("start %s: it exited by itself (pid %d, %v); its log: %s", p.name, p.cmd.Process.Pid, p.cmd.ProcessState, p.log)
		default:
		}
		p.t.Fatalf("start %s: already running (pid %d)", p.name, p.cmd.Process.Pid)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	defer f.Close()
	fmt.Fprintf(f, "==== %s start: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.argv, " "))
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.cmd, p.done, p.paused = cmd, done, false
}

// running reports whether the process is started and has not exited.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// pid returns the process id, or 0 when not running.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// kill sends SIGKILL to the process group and waits for the exit. A
// process that is not running is left alone.
func (p *proc) kill() { p.signalAndWait(syscall.SIGKILL, 0) }

// stop asks the process to shut down (SIGTERM) and kills it if it has not
// exited within grace.
func (p *proc) stop(grace time.Duration) { p.signalAndWait(syscall.SIGTERM, grace) }

// interrupt sends SIGINT, as Ctrl-C would, and waits as stop does.
func (p *proc) interrupt(grace time.Duration) { p.signalAndWait(syscall.SIGINT, grace) }

func (p *proc) signalAndWait(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done, paused := p.cmd, p.done, p.paused
	p.cmd, p.paused = nil, false
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	pg := -cmd.Process.Pid
	_ = syscall.Kill(pg, sig)
	if paused {
		_ = syscall.Kill(pg, syscall.SIGCONT)
	}
	if sig != syscall.SIGKILL {
		select {
		case <-done:
			return
		case <-time.After(grace):
			p.t.Logf("%s did not exit within %s of %s; killing it", p.name, grace, sig)
			_ = syscall.Kill(pg, syscall.SIGKILL)
		}
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, cmd.Process.Pid)
	}
}

// pause stops the process with SIGSTOP, as a partition or a frozen VM
// would: it neither sends nor answers anything until resume.
func (p *proc) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !p.paused {
		_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGSTOP)
		p.paused = true
	}
}

// resume continues a paused process.
func (p *proc) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.paused {
		_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGCONT)
		p.paused = false
	}
}

// tail returns the last n bytes of the process's log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// freePorts returns n distinct free loopback ports.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// waitPort waits until something accepts TCP connections on port.
func waitPort(port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on 127.0.0.1:%d after %s: %w", port, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leftovers lists live processes whose command line mentions any of
// marks (the test's binary, its work directory): what a test must not
// leave behind. Zombies are not counted.
func leftovers(marks ...string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
		}
		for _, m := range marks {
			if m != "" && bytes.Contains(cmdline, []byte(m)) {
				out = append(out, fmt.Sprintf("pid %d: %s", pid, strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")))
				break
			}
		}
	}
	return out
}

// pidAlive reports whether pid names a live (not zombie) process.
func pidAlive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return !(i > 0 && i+2 < len(stat) && stat[i+2] == 'Z')
}

// checkNoLeftovers registers, as the test's last cleanup, a check that no
// process mentioning marks survives the test. Plugins die of Pdeathsig a
// moment after their agent, so the check waits a little before failing.
func checkNoLeftovers(t testing.TB, marks ...string) {
	t.Cleanup(func() {
		var left []string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if left = leftovers(marks...); len(left) == 0 || time.Now().After(deadline) {
				break
			}
		}
		if len(left) > 0 {
			t.Errorf("processes left behind:\n%s", strings.Join(left, "\n"))
			for _, l := range left {
				var pid int
				if _, err := fmt.Sscanf(l, "pid %d:", &pid); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	})
}

// workDir returns a fresh directory for a test's logs and data. It is
// removed after a passing test and kept (and named) after a failing one.
func workDir(t testing.TB) string {
	t.Helper()
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	// Short: etcd and the method manager put unix sockets under it.
	dir, err := os.MkdirTemp("", "chaos-"+name[:min(len(name), 20)]+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || *keepFlag {
			t.Logf("work directory kept: %s", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Logf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// orphanPlugins lists live method plugin processes of bin (`bin method
// NAME`) whose parent is not one of agents: plugins that outlived the agent
// that started them.
func orphanPlugins(bin string, agents []int) []string {
	parent := map[int]bool{}
	for _, p := range agents {
		parent[p] = true
	}
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.HasPrefix(cmdline, []byte(bin+"\x00method\x00")) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 || fields[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		if !parent[ppid] {
			out = append(out, fmt.Sprintf("plugin pid %d (parent %d): %s", pid, ppid, strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")))
		}
	}
	return out
}

// waitExit waits up to timeout for the process to exit on its own (an
// agent asked to drain) and reports whether it did; once it has, start
// runs it again.
func (p *proc) waitExit(timeout time.Duration) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return true
	}
	select {
	case <-done:
	case <-time.After(timeout):
		return false
	}
	p.mu.Lock()
	if p.cmd == cmd {
		p.cmd, p.paused = nil, false
	}
	p.mu.Unlock()
	return true
}
