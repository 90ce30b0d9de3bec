// Package backoff paces retries: a wait that starts at a first delay and
// doubles up to a cap, cut short when a context ends. The coordinator's
// etcd writes and trial retries and the agent's event and history
// publishing all pace themselves with it, each with its own delays. There
// is no jitter: no caller had any, and each retries alone (one leader, one
// agent's own messages), so there is no herd to spread.
package backoff

import (
	"context"
	"time"
)

// Policy is an exponential backoff.
type Policy struct {
	// First is the first wait; each later one doubles, up to Max.
	First, Max time.Duration
}

// Delay returns the wait before retry n, counting from 1: First doubled
// n-1 times, at most Max. A retry before the first (n < 1) waits First.
func (p Policy) Delay(n int) time.Duration {
	d := p.First
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// Start begins a retry loop that waits by p.
func (p Policy) Start() *Backoff { return &Backoff{p: p} }

// Backoff is one retry loop's place in its Policy. It is not safe for
// concurrent use; each loop starts its own.
type Backoff struct {
	p Policy
	n int // waits begun
}

// Next returns how long the next Wait waits, for logs.
func (b *Backoff) Next() time.Duration { return b.p.Delay(b.n + 1) }

// Wait waits the next delay, then doubles it for the one after. It
// returns early, with the context's cause, when ctx ends first.
func (b *Backoff) Wait(ctx context.Context) error {
	d := b.Next()
	b.n++
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
