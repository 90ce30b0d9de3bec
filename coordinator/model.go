package coordinator

import (
	"container/heap"
	"slices"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/resource"
	"asymptote.dev/asymptote/strategy"
	"asymptote.dev/asymptote/sweep"
)

// trial is the leader's cached view of one trial record.
type trial struct {
	rec   api.Trial
	rev   int64
	study *study
	// node is where the current attempt runs, nil when none does.
	node *node
	// queued is true while the trial sits in its study's ready queue or
	// delay heap.
	queued bool
	// heapIndex is the trial's position in the delay heap.
	heapIndex int
	// usage is what the trial has consumed of its study's budget.
	usage float64
	// missing is when the current attempt was first missing from its
	// agent's heartbeats (zero while the agent reports it).
	missing time.Time
	// unanswered says why the current attempt's dispatch went unanswered
	// ("" when it was answered); unlisted counts the agent's heartbeats
	// since then that did not list the attempt.
	unanswered string
	unlisted   int
	// ending is set when the agent said the current attempt ended (a
	// started event of the attempt that took its place) before its
	// outcome arrived; status counts it as finishing, not running.
	ending bool
}

// attempt returns attempt n of the trial, or nil if it has none.
func (t *trial) attempt(n int) *api.Attempt {
	for i := range t.rec.Attempts {
		if t.rec.Attempts[i].N == n {
			return &t.rec.Attempts[i]
		}
	}
	return nil
}

func (t *trial) key() string { return t.rec.Study + "/" + t.rec.ID }

func (t *trial) ref() bus.AttemptRef {
	return bus.AttemptRef{Study: t.rec.Study, Trial: t.rec.ID, Attempt: t.rec.Attempt}
}

// study is the leader's cached view of a study and its trials.
type study struct {
	rec  api.Study
	rev  int64
	spec *sweep.Spec
	// trials in expansion order, and by ID.
	trials []*trial
	byID   map[string]*trial
	// counts of trials per state, kept in step with every change.
	counts map[sweep.State]int
	// ready holds pending trials that may run now, in order; delayed
	// holds pending trials waiting out a retry backoff.
	ready   []*trial
	delayed delayHeap
	// running is the number of attempts on agents, and served the
	// leader's dispatch counter at this study's last dispatch: both for
	// fair sharing.
	running int
	served  uint64
	// finished holds recent finish times, for the rate estimate.
	finished  []time.Time
	stale     int
	preempted int
	late      int
	retries   int
	// needs are the resources one trial reserves.
	needs bus.Resources
	// methodConfig is the spec's method configuration, sent with every
	// dispatch; encoded once per spec.
	methodConfig []byte
	// slotTime is a moving average of how long the study's attempts held
	// their slot, over timed of them; it decides whether to queue ahead.
	slotTime time.Duration
	timed    int
	// refitDue is set when a result arrives for a study with an analysis
	// plan; refitting while a refit runs; lastRefit when the last began.
	refitDue  bool
	refitting bool
	lastRefit time.Time
	// searchDone is set when the study's adaptive search has nothing more
	// to add; new trials clear it.
	searchDone bool
	// promoteDue is set when a trial of a promotion search succeeded
	// (or the study was loaded) and its next step has not run yet.
	promoteDue bool
	// used is how much of the study's budget its trials consumed.
	used float64
	// rungs holds the objective values recorded at each early-stopping
	// rung.
	rungs strategy.Rungs
	// q is set while the study is quarantined (quarantine.go).
	q *quarantineState
	// checkpointBytes is the size of the checkpoints its trials keep,
	// for checkpoints.quota.
	checkpointBytes int64
}

func newStudy(rec api.Study, rev int64, spec *sweep.Spec) *study {
	s := &study{rec: rec, rev: rev, byID: map[string]*trial{}, counts: map[sweep.State]int{}, promoteDue: true}
	s.setSpec(spec)
	return s
}

func (s *study) setSpec(spec *sweep.Spec) {
	s.spec = spec
	s.needs = spec.Resources.Needs()
	s.methodConfig = spec.MethodConfig()
}

// terminal reports whether every trial has finished.
func (s *study) terminal() bool {
	n := 0
	for st, c := range s.counts {
		if st.Terminal() {
			n += c
		}
	}
	return n == len(s.trials)
}

// enqueue makes a pending trial eligible for dispatch, now or after its
// backoff.
func (s *study) enqueue(t *trial, now time.Time) {
	if t.queued {
		return
	}
	t.queued = true
	if t.rec.NotBefore != nil && t.rec.NotBefore.After(now) {
		heap.Push(&s.delayed, t)
		return
	}
	s.ready = append(s.ready, t)
}

// toFront moves a trial just queued to the head of the ready queue.
func (s *study) toFront(t *trial) {
	if n := len(s.ready); n > 1 && s.ready[n-1] == t {
		copy(s.ready[1:], s.ready[:n-1])
		s.ready[0] = t
	}
}

// promote moves trials whose backoff has passed to the ready queue.
func (s *study) promote(now time.Time) {
	for s.delayed.Len() > 0 && !s.delayed[0].rec.NotBefore.After(now) {
		t := heap.Pop(&s.delayed).(*trial)
		s.ready = append(s.ready, t)
	}
}

// next returns the first ready trial that is still pending, dropping
// trials that left the pending state while queued.
func (s *study) next() *trial {
	for len(s.ready) > 0 {
		t := s.ready[0]
		if t.rec.State == sweep.Pending {
			return t
		}
		t.queued = false
		s.ready[0] = nil
		s.ready = s.ready[1:]
	}
	return nil
}

