package chaos

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/store"
)

// chaosSpec is a study of 300 synthetic trials that each take half a
// second to a second and a half, reporting five steps, so faults strike
// mid-trial.
func chaosSpec(name string) string {
	return fmt.Sprintf(`name: %s
method: synthetic
objective: {metric: val_loss, direction: minimize}
space:
  params: {range: [1e6, 1e9], count: 10, scale: log}
  weight_decay: [0.01, 0.03, 0.1, 0.3, 1.0]
  sleep: [0.5, 1.5]
fixed:
  unique_tokens: 2e10
  epochs: 1
  noise: 0.02
  steps: %d
derived:
  tokens: unique_tokens * epochs
seeds: [0, 1, 2]
resources: {cpu: 0.5, memory: 64MiB}
retries: 3
timeout: 1m
`, name, chaosSteps)
}

// chaosSteps is how many steps each chaos trial reports.
const chaosSteps = 5

// fault is one kind of fault: apply strikes and heals, blocking until the
// deployment is whole again, and returns what it did.
type fault struct {
	name string
	// class is the part of the deployment the fault touches; faults of
	// different classes may strike at the same time.
	class string
	// cluster marks faults that need three NATS servers or etcd members.
	cluster bool
	apply   func(c *chaos) string
}

// faults is every kind of fault the suite injects.
var faults = []fault{
	{name: "kill-agent", class: "agents", apply: func(c *chaos) string {
		i := c.rng.IntN(len(c.d.agents))
		p := c.d.agents[i]
		p.kill()
		down := c.dur(300*time.Millisecond, 2*time.Second)
		time.Sleep(down)
		p.start()
		return fmt.Sprintf("SIGKILL %s, restarted after %s", p.name, down)
	}},
	{name: "pause-agent", class: "agents", apply: func(c *chaos) string {
		i := c.rng.IntN(len(c.d.agents))
		p := c.d.agents[i]
		// Longer than the grace period: the leader declares the agent
		// dead, and its results come back late.
		down := heartbeatGrace + c.dur(time.Second, 3*time.Second)
		p.pause()
		time.Sleep(down)
		p.resume()
		return fmt.Sprintf("SIGSTOP %s for %s", p.name, down)
	}},
	{name: "kill-leader", class: "coordinators", apply: func(c *chaos) string {
		id := c.d.leader()
		p := c.d.coordinator(id)
		if p == nil || !p.running() {
			return "no leader to kill"
		}
		start := time.Now()
		p.kill()
		took, ok, etcdFaulted := c.waitNewLeader(id, 30*time.Second)
		if etcdFaulted {
			// No leader can be elected without etcd: that time says
			// nothing about failover.
			p.start()
			return fmt.Sprintf("SIGKILL leader %s while etcd was faulted; new leader after %s", id, took.Round(time.Millisecond))
		}
		c.recordFailover(took)
		p.start()
		if !ok {
			return fmt.Sprintf("SIGKILL leader %s; NO new leader within %s", id, took)
		}
		return fmt.Sprintf("SIGKILL leader %s; new leader %s after %s", id, c.d.leader(), time.Since(start).Round(time.Millisecond))
	}},
	{name: "kill-all-coordinators", class: "coordinators", apply: func(c *chaos) string {
		for _, p := range c.d.coords {
			p.kill()
		}
		down := c.dur(2*time.Second, 6*time.Second)
		time.Sleep(down)
		for _, p := range c.d.coords {
			p.start()
		}
		return fmt.Sprintf("SIGKILL every coordinator, restarted after %s", down)
	}},
	{name: "restart-nats", class: "nats", apply: func(c *chaos) string {
		i := c.rng.IntN(len(c.d.nats.servers))
		down := c.dur(200*time.Millisecond, time.Second)
		c.d.nats.restart(c.t, i, down)
		return fmt.Sprintf("restart %s (down %s)", c.d.nats.servers[i].name, down)
	}},
	{name: "kill-nats-member", class: "nats", cluster: true, apply: func(c *chaos) string {
		i := c.rng.IntN(len(c.d.nats.servers))
		down := c.dur(3*time.Second, 8*time.Second)
		c.d.nats.restart(c.t, i, down)
		return fmt.Sprintf("SIGKILL %s for %s", c.d.nats.servers[i].name, down)
	}},
	{name: "restart-etcd-member", class: "etcd", apply: func(c *chaos) string {
		i := c.rng.IntN(len(c.d.etcd.members))
		if l := c.d.etcd.leader(c.d.cli); len(c.d.etcd.members) > 1 && l == i {
			i = (i + 1) % len(c.d.etcd.members)
		}
		down := c.dur(time.Second, 4*time.Second)
		c.d.etcd.restart(c.t, i, down)
		return fmt.Sprintf("SIGKILL %s (not the leader) for %s", c.d.etcd.members[i].name, down)
	}},
	{name: "kill-etcd-leader", class: "etcd", cluster: true, apply: func(c *chaos) string {
		i := c.d.etcd.leader(c.d.cli)
		if i < 0 {
			return "no etcd leader to kill"
		}
		down := c.dur(time.Second, 4*time.Second)
		c.d.etcd.restart(c.t, i, down)
		return fmt.Sprintf("SIGKILL etcd leader %s for %s", c.d.etcd.members[i].name, down)
	}},
	{name: "etcd-quorum-loss", class: "etcd", cluster: true, apply: func(c *chaos) string {
		// Two of three members down: etcd serves nothing, the leader's
		// lease cannot be kept alive, and every write waits.
		i := c.rng.IntN(len(c.d.etcd.members))
		a, b := c.d.etcd.members[i], c.d.etcd.members[(i+1)%len(c.d.etcd.members)]
		a.kill()
		b.kill()
		down := c.dur(2*time.Second, 6*time.Second)
		time.Sleep(down)
		a.start()
		b.start()
		for _, m := range []*etcdMember{a, b} {
			if err := waitPort(m.client, 20*time.Second); err != nil {
				c.t.Errorf("%s did not come back: %v", m.name, err)
			}
		}
		return fmt.Sprintf("SIGKILL %s and %s (quorum lost) for %s", a.name, b.name, down)
	}},
	{name: "replay-events", class: "bus", apply: func(c *chaos) string {
		return c.replay()
	}},
	{name: "replay-dispatches", class: "bus", apply: func(c *chaos) string {
		return c.replayDispatches()
	}},
}

