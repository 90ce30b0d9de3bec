package slurm_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/slurm"
	"asymptote.dev/asymptote/sweep"
)

// realSLURM is a one-node SLURM cluster on loopback: munged, slurmctld and
// slurmd, started as root from a configuration in a temporary directory,
// each a child process of the test.
type realSLURM struct {
	dir  string
	cmds *slurm.Commands
}

// startSLURM starts the cluster and stops it at cleanup, after cancelling
// every job left. It fails, naming what is missing, where it cannot run.
func startSLURM(t testing.TB) *realSLURM {
	t.Helper()
	var missing []string
	for _, b := range []string{"munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "srun", "sinfo"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the real-SLURM test needs %v on PATH: run scripts/install-test-deps.sh as root (Debian's slurm-wlm and munge)", missing)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the real-SLURM test runs munged, slurmctld and slurmd as root: run it as root (CI does)")
	}
	// Short, private paths: munge's socket path has a length limit.
	dir, err := os.MkdirTemp("", "asy-slurm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"state", "spool", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	key := make([]byte, 1024)
	if f, err := os.Open("/dev/urandom"); err != nil {
		t.Fatal(err)
	} else {
		_, _ = f.Read(key)
		f.Close()
	}
	if err := os.WriteFile(filepath.Join(dir, "munge.key"), key, 0o400); err != nil {
		t.Fatal(err)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ = strings.Cut(host, ".")
	conf := filepath.Join(dir, "slurm.conf")
	ctldPort, dPort := freePort(t), freePort(t)
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(slurmConf, dir, ctldPort, dPort, host)), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"SLURM_CONF=" + conf}
	r := &realSLURM{dir: dir, cmds: &slurm.Commands{Env: env, Timeout: 20 * time.Second}}
	daemon(t, dir, "munged", "--foreground", "--force", "--socket="+filepath.Join(dir, "munge.sock"), "--key-file="+filepath.Join(dir, "munge.key"),
		"--pid-file="+filepath.Join(dir, "munged.pid"), "--log-file="+filepath.Join(dir, "log", "munged.log"), "--seed-file="+filepath.Join(dir, "munge.seed"))
	waitFile(t, filepath.Join(dir, "munge.sock"))
	daemon(t, dir, "slurmctld", "-D", "-f", conf)
	daemon(t, dir, "slurmd", "-D", "-f", conf)
	t.Setenv("SLURM_CONF", conf) // for the jobs' own srun, through sbatch's environment
	clustertest.WaitFor(t, 30*time.Second, func() error {
		out, err := exec.Command("sinfo", "--noheader", "--format=%T").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "idle") {
			return fmt.Errorf("sinfo: %s %v (logs in %s/log)", out, err, dir)
		}
		return nil
	})
	t.Cleanup(func() {
		// Cancel what is left and let it end before slurmd goes, so no
		// step is orphaned.
		_ = exec.Command("scancel", "--name="+slurm.JobName(testQueue())).Run()
		clustertest.WaitFor(t, 30*time.Second, func() error {
			jobs, err := r.cmds.Jobs(context.Background(), slurm.JobName(testQueue()))
			if err != nil {
				return err
			}
			if live := liveJobs(jobs); len(live) > 0 {
				return fmt.Errorf("jobs still in SLURM: %v", live)
			}
			return nil
		})
	})
	return r
}

// slurmConf is a one-node cluster: 2 CPUs and 2 GiB, whose jobs' processes
// are tracked without cgroups (none in a container), killed 5 s after
// SIGTERM, and forgotten 5 s after they end.
const slurmConf = `ClusterName=asytest
SlurmctldHost=%[4]s(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket=%[1]s/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=%[1]s/state
SlurmdSpoolDir=%[1]s/spool
SlurmctldPidFile=%[1]s/slurmctld.pid
SlurmdPidFile=%[1]s/slurmd.pid
SlurmctldLogFile=%[1]s/log/slurmctld.log
SlurmdLogFile=%[1]s/log/slurmd.log
SlurmctldPort=%[2]d
SlurmdPort=%[3]d
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
KillWait=5
MinJobAge=5
ReturnToService=2
InactiveLimit=0
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName=%[4]s NodeAddr=127.0.0.1 CPUs=2 RealMemory=2048 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
`

// daemon starts a server in the foreground as a child and kills it, by
// its own process ID, at cleanup.
func daemon(t testing.TB, dir, name string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, "log", name+".out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
}

