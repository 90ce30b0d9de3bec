package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"asymptote.dev/asymptote/coordinator"
	"asymptote.dev/asymptote/internal/bus"
)

// Failover measures the time from killing the leader (its connections cut
// without resigning, as SIGKILL would) to the first dispatch sent by the
// standby while a study of short trials is running. leaseTTL 0 keeps the
// coordinator's default lease (4 s).
func Failover(ctx context.Context, opts Options, leaseTTL time.Duration) (time.Duration, error) {
	opts.setDefaults()
	c, err := startCluster(ctx, opts)
	if err != nil {
		return 0, err
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(ctx, opts.RunTimeout)
	defer cancel()
	lease := func(cfg *coordinator.Config) { cfg.LeaseTTL = leaseTTL }
	first, err := c.startCoordinator("first", lease)
	if err != nil {
		return 0, err
	}
	if _, err := c.startAgent("agent-1", 1); err != nil {
		return 0, err
	}
	if err := c.waitNodes(ctx, 1); err != nil {
		return 0, err
	}
	// The standby starts once the first one leads.
	if _, err := c.startCoordinator("second", lease); err != nil {
		return 0, err
	}
	// Watch dispatches on the wire: a plain subscriber sees each request
	// too (the agent answers it).
	nc, err := c.conn("failover-watch")
	if err != nil {
		return 0, err
	}
	byStandby := make(chan time.Time, 1)
	sub, err := nc.Subscribe(bus.DispatchSubject("*"), func(m *nats.Msg) {
		var b bus.DispatchBatch
		if bus.Decode(m.Data, &b) == nil && b.Dispatches[0].Leader == "second" {
			select {
			case byStandby <- time.Now():
			default:
			}
		}
	})
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	defer sub.Unsubscribe()
	// Trials of 50 ms keep the standby something to dispatch.
	if _, err := c.submit(ctx, "failover", 2000, 50*time.Millisecond, 0.1); err != nil {
		return 0, err
	}
	time.Sleep(time.Second)
	killed := time.Now()
	first.Kill()
	select {
	case t := <-byStandby:
		return t.Sub(killed), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("bench: no dispatch by the standby after the leader was killed: %w", ctx.Err())
	}
}