// chaos drives faults into a deployment from a seeded random source.
type chaos struct {
	t   testing.TB
	d   *deployment
	rng *rand.Rand

	// parent is the chaos a fault's own source was split from; it holds
	// the shared records.
	parent *chaos

	mu       sync.Mutex
	captured [][]byte // event payloads seen on the bus, for replays
	// dispatches are dispatch requests seen on the bus, for replays.
	dispatches []*nats.Msg
	// busy holds the classes of the faults in flight.
	busy      map[string]bool
	injected  map[string]int
	log       []string
	failovers []time.Duration
	// spans are when each fault was in force, for the recording gaps.
	spans []faultSpan
}

// faultSpan is one fault's time in force.
type faultSpan struct {
	name       string
	start, end time.Time
}

func newChaos(t testing.TB, d *deployment, seed uint64) *chaos {
	c := &chaos{t: t, d: d, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), injected: map[string]int{}}
	// Capture events as agents publish them (a core subscription sees
	// what JetStream stores), to replay them later.
	sub, err := d.nc.Subscribe(bus.SubjectEvents+".>", func(m *nats.Msg) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.captured) < 5000 {
			c.captured = append(c.captured, slices.Clone(m.Data))
		}
	})
	if err != nil {
		t.Fatalf("capture events: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	dsub, err := d.nc.Subscribe(bus.SubjectNode+".*.dispatch", func(m *nats.Msg) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.dispatches) < 5000 {
			c.dispatches = append(c.dispatches, &nats.Msg{Subject: m.Subject, Data: slices.Clone(m.Data)})
		}
	})
	if err != nil {
		t.Fatalf("capture dispatches: %v", err)
	}
	t.Cleanup(func() { _ = dsub.Unsubscribe() })
	return c
}

// replayDispatches sends captured dispatches to their agents again, as a
// confused or deposed leader might: an agent may run a superseded attempt
// once more, but nothing it reports may change a recorded trial.
func (c *chaos) replayDispatches() string {
	p := c
	if c.parent != nil {
		p = c.parent
	}
	p.mu.Lock()
	var pick []*nats.Msg
	for range min(10, len(p.dispatches)) {
		pick = append(pick, p.dispatches[c.rng.IntN(len(p.dispatches))])
	}
	p.mu.Unlock()
	accepted := 0
	for _, m := range pick {
		reply, err := c.d.nc.Request(m.Subject, m.Data, 2*time.Second)
		if err != nil {
			continue
		}
		var r bus.DispatchReply
		if bus.Decode(reply.Data, &r) == nil && r.Accepted {
			accepted++
		}
	}
	return fmt.Sprintf("replayed %d captured dispatches, %d accepted", len(pick), accepted)
}