// pop removes the trial next returned.
func (s *study) pop() {
	s.ready[0].queued = false
	s.ready[0] = nil
	s.ready = s.ready[1:]
}

// rate returns trials finished per second over the last minute.
func (s *study) rate(now time.Time) float64 {
	cut := now.Add(-time.Minute)
	i := 0
	for i < len(s.finished) && s.finished[i].Before(cut) {
		i++
	}
	s.finished = s.finished[i:]
	if len(s.finished) < 2 {
		return 0
	}
	span := now.Sub(s.finished[0]).Seconds()
	if span < 1 {
		span = 1
	}
	return float64(len(s.finished)) / span
}

// delayHeap orders delayed trials by the end of their backoff.
type delayHeap []*trial

func (h delayHeap) Len() int { return len(h) }
func (h delayHeap) Less(i, j int) bool {
	return h[i].rec.NotBefore.Before(*h[j].rec.NotBefore)
}
func (h delayHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex, h[j].heapIndex = i, j
}
func (h *delayHeap) Push(x any) {
	t := x.(*trial)
	t.heapIndex = len(*h)
	*h = append(*h, t)
}
func (h *delayHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}

// node is the leader's view of an agent and what runs on it.
type node struct {
	rec api.Node
	rev int64
	// seen is the last heartbeat's arrival on the leader's clock.
	seen time.Time
	// attempts maps trial keys to the trials whose current attempt runs
	// here.
	attempts map[string]*trial
	usedCPU  float64
	usedMem  int64
	usedGPU  map[int]bool
	draining bool
	// queue is how far beyond its resources the agent accepts attempts
	// (its heartbeat's Queue).
	queue float64
	// held is set when a dispatch to the node went unanswered or was
	// refused; no trial is placed there until the node heartbeats again.
	// Without it a vanished agent, not yet past its grace period, looks
	// idle and draws every dispatch, each one a lost attempt.
	held bool
	// leftover is what attempts the agent still runs, but which are no
	// longer current, occupy until they stop (the heartbeat reply cancels
	// them): the agent counts them, so the leader must too, or its
	// dispatches are refused.
	leftover usage
}

// usage is an amount of a node's resources.
type usage struct {
	attempts int
	cpu      float64
	mem      int64
	gpus     map[int]bool
}

func newNode(rec api.Node, rev int64) *node {
	return &node{rec: rec, rev: rev, attempts: map[string]*trial{}, usedGPU: map[int]bool{}}
}

// offers reports whether the node's agent runs method. An agent that lists
// no methods (one whose catalog is not known) may run any.
func (n *node) offers(method string) bool {
	return len(n.rec.Methods) == 0 || slices.Contains(n.rec.Methods, method)
}

// couldFit reports whether the node could ever hold an attempt with needs,
// were it idle.
func (n *node) couldFit(needs bus.Resources) bool {
	return resource.Fits(needs, n.capacity(), resource.Resources{}, 1)
}

// fits reports whether an attempt with needs can go to the node now: into
// its free resources or, with ahead, into the queue the agent offers.
func (n *node) fits(needs bus.Resources, ahead bool) bool {
	if n.rec.State != api.NodeAlive || n.draining || n.held {
		return false
	}
	scale := 1.0
	if ahead {
		scale += n.queue
	}
	return resource.Fits(needs, n.capacity(), n.used(), scale)
}

// capacity is what the node's agent offers.
func (n *node) capacity() resource.Resources {
	return resource.Resources{CPU: n.rec.CPU, Memory: n.rec.Memory, GPUs: n.rec.GPUs}
}

// used is what the node's current attempts and its leftovers take.
func (n *node) used() resource.Resources {
	busy := 0
	for _, g := range n.rec.GPUs {
		if n.usedGPU[g.Index] || n.leftover.gpus[g.Index] {
			busy++
		}
	}
	return resource.Resources{CPU: n.usedCPU + n.leftover.cpu, Memory: n.usedMem + n.leftover.mem, GPUCount: busy}
}

// reserve books needs for t on the node and returns the GPUs assigned.
func (n *node) reserve(t *trial, needs bus.Resources) []int {
	n.attempts[t.key()] = t
	n.usedCPU += needs.CPU
	n.usedMem += needs.Memory
	var gpus []int
	for _, g := range n.rec.GPUs {
		if len(gpus) == needs.GPUCount {
			break
		}
		if !n.usedGPU[g.Index] && !n.leftover.gpus[g.Index] {
			n.usedGPU[g.Index] = true
			gpus = append(gpus, g.Index)
		}
	}
	t.node = n
	return gpus
}

// release returns t's resources to the node.
func (n *node) release(t *trial) {
	if _, ok := n.attempts[t.key()]; !ok {
		return
	}
	delete(n.attempts, t.key())
	t.ending = false
	needs := t.study.needs
	n.usedCPU -= needs.CPU
	if n.usedCPU < 1e-9 {
		n.usedCPU = 0
	}
	n.usedMem -= needs.Memory
	if a := t.rec.Current(); a != nil {
		for _, g := range a.GPUs {
			delete(n.usedGPU, g)
		}
	}
	t.node = nil
}

// succeeded returns the records of the study's succeeded trials, a
// snapshot an analysis or a search step can read off the loop.
func (s *study) succeeded() []api.Trial {
	var out []api.Trial
	for _, t := range s.trials {
		if t.rec.State == sweep.Succeeded {
			out = append(out, t.rec)
		}
	}
	return out
}