func waitFile(t testing.TB, path string) {
	t.Helper()
	clustertest.WaitFor(t, 10*time.Second, func() error {
		_, err := os.Stat(path)
		return err
	})
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func liveJobs(jobs []slurm.Job) []string {
	var live []string
	for _, j := range jobs {
		if j.State != slurm.JobEnding || j.SLURMState == "COMPLETING" {
			live = append(live, j.ID+" "+j.SLURMState)
		}
	}
	return live
}

// testQueue holds one agent per allocation with 1 CPU, running two
// half-CPU trials at once, at most two allocations (the node's 2 CPUs).
func testQueue() slurm.Queue {
	return slurm.Queue{
		Name: "test", TimeLimit: 10 * time.Minute, CPUs: 1, Memory: 512 << 20,
		AgentsPerAllocation: 1, TrialsPerAgent: 2, MaxAllocations: 2,
		IdleRelease: 3 * time.Second, StartTimeout: time.Minute,
	}
}

// buildBinary builds asymptote for the jobs to run.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "asymptote")
	out, err := exec.Command("go", "build", "-o", bin, "asymptote.dev/asymptote/cmd/asymptote").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// harness is a real SLURM, an asymptote cluster with one coordinator, and
// a provisioner for q running until the test ends.
type harness struct {
	t      testing.TB
	slurm  *realSLURM
	c      *clustertest.Cluster
	client *bus.Client

	mu        sync.Mutex
	submitted []string // job IDs, in order
}

func newHarness(t testing.TB, q slurm.Queue) *harness {
	t.Helper()
	r := startSLURM(t)
	bin := buildBinary(t)
	c := clustertest.New(t)
	c.StartCoordinator("c1", nil)
	client := c.Client()
	h := &harness{t: t, slurm: r, c: c, client: client}
	p, err := slurm.New(slurm.Config{
		Queue:    q,
		Agent:    slurm.Agent{Binary: bin, NATSURL: c.Node.NATSURL, Output: filepath.Join(r.dir, "log", "job-%j.out")},
		SLURM:    recording{r.cmds, h},
		Status:   func(ctx context.Context) (*api.StatusReply, error) { return client.Status(ctx, "") },
		Interval: 500 * time.Millisecond,
		Logger:   clustertest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	// Stop the provisioner before SLURM stops (cleanups run last first).
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// recording notes every job the provisioner submits.
type recording struct {
	*slurm.Commands
	h *harness
}

func (r recording) Submit(ctx context.Context, script string) (string, error) {
	id, err := r.Commands.Submit(ctx, script)
	if err == nil {
		r.h.mu.Lock()
		r.h.submitted = append(r.h.submitted, id)
		r.h.mu.Unlock()
	}
	return id, err
}

func (h *harness) jobs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.submitted)
}

// spec is a study of n synthetic trials of half a CPU, each taking sleep.
// SLURM signals every process of an ending allocation, method processes
// included, and one that dies before its agent has stopped it counts as
// a crash: the retries keep such an attempt from failing its trial.
func spec(name string, n int, sleep time.Duration) string {
	return fmt.Sprintf(`name: %s
method: synthetic
objective: {metric: val_loss, direction: minimize}
space:
  params: {range: [1e6, 1e9], count: %d, scale: log}
fixed:
  tokens: 2e10
  unique_tokens: 2e10
  steps: 4
  sleep: %g
resources: {cpu: 0.5, memory: 64MiB}
retries: 2
timeout: 5m
`, name, n, sleep.Seconds())
}

// run submits a study, waits for it to finish and checks that every trial
// succeeded with exactly one result, from an agent of one of the
// provisioner's allocations; it returns the trials.
func (h *harness) run(name string, n int, sleep time.Duration, during func()) []api.Trial {
	h.t.Helper()
	ctx := context.Background()
	if _, err := h.client.Submit(ctx, api.SubmitRequest{SpecFile: name + ".yaml", Spec: spec(name, n, sleep)}); err != nil {
		h.t.Fatalf("submit %s: %v", name, err)
	}
	if during != nil {
		during()
	}
	st := h.c.WaitDone(h.client, name, 5*time.Minute)
	if st.Counts[string(sweep.Succeeded)] != n {
		var why []string
		for _, f := range st.Failures {
			for _, a := range f.Attempts {
				why = append(why, fmt.Sprintf("%s attempt %d on %s: %s %s", f.ID, a.N, a.Node, a.State, a.Error))
			}
		}
		h.t.Fatalf("%s: %v, want all %d succeeded; failed attempts:\n%s", name, st.Counts, n, strings.Join(why, "\n"))
	}
	res, err := h.client.Results(ctx, name)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(res.Trials) != n {
		h.t.Fatalf("%s: %d trials recorded, want %d", name, len(res.Trials), n)
	}
	for _, tr := range res.Trials {
		succeeded := 0
		for _, a := range tr.Attempts {
			if a.State == sweep.AttemptSucceeded {
				succeeded++
			}
		}
		if tr.State != sweep.Succeeded || tr.Result == nil || succeeded != 1 || !strings.HasPrefix(tr.Result.Node, "slurm-test-") {
			h.t.Errorf("%s: trial %s: state %s, %d succeeded attempts, result from %v; want one result from a SLURM agent", name, tr.ID, tr.State, succeeded, resultNode(tr))
		}
	}
	return res.Trials
}

func resultNode(tr api.Trial) string {
	if tr.Result == nil {
		return "nowhere"
	}
	return tr.Result.Node
}

// waitReleased waits until SLURM holds nothing of the queue: every
// allocation was released once the work ran out.
func (h *harness) waitReleased() {
	h.t.Helper()
	clustertest.WaitFor(h.t, time.Minute, func() error {
		jobs, err := h.slurm.cmds.Jobs(context.Background(), slurm.JobName(testQueue()))
		if err != nil {
			return err
		}
		if live := liveJobs(jobs); len(live) > 0 {
			return fmt.Errorf("allocations still held after the work ran out: %v", live)
		}
		return nil
	})
}

// allocationOf is the job ID in an agent's node ID.
func allocationOf(nodeID string) string {
	rest := strings.TrimPrefix(nodeID, "slurm-test-")
	id, _, _ := strings.Cut(rest, "-")
	return id
}

// TestRealSLURM runs studies through a real one-node SLURM: a study larger
// than one allocation, one whose allocation is cancelled mid-study, and
// one whose allocation hits its time limit. Each ends with every trial
// recorded once and nothing left in SLURM.
func TestRealSLURM(t *testing.T) {
	h := newHarness(t, testQueue())

	t.Run("a study larger than one allocation", func(t *testing.T) {
		h.t = t
		h.waitReleased()
		before := len(h.jobs())
		trials := h.run("larger", 12, time.Second, nil)
		h.waitReleased()
		used := h.jobs()[before:]
		perAllocation := map[string]int{}
		for _, tr := range trials {
			perAllocation[allocationOf(tr.Result.Node)]++
		}
		if len(used) == 0 || len(used) > testQueue().MaxAllocations {
			t.Errorf("submitted %v, want 1 to %d allocations", used, testQueue().MaxAllocations)
		}
		for id, n := range perAllocation {
			if !slices.Contains(used, id) || n < 2 {
				t.Errorf("allocation %s ran %d trials; want several, in an allocation the provisioner submitted (%v)", id, n, used)
			}
		}
		t.Logf("12 trials of 1s: allocations %v, trials per allocation %v", used, perAllocation)
	})

	t.Run("an allocation cancelled mid-study", func(t *testing.T) {
		h.t = t
		h.waitReleased()
		before := len(h.jobs())
		var cancelled string
		trials := h.run("cancelled", 8, 3*time.Second, func() {
			// Cancel the first allocation once its agent runs a trial.
			cancelled = h.firstBusyAllocation(t)
			if err := h.slurm.cmds.Cancel(context.Background(), cancelled); err != nil {
				t.Fatal(err)
			}
		})
		h.waitReleased()
		cut := attemptsCut(trials, cancelled)
		t.Logf("allocation %s cancelled; attempts cut short: %v", cancelled, cut)
		if len(cut) == 0 {
			t.Errorf("no attempt of the cancelled allocation %s was cut short; the cancel came too late to test anything", cancelled)
		}
		if used := h.jobs()[before:]; len(used) < 2 {
			t.Errorf("submitted %v; want the cancelled allocation replaced", used)
		}
	})

	t.Run("an allocation hitting its time limit", func(t *testing.T) {
		h.t = t
		h.waitReleased()
		before := len(h.jobs())
		// SLURM counts limits in minutes: the first allocation's limit is
		// cut to one minute under a study of three rounds of 45 s trials
		// (12 trials, 4 slots), so whenever in the minute after it SLURM
		// enforces the limit, the allocation is busy.
		var limited, ended string
		trials := h.run("limited", 12, 45*time.Second, func() {
			limited = h.firstBusyAllocation(t)
			out, err := exec.Command("scontrol", "update", "JobId="+limited, "TimeLimit=1").CombinedOutput()
			if err != nil {
				t.Fatalf("scontrol update: %v: %s", err, out)
			}
			clustertest.WaitFor(t, 3*time.Minute, func() error {
				jobs, err := h.slurm.cmds.Jobs(context.Background(), slurm.JobName(testQueue()))
				if err != nil {
					return err
				}
				for _, j := range jobs {
					if j.ID == limited && j.State == slurm.JobEnding && j.SLURMState != "COMPLETING" {
						ended = j.SLURMState
						return nil
					}
				}
				return fmt.Errorf("allocation %s has not ended", limited)
			})
		})
		h.waitReleased()
		if ended != "TIMEOUT" {
			t.Errorf("allocation %s ended %s, want TIMEOUT", limited, ended)
		}
		cut := attemptsCut(trials, limited)
		if len(cut) == 0 {
			t.Errorf("no attempt of allocation %s was cut short by its limit; the study did not outlast it", limited)
		}
		if used := h.jobs()[before:]; len(used) < 2 {
			t.Errorf("submitted %v; want the allocation that hit its limit replaced", used)
		}
		t.Logf("allocation %s hit its limit; attempts cut short: %v", limited, cut)
	})
}

// firstBusyAllocation waits until an agent of an allocation runs a trial
// and returns the allocation's job ID.
func (h *harness) firstBusyAllocation(t testing.TB) string {
	t.Helper()
	var id string
	clustertest.WaitFor(t, 2*time.Minute, func() error {
		st, err := h.client.Status(context.Background(), "")
		if err != nil {
			return err
		}
		for _, n := range st.Nodes {
			if n.State == api.NodeAlive && n.Running > 0 && strings.HasPrefix(n.ID, "slurm-test-") {
				id = allocationOf(n.ID)
				return nil
			}
		}
		return errors.New("no SLURM agent runs a trial yet")
	})
	return id
}

// attemptsCut counts, by state, the attempts on allocation id that did
// not succeed (preempted when the agent drained in time, stale when it
// was killed first).
func attemptsCut(trials []api.Trial, id string) map[sweep.AttemptState]int {
	cut := map[sweep.AttemptState]int{}
	for _, tr := range trials {
		for _, a := range tr.Attempts {
			if allocationOf(a.Node) == id && a.State != sweep.AttemptSucceeded {
				cut[a.State]++
			}
		}
	}
	return cut
}

// BenchmarkSLURM measures the provisioner's overhead on the real one-node
// SLURM: how long a trial waits before an agent of a new allocation
// heartbeats (s/first-heartbeat: from the submit's reply to the agent's
// first appearance in status), and how many allocations a 200-trial study
// uses against the fewest that could run it at the queue's cap
// (allocations: the most any iteration used; minimum). Run it with -benchtime=1x; each iteration
// starts from no allocation held.
func BenchmarkSLURM(b *testing.B) {
	h := newHarness(b, testQueue())
	ctx := context.Background()
	// Study names are unique across the runs the benchmark framework
	// makes (b.N = 1, then more): a resubmitted name would add nothing.
	studies := 0
	b.Run("first-heartbeat", func(b *testing.B) {
		h.t = b
		var total time.Duration
		for range b.N {
			h.waitReleased()
			studies++
			name := fmt.Sprintf("first-%d", studies)
			if _, err := h.client.Submit(ctx, api.SubmitRequest{SpecFile: name + ".yaml", Spec: spec(name, 1, 0)}); err != nil {
				b.Fatal(err)
			}
			waited := time.Now()
			clustertest.WaitFor(b, 2*time.Minute, func() error {
				st, err := h.client.Status(ctx, "")
				if err != nil {
					return err
				}
				for _, n := range st.Nodes {
					if n.State == api.NodeAlive && strings.HasPrefix(n.ID, "slurm-test-") && n.Joined.After(waited) {
						return nil
					}
				}
				return errors.New("no new SLURM agent yet")
			})
			total += time.Since(waited)
			h.c.WaitDone(h.client, name, time.Minute)
		}
		b.ReportMetric(total.Seconds()/float64(b.N), "s/first-heartbeat")
	})
	b.Run("200-trial-study", func(b *testing.B) {
		h.t = b
		most := 0
		for range b.N {
			h.waitReleased()
			before := len(h.jobs())
			studies++
			h.run(fmt.Sprintf("two-hundred-%d", studies), 200, 0, nil)
			most = max(most, len(h.jobs())-before)
		}
		q := testQueue()
		b.ReportMetric(float64(most), "allocations") // the most any iteration used
		b.ReportMetric(float64(min((200+q.Slots()-1)/q.Slots(), q.MaxAllocations)), "minimum")
	})
}