// dur draws a duration in [lo, hi).
func (c *chaos) dur(lo, hi time.Duration) time.Duration {
	return (lo + time.Duration(c.rng.Int64N(int64(hi-lo)))).Round(time.Millisecond)
}

// waitNewLeader waits until a coordinator other than old holds the
// election, and returns how long that took and whether an etcd fault
// struck meanwhile.
func (c *chaos) waitNewLeader(old string, timeout time.Duration) (took time.Duration, ok, etcdFaulted bool) {
	start := time.Now()
	for time.Since(start) < timeout {
		etcdFaulted = etcdFaulted || c.faulting("etcd")
		if l := c.d.leader(); l != "" && l != old {
			return time.Since(start), true, etcdFaulted
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start), false, etcdFaulted
}

// faulting reports whether a fault of class is in flight.
func (c *chaos) faulting(class string) bool {
	if c.parent != nil {
		c = c.parent
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.busy[class]
}

func (c *chaos) recordFailover(d time.Duration) {
	if c.parent != nil {
		c = c.parent
	}
	c.mu.Lock()
	c.failovers = append(c.failovers, d)
	c.mu.Unlock()
}

// replay publishes captured events again: some with their original
// message IDs (which JetStream deduplicates) and some with fresh ones, so
// they reach the coordinator as replays of events it already recorded.
func (c *chaos) replay() string {
	p := c
	if c.parent != nil {
		p = c.parent
	}
	p.mu.Lock()
	var pick [][]byte
	for range min(25, len(p.captured)) {
		pick = append(pick, p.captured[c.rng.IntN(len(p.captured))])
	}
	p.mu.Unlock()
	js, err := jetstream.New(c.d.nc)
	if err != nil {
		return "replay: " + err.Error()
	}
	sent := 0
	for i, data := range pick {
		var ev bus.Event
		if err := bus.Decode(data, &ev); err != nil {
			continue
		}
		id := ev.MsgID()
		if i%2 == 1 {
			id = fmt.Sprintf("replay-%d-%d", c.rng.Uint64(), i)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := js.Publish(ctx, bus.EventSubject(ev.Study, ev.Trial, ev.Node), data, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			sent++
		}
	}
	return fmt.Sprintf("replayed %d of %d captured events", sent, len(pick))
}

// run injects faults at random moments for window or until the study is
// done, then heals everything. Every kind strikes once, in a seeded order,
// before kinds are drawn at random; up to two faults of different classes
// (an agent killed while the coordinators are down) overlap.
func (c *chaos) run(study string, window time.Duration, kinds []fault) {
	start := time.Now()
	busy := map[string]bool{}
	c.mu.Lock()
	c.busy = busy
	c.mu.Unlock()
	var wg sync.WaitGroup
	order := c.rng.Perm(len(kinds))
	// Every kind strikes once whatever the window, so a run where some
	// kind never fired cannot pass; after that, until the window ends or
	// the study is done.
	for n := 0; n < len(order) || (time.Since(start) < window && !c.d.done(study)); n++ {
		time.Sleep(c.dur(300*time.Millisecond, 2*time.Second))
		var f fault
		if n < len(order) {
			f = kinds[order[n]]
		} else {
			f = kinds[c.rng.IntN(len(kinds))]
		}
		c.mu.Lock()
		for busy[f.class] || len(busy) >= 2 {
			c.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
			c.mu.Lock()
		}
		busy[f.class] = true
		c.mu.Unlock()
		// Draw the fault's randomness here, in schedule order, so a seed
		// repeats the same faults even when they overlap.
		sub := &chaos{t: c.t, d: c.d, rng: rand.New(rand.NewPCG(c.rng.Uint64(), c.rng.Uint64())), parent: c}
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := time.Since(start)
			began := time.Now()
			what := f.apply(sub)
			c.mu.Lock()
			c.spans = append(c.spans, faultSpan{name: f.name, start: began, end: time.Now()})
			delete(busy, f.class)
			c.injected[f.name]++
			c.log = append(c.log, fmt.Sprintf("%6.1fs %-22s %s", at.Seconds(), f.name, what))
			c.mu.Unlock()
			c.t.Logf("fault %s at %.1fs: %s", f.name, at.Seconds(), what)
		}()
	}
	wg.Wait()
	c.d.ensureUp()
}

// total returns how many faults were injected.
func (c *chaos) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.injected {
		n += v
	}
	return n
}

// chooseSeed returns -chaos.seed or a seed from the clock, and makes sure a
// failing test says how to repeat it.
func chooseSeed(t testing.TB) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("chaos seed %d", seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FAILED with chaos seed %d; repeat with: go test ./test/chaos -run '^%s$' -chaos.seed=%d -v", seed, t.Name(), seed)
		}
	})
	return seed
}

