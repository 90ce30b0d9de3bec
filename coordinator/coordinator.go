// Package coordinator is the control plane of asymptote. Any number of
// coordinators run; they campaign in an etcd election and the leader alone
// expands studies into trials, schedules them onto agents over NATS,
// records their results in etcd, and answers the client API. Standbys wait
// in the election and take over when the leader's lease expires.
//
// All truth is in etcd. The leader's memory is a cache rebuilt from etcd
// each time it is elected; every write it makes is fenced by its election
// key, so a deposed leader can never write.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"asymptote.dev/asymptote/internal/checkpoint"
	"asymptote.dev/asymptote/internal/store"
)

// Config configures a coordinator.
type Config struct {
	// ID names this coordinator in the election and in logs (default:
	// hostname and pid).
	ID string
	// Etcd is the client for the state store.
	Etcd *clientv3.Client
	// NATS is the connection to the bus.
	NATS *nats.Conn
	// Logger receives lifecycle and error logs.
	Logger *slog.Logger
	// LeaseTTL is the leader lease's time to live; a standby takes over at
	// most this long after the leader dies (default 4s).
	LeaseTTL time.Duration
	// HeartbeatGrace is how long an agent may stay silent before it is
	// declared dead and its attempts stale (default 10s).
	HeartbeatGrace time.Duration
	// DispatchTimeout bounds an agent's answer to a dispatch (default 5s).
	DispatchTimeout time.Duration
	// StreamReplicas is the replication factor of the events stream
	// (1 on a single NATS server, 3 on a three-node cluster).
	StreamReplicas int
	// HistoryRetention is how long the metric history stream keeps a
	// report; 0 keeps it until its study is deleted.
	HistoryRetention time.Duration
	// Tick is the period of liveness and retry checks (default 500ms).
	Tick time.Duration
	// QueueBelow: for a study whose trials have so far taken less than
	// this on average, the leader also fills the queues agents offer
	// (agent.Config.Queue), so each slot starts its next trial without
	// waiting for the leader. Longer trials are not queued: the wait is
	// negligible beside them, and a queued attempt would hold its slot
	// against a study of higher priority. Default 1m; negative: never.
	QueueBelow time.Duration
	// AllowUnofferedMethods accepts a study whose method no live agent
	// offers (it waits for one), instead of refusing it at submit.
	AllowUnofferedMethods bool
	// Limits bound what one study may hold; its zero fields take the
	// defaults (see Limits).
	Limits Limits
	// Quotas bound what each team's running attempts may reserve, and
	// weigh the teams' shares of the cluster (ParseQuotas reads them
	// from the -team-quotas file); a team not listed has no bound and
	// weight 1.
	Quotas map[string]Quota
	// Checkpoints is the store of trials' checkpoints, where the leader
	// deletes those it lets go of (retention, succeeded and cancelled
	// trials, deleted studies); nil deletes none.
	Checkpoints checkpoint.Store
	// EtcdMaxRequestBytes is the etcd server's --max-request-bytes
	// (default store.DefaultMaxRequestBytes, etcd's own default). The
	// leader sizes its transactions and its largest record by it.
	EtcdMaxRequestBytes int
}

// Limits bound the input one study may bring, so one user's mistake is
// refused at submit with the field and the limit, never written. The
// defaults leave room under etcd's and NATS's own limits; docs/spec.md
// lists them.
type Limits struct {
	// SpecBytes bounds a spec's YAML source (default 256 KiB).
	SpecBytes int
	// ParamBytes bounds one parameter value, JSON-encoded (default 16 KiB).
	ParamBytes int
	// Trials bounds a study's trials, every submission and extension
	// together (default 1,000,000, sweep.MaxTrials).
	Trials int
}

// The default limits.
const (
	DefaultSpecBytes  = 256 << 10
	DefaultParamBytes = 16 << 10
	DefaultTrials     = 1_000_000
)

func (l *Limits) setDefaults() {
	if l.SpecBytes <= 0 {
		l.SpecBytes = DefaultSpecBytes
	}
	if l.ParamBytes <= 0 {
		l.ParamBytes = DefaultParamBytes
	}
	if l.Trials <= 0 {
		l.Trials = DefaultTrials
	}
}

func (c *Config) setDefaults() {
	if c.ID == "" {
		h, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 4 * time.Second
	}
	if c.HeartbeatGrace <= 0 {
		c.HeartbeatGrace = 10 * time.Second
	}
	if c.DispatchTimeout <= 0 {
		c.DispatchTimeout = 5 * time.Second
	}
	if c.Tick <= 0 {
		c.Tick = 500 * time.Millisecond
	}
	if c.QueueBelow == 0 {
		c.QueueBelow = time.Minute
	}
	c.Limits.setDefaults()
	if c.EtcdMaxRequestBytes <= 0 {
		c.EtcdMaxRequestBytes = store.DefaultMaxRequestBytes
	}
}

// Coordinator campaigns for leadership and leads while elected.
type Coordinator struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	// leading is observed by tests; it carries true when a term starts and
	// false when it ends.
	leading chan bool
}

// New returns a coordinator; it does no I/O until Run.
func New(cfg Config) (*Coordinator, error) {
	if cfg.Etcd == nil || cfg.NATS == nil {
		return nil, errors.New("coordinator: Etcd and NATS are required")
	}
	cfg.setDefaults()
	return &Coordinator{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "coordinator", "coordinator", cfg.ID),
		store:   store.New(cfg.Etcd).WithMaxRequestBytes(cfg.EtcdMaxRequestBytes),
		leading: make(chan bool, 16),
	}, nil
}

// Run campaigns and leads until ctx ends. Losing leadership (an expired
// lease, etcd unreachable) ends the term and the coordinator campaigns
// again.
func (c *Coordinator) Run(ctx context.Context) error {
	for {
		err := c.term(ctx)
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("leadership term ended; campaigning again", "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// term waits to be elected, then leads until leadership is lost.
func (c *Coordinator) term(ctx context.Context) error {
	ttl := max(1, int(c.cfg.LeaseTTL/time.Second))
	sess, err := concurrency.NewSession(c.cfg.Etcd, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("open etcd session: %w", err)
	}
	defer sess.Close()
	el := concurrency.NewElection(sess, store.ElectionPrefix)
	c.log.Info("campaigning for leadership")
	if err := el.Campaign(ctx, c.cfg.ID); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	leaderCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-sess.Done():
			cancel(errLeaseLost)
		case <-leaderCtx.Done():
		}
	}()
	c.log.Info("elected leader", "leader_rev", el.Rev())
	fence := clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev())
	c.signal(true)
	defer c.signal(false)
	err = newLeader(c, c.store.Fenced(fence)).run(leaderCtx)
	// Resign so a standby need not wait for the lease to expire.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	_ = el.Resign(rctx)
	rcancel()
	if cause := context.Cause(leaderCtx); err == nil && cause != nil {
		err = cause
	}
	return err
}

func (c *Coordinator) signal(v bool) {
	select {
	case c.leading <- v:
	default:
	}
}

// commitAttempt bounds one etcd transaction of a turn's commit. A commit
// normally takes milliseconds; one caught in an etcd leader change waits
// for etcd's request timeout (about 7 s) unless cut short, and is then
// retried, with what landed found by its keys' revisions. Too short a bound
// would retry writes still in flight, which then conflict and end the term.
const commitAttempt = 3 * time.Second

// errLeaseLost ends a term when the election session expires.
var errLeaseLost = errors.New("leader lease lost")
