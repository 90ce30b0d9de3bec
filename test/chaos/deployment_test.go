package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/security"
	"asymptote.dev/asymptote/internal/store"
)

// topology says how many of each process a deployment runs.
type topology struct {
	natsServers  int
	etcdMembers  int
	coordinators int
	agents       int
	// agentCPUs is what each agent offers (-cpus).
	agentCPUs float64
	// secure runs the deployment as docs/security.md says: `secure init`,
	// NATS with TLS and the generated users, etcd with TLS, client
	// certificates and the RBAC script, and each process as its own
	// identity.
	secure bool
}

// Timings every deployment uses: short, so faults resolve within seconds.
const (
	leaseTTL       = 2 * time.Second
	heartbeatGrace = 3 * time.Second
	agentHeartbeat = 250 * time.Millisecond
)

// deployment is a whole asymptote installation made of OS processes: NATS
// and etcd servers, coordinators and agents, all on loopback.
type deployment struct {
	t      testing.TB
	dir    string
	topo   topology
	nats   *natsCluster
	etcd   *etcdCluster
	coords []*proc
	agents []*proc
	// cli reads etcd directly, for the invariants and the leader.
	cli *clientv3.Client
	nc  *nats.Conn
	// bundle is the secure deployment's `secure init` (nil: plain).
	bundle *security.Bundle
}

// newDeployment starts the servers, then the coordinators and agents.
func newDeployment(t testing.TB, dir string, topo topology) *deployment {
	t.Helper()
	d := &deployment{t: t, dir: dir, topo: topo}
	if topo.secure {
		agents := make([]string, topo.agents)
		for i := range agents {
			agents[i] = fmt.Sprintf("agent%d", i)
		}
		b, err := security.Init(security.Plan{Dir: filepath.Join(dir, "secure"), Agents: agents})
		if err != nil {
			t.Fatal(err)
		}
		d.bundle = b
	}
	d.nats = startNATS(t, dir, topo.natsServers, d.bundle)
	d.etcd = startEtcd(t, dir, topo.etcdMembers, d.bundle)
	d.cli = d.etcd.client(t)
	if d.bundle != nil {
		rbac := exec.Command("sh", filepath.Join(d.bundle.Dir, security.EtcdScriptFile))
		rbac.Env = append(os.Environ(), "ETCD_ENDPOINTS="+d.etcd.Endpoints())
		if out, err := rbac.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", security.EtcdScriptFile, err, out)
		}
	}
	nc, err := nats.Connect(d.nats.URL(), append(d.nats.opts(t), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))...)
	if err != nil {
		t.Fatalf("connect NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	d.nc = nc
	for i := range topo.coordinators {
		id := fmt.Sprintf("coord%d", i)
		p := newProc(t, dir, id, []string{binPath, "coordinator",
			"-id", id, "-nats-url", d.nats.URL(), "-etcd-endpoints", d.etcd.Endpoints(),
			"-stream-replicas", fmt.Sprint(topo.natsServers),
			"-lease-ttl", leaseTTL.String(), "-heartbeat-grace", heartbeatGrace.String(),
		}, d.identity("coordinator")...)
		p.start()
		d.coords = append(d.coords, p)
	}
	for i := range topo.agents {
		d.agents = append(d.agents, d.newAgent(fmt.Sprintf("agent%d", i)))
		d.agents[i].start()
	}
	return d
}

// newAgent returns a stopped agent process with its own node ID and data
// directory, the same on every start.
func (d *deployment) newAgent(node string, env ...string) *proc {
	return newProc(d.t, d.dir, node, []string{binPath, "agent",
		"-node-id", node, "-nats-url", d.nats.URL(), "-data-dir", filepath.Join(d.dir, node),
		"-cpus", fmt.Sprint(d.topo.agentCPUs), "-memory", "4GiB", "-heartbeat", agentHeartbeat.String(),
		"-test-methods", // the method-fault tests run the faulty method
	}, append(d.identity("agent-"+node), env...)...)
}

// identity returns the environment of the secure deployment's identity
// name, as its .env file gives it (none on a plain deployment); the
// command line's flags still win.
func (d *deployment) identity(name string) []string {
	if d.bundle == nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(d.bundle.Dir, security.EnvFile(name)))
	if err != nil {
		d.t.Fatalf("identity %s: %v", name, err)
	}
	var env []string
	for line := range strings.Lines(string(b)) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			env = append(env, line)
		}
	}
	return env
}

// coordinator returns the coordinator process named id.
func (d *deployment) coordinator(id string) *proc {
	for _, p := range d.coords {
		if p.name == id {
			return p
		}
	}
	return nil
}

// leader returns the ID of the coordinator that holds the election key,
// or "" when none does. A killed leader's key lingers until its lease
// expires.
func (d *deployment) leader() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := d.cli.Get(ctx, store.ElectionPrefix+"/", clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
	if err != nil || len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// submit submits a spec, retrying while no leader answers.
func (d *deployment) submit(name, spec string) api.SubmitReply {
	d.t.Helper()
	c := bus.NewClient(d.nc, 10*time.Second)
	deadline := time.Now().Add(90 * time.Second)
	for {
		r, err := c.Submit(context.Background(), api.SubmitRequest{SpecFile: name + ".yaml", Spec: spec})
		if err == nil {
			return *r
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("submit %s: %v\n%s", name, err, d.coords[0].tail(3000))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// study reads a study's record from etcd.
func (d *deployment) study(name string) (*api.Study, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := d.cli.Get(ctx, store.StudyKey(name))
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("no study %s", name)
	}
	var s api.Study
	if err := json.Unmarshal(resp.Kvs[0].Value, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// done reports whether the study's record in etcd says it finished.
func (d *deployment) done(name string) bool {
	s, err := d.study(name)
	return err == nil && s.State == api.StudyDone
}

// waitDone waits for the study to finish, failing with its progress and
// the leader's log when it does not.
func (d *deployment) waitDone(name string, timeout time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for !d.done(name) {
		if time.Now().After(deadline) {
			counts := map[string]int{}
			_ = store.New(d.cli).StudyTrials(context.Background(), name, func(v store.Versioned[api.Trial]) error {
				counts[string(v.Value.State)]++
				return nil
			})
			leader := d.leader()
			var tail string
			if p := d.coordinator(leader); p != nil {
				tail = p.tail(4000)
			}
			d.t.Fatalf("study %s not done after %s: trials %v, leader %q\n%s", name, timeout, counts, leader, tail)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// trials reads every trial record of a study from etcd.
func (d *deployment) trials(name string) []api.Trial {
	d.t.Helper()
	var out []api.Trial
	err := store.New(d.cli).StudyTrials(context.Background(), name, func(v store.Versioned[api.Trial]) error {
		out = append(out, v.Value)
		return nil
	})
	if err != nil {
		d.t.Fatalf("read trials of %s: %v", name, err)
	}
	return out
}

// ensureUp starts every process that is not running and continues every
// paused one: the healed state after faults.
func (d *deployment) ensureUp() {
	for _, s := range d.nats.servers {
		if !s.running() {
			s.start()
		}
		s.resume()
	}
	for _, m := range d.etcd.members {
		if !m.running() {
			m.start()
		}
		m.resume()
	}
	for _, p := range append(append([]*proc{}, d.coords...), d.agents...) {
		if !p.running() {
			p.start()
		}
		p.resume()
	}
}