// chaosResult is what one chaos round did.
type chaosResult struct {
	trials, faults, violations int
	stats                      studyStats
	failovers                  []time.Duration
	took                       time.Duration
}

// runChaos runs one study under faults on a fresh deployment and checks
// the invariants.
func runChaos(t testing.TB, seed uint64, topo topology, window time.Duration) chaosResult {
	start := time.Now()
	dir := workDir(t)
	d := newDeployment(t, dir, topo)
	const study = "chaos"
	spec := chaosSpec(study)
	ref := referenceAsync(spec)

	c := newChaos(t, d, seed)
	kinds := faults
	if topo.natsServers < 3 || topo.etcdMembers < 3 {
		kinds = nil
		for _, f := range faults {
			if !f.cluster {
				kinds = append(kinds, f)
			}
		}
	}
	r := d.submit(study, spec)
	t.Logf("submitted %d trials", r.Total)
	c.run(study, window, kinds)
	d.waitDone(study, 4*time.Minute)
	want, err := ref()
	if err != nil {
		t.Fatalf("reference run: %v", err)
	}
	trials := d.trials(study)
	v := append(checkTrials(trials, want), checkHistory(d.nc, study, trials, chaosSteps)...)
	// Agents were killed and restarted on the same data directories: no
	// plugin of a dead agent may still run.
	var agentPIDs []int
	for _, p := range d.agents {
		agentPIDs = append(agentPIDs, p.pid())
	}
	for _, o := range orphanPlugins(binPath, agentPIDs) {
		v = append(v, "orphaned "+o)
	}
	for _, f := range kinds {
		if c.injected[f.name] == 0 {
			v = append(v, "fault "+f.name+" never struck")
		}
	}
	reportViolations(t, v)
	if gaps := recordingGaps(trials, c.spans); len(gaps) > 0 {
		t.Logf("longest recording gap per fault kind (no result recorded for this long while it alone was in force, or just after):\n%s", formatGaps(gaps))
	}
	st := stats(trials)
	t.Logf("faults injected (%d):\n%s", c.total(), strings.Join(c.log, "\n"))
	t.Logf("stale attempts by reason: %v", st.staleWhy)
	t.Logf("%d trials, %d attempts, %d stale, %d late results; %d faults (%v); failovers %v; %d invariant violations; %s",
		st.trials, st.attempts, st.stale, st.late, c.total(), c.injected, c.failovers, len(v), time.Since(start).Round(time.Millisecond))
	return chaosResult{trials: st.trials, faults: c.total(), violations: len(v), stats: st, failovers: c.failovers, took: time.Since(start)}
}

// TestChaosCluster runs a study on three-node NATS and etcd clusters with
// two coordinators and four agents while every kind of fault strikes.
func TestChaosCluster(t *testing.T) {
	requireServers(t)
	checkNoLeftovers(t, binPath)
	seed := chooseSeed(t)
	runChaos(t, seed, topology{natsServers: 3, etcdMembers: 3, coordinators: 2, agents: 4, agentCPUs: 2}, 40*time.Second)
}

// TestChaosSingleServer runs the same on one NATS server and one etcd
// member, as a small installation would: restarts instead of lost
// members.
func TestChaosSingleServer(t *testing.T) {
	requireServers(t)
	checkNoLeftovers(t, binPath)
	seed := chooseSeed(t)
	runChaos(t, seed, topology{natsServers: 1, etcdMembers: 1, coordinators: 2, agents: 3, agentCPUs: 2}, 20*time.Second)
}

// TestChaosSecure runs the chaos pass on a deployment secured as
// docs/security.md says: three NATS servers with TLS for clients and
// routes and the generated users, etcd with client certificates and the
// RBAC script, and every coordinator and agent as its own identity. The
// faults and invariants are the cluster pass's; the leader's and agents'
// permissions must be enough for everything they do under fault.
func TestChaosSecure(t *testing.T) {
	requireServers(t)
	checkNoLeftovers(t, binPath)
	seed := chooseSeed(t)
	runChaos(t, seed, topology{natsServers: 3, etcdMembers: 3, coordinators: 2, agents: 3, agentCPUs: 2, secure: true}, 20*time.Second)
}

