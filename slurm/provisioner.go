package slurm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// Controller is what the provisioner needs of SLURM (Commands runs the
// real commands).
type Controller interface {
	Submit(ctx context.Context, script string) (jobID string, err error)
	Jobs(ctx context.Context, name string) ([]Job, error)
	Cancel(ctx context.Context, ids ...string) error
}

// Config configures a Provisioner.
type Config struct {
	Queue Queue
	Agent Agent
	SLURM Controller
	// Status reads the cluster's status (the leader's, over the bus).
	Status func(ctx context.Context) (*api.StatusReply, error)
	// Interval is the time between planning rounds (default 10s).
	Interval time.Duration
	Logger   *slog.Logger
}

// Provisioner keeps one queue's allocations sized to the waiting work.
type Provisioner struct {
	cfg Config
	log *slog.Logger

	// idle is when each running allocation's agents last ran nothing;
	// submitted holds jobs sbatch accepted until squeue lists them.
	idle      map[string]time.Time
	submitted map[string]time.Time

	mu   sync.Mutex
	last Report
}

// Report is the provisioner's view after a round, for status.
type Report struct {
	Queue       string       `json:"queue"`
	Partition   string       `json:"partition,omitempty"`
	At          time.Time    `json:"at"`
	Waiting     int          `json:"waiting"`
	Allocations []Allocation `json:"allocations"`
	// Why says why work waits ("" when nothing waits or nothing is
	// known); Error is the round's failure, if it failed.
	Why   string `json:"why,omitempty"`
	Error string `json:"error,omitempty"`
}

// New returns a provisioner for cfg.
func New(cfg Config) (*Provisioner, error) {
	if err := cfg.Queue.Validate(); err != nil {
		return nil, err
	}
	if cfg.Agent.Binary == "" || cfg.Agent.NATSURL == "" {
		return nil, errors.New("slurm: the agent's binary and NATS URL are required")
	}
	if cfg.SLURM == nil || cfg.Status == nil {
		return nil, errors.New("slurm: SLURM and Status are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Provisioner{cfg: cfg, log: cfg.Logger.With("queue", cfg.Queue.Name), idle: map[string]time.Time{}, submitted: map[string]time.Time{}}, nil
}

// Run plans every Interval until ctx ends. A failed round (the leader or
// slurmctld not answering) changes nothing and is logged; the next round
// tries again. Allocations are left to run when Run returns: their agents
// finish with the cluster, and idle ones end at their time limit.
func (p *Provisioner) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := p.Round(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("planning round failed; nothing changed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Last is the latest round's report.
func (p *Provisioner) Last() Report {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// Round reads the waiting work and SLURM's jobs, plans, and submits and
// releases allocations. Without both readings it does nothing: it never
// submits on a guess.
func (p *Provisioner) Round(ctx context.Context) (Decision, error) {
	q := p.cfg.Queue
	rep := Report{Queue: q.Name, Partition: q.Partition, At: time.Now()}
	defer func() {
		p.mu.Lock()
		p.last = rep
		p.mu.Unlock()
	}()
	st, err := p.cfg.Status(ctx)
	if err != nil {
		rep.Error = fmt.Sprintf("cluster status: %v", err)
		return Decision{}, fmt.Errorf("cluster status: %w", err)
	}
	jobs, err := p.cfg.SLURM.Jobs(ctx, JobName(q))
	if err != nil {
		rep.Error = err.Error()
		return Decision{}, err
	}
	now := time.Now()
	in := Inputs{Now: now, Waiting: waiting(st, p.cfg.Queue), Allocations: p.allocations(st, jobs, now)}
	d := Plan(q, in)
	rep.Waiting, rep.Allocations, rep.Why = in.Waiting, in.Allocations, d.Why

	var errs []error
	var ids []string
	for _, r := range d.Release {
		p.log.Info("releasing allocation", "job", r.JobID, "why", r.Why)
		ids = append(ids, r.JobID)
	}
	if err := p.cfg.SLURM.Cancel(ctx, ids...); err != nil {
		errs = append(errs, err)
	}
	script := Script(q, p.cfg.Agent)
	for range d.Submit {
		id, err := p.cfg.SLURM.Submit(ctx, script)
		if err != nil {
			errs = append(errs, err)
			break
		}
		p.submitted[id] = now
		p.log.Info("submitted allocation", "job", id, "waiting", in.Waiting)
	}
	if err := errors.Join(errs...); err != nil {
		rep.Error = err.Error()
		return d, err
	}
	return d, nil
}

// waiting counts the trials that wait for an agent, over every study
// whose trials one of q's agents could run (all of them when the status
// does not say what a trial needs).
func waiting(st *api.StatusReply, q Queue) int {
	n := 0
	for _, s := range st.Studies {
		if s.Needs != nil && !q.Holds(*s.Needs) {
			continue
		}
		n += s.Counts[string(sweep.Pending)]
	}
	return n
}

// allocations joins SLURM's jobs with the agents they started, and keeps
// the idle times.
func (p *Provisioner) allocations(st *api.StatusReply, jobs []Job, now time.Time) []Allocation {
	listed := map[string]bool{}
	var out []Allocation
	for _, j := range jobs {
		listed[j.ID] = true
		delete(p.submitted, j.ID)
		a := Allocation{JobID: j.ID, State: j.State, Reason: j.Reason, Submitted: j.Submitted, Started: j.Started}
		prefix := NodePrefix(p.cfg.Queue, j.ID)
		for _, n := range st.Nodes {
			if n.State == api.NodeAlive && strings.HasPrefix(n.ID, prefix) {
				a.Agents++
				a.Busy += n.Running + n.Waiting
			}
		}
		switch {
		case a.State != JobRunning || a.Agents == 0 || a.Busy > 0:
			delete(p.idle, j.ID)
		case p.idle[j.ID].IsZero():
			p.idle[j.ID] = now
		}
		a.IdleSince = p.idle[j.ID]
		out = append(out, a)
	}
	// A job sbatch just accepted that squeue does not list yet still
	// counts, for a few rounds, so a lagging squeue never makes a second
	// ask.
	for id, at := range p.submitted {
		if now.Sub(at) > 3*p.cfg.Interval {
			delete(p.submitted, id)
			continue
		}
		out = append(out, Allocation{JobID: id, State: JobPending, Reason: "just submitted", Submitted: at})
	}
	for id := range p.idle {
		if !listed[id] {
			delete(p.idle, id)
		}
	}
	return out
}