// TestSoak runs chaos rounds on the clusters, one fresh deployment and
// seed after another, for -chaos.soak, and reports the totals.
func TestSoak(t *testing.T) {
	if *soakFlag == 0 {
		t.Skip("the soak runs only when asked: go test ./test/chaos -run Soak -chaos.soak=20m -v -timeout 30m")
	}
	requireServers(t)
	seed := chooseSeed(t)
	end := time.Now().Add(*soakFlag)
	var total chaosResult
	rounds := 0
	for round := uint64(0); time.Now().Before(end); round++ {
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
			checkNoLeftovers(t, binPath)
			t.Logf("round seed %d", seed+round)
			r := runChaos(t, seed+round, topology{natsServers: 3, etcdMembers: 3, coordinators: 2, agents: 4, agentCPUs: 2}, 60*time.Second)
			total.trials += r.trials
			total.faults += r.faults
			total.violations += r.violations
			total.stats.stale += r.stats.stale
			total.stats.late += r.stats.late
			total.failovers = append(total.failovers, r.failovers...)
		})
		rounds++
		if t.Failed() {
			break
		}
	}
	t.Logf("SOAK: %d rounds, %d trials, %d faults injected, %d stale attempts, %d late results, %d invariant violations; failovers %v",
		rounds, total.trials, total.faults, total.stats.stale, total.stats.late, total.violations, total.failovers)
}

// recordingGaps returns, for each fault kind, the longest time during
// which no result was recorded, among the gaps between consecutive
// recordings that overlap one of its spans (or the 2 s after it, while
// the repair shows) and no span of another kind: what a user watching
// results sees of that fault alone. Faults overlap (up to two at once),
// so a kind may have no gap of its own.
func recordingGaps(trials []api.Trial, spans []faultSpan) map[string]time.Duration {
	var at []time.Time
	for _, t := range trials {
		if t.Result != nil {
			at = append(at, t.Result.Recorded)
		}
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	gaps := map[string]time.Duration{}
	for i := 1; i < len(at); i++ {
		lo, hi := at[i-1], at[i]
		kinds := map[string]bool{}
		for _, s := range spans {
			if lo.Before(s.end.Add(2*time.Second)) && hi.After(s.start) {
				kinds[s.name] = true
			}
		}
		if len(kinds) == 1 {
			for k := range kinds {
				gaps[k] = max(gaps[k], hi.Sub(lo))
			}
		}
	}
	return gaps
}

func formatGaps(gaps map[string]time.Duration) string {
	names := slices.Sorted(maps.Keys(gaps))
	lines := make([]string, len(names))
	for i, n := range names {
		lines[i] = fmt.Sprintf("  %-22s %s", n, gaps[n].Round(10*time.Millisecond))
	}
	return strings.Join(lines, "\n")
}

// TestEtcdLeaderElectionKeepsTheTerm kills the etcd leader three times
// while a study runs under one coordinator. The client then stops keeping
// the coordinator's lease alive, although the server still holds it; the
// term used to end, and 7-10 s passed without a result recorded. The term
// must survive (the election key keeps its create revision), and the test
// reports the longest time without a recorded result.
func TestEtcdLeaderElectionKeepsTheTerm(t *testing.T) {
	requireServers(t)
	checkNoLeftovers(t, binPath)
	d := newDeployment(t, workDir(t), topology{natsServers: 1, etcdMembers: 3, coordinators: 1, agents: 2, agentCPUs: 2})
	const study = "elect"
	d.submit(study, chaosSpec(study))
	term := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := d.cli.Get(ctx, store.ElectionPrefix+"/", append(clientv3.WithFirstCreate(), clientv3.WithPrefix())...)
		if err != nil || len(resp.Kvs) == 0 {
			t.Fatalf("read the leader key: %v", err)
		}
		return resp.Kvs[0].CreateRevision
	}
	clustertestWait(t, 20*time.Second, func() bool { return d.leader() != "" })
	before := term()
	var spans []faultSpan
	for range 3 {
		time.Sleep(2 * time.Second)
		i := d.etcd.leader(d.cli)
		if i < 0 {
			t.Fatal("no etcd leader")
		}
		s := faultSpan{name: "kill-etcd-leader", start: time.Now()}
		d.etcd.restart(t, i, 1500*time.Millisecond)
		s.end = time.Now()
		spans = append(spans, s)
	}
	d.waitDone(study, 4*time.Minute)
	if after := term(); after != before {
		t.Errorf("the leader's term ended over an etcd leader election: its key's create revision went from %d to %d", before, after)
	}
	trials := d.trials(study)
	t.Logf("longest gap without a recorded result around an etcd leader kill: %s", recordingGaps(trials, spans)["kill-etcd-leader"].Round(10*time.Millisecond))
}

// clustertestWait polls cond every 100 ms until it holds or timeout passes.
func clustertestWait(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
