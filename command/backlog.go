package command

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/bus"
)

// printBacklog reports the trial outcomes that wait in JetStream for the
// leader to record them. They pile up while no coordinator leads, and
// drain within seconds once one does; a backlog that grows while a leader
// is up means it is not receiving events. It prints nothing when the
// stream cannot be read (an old server, no JetStream yet).
func printBacklog(ctx context.Context, w io.Writer, nc *nats.Conn) {
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, bus.StreamEvents, bus.ConsumerCoordinator)
	if err != nil {
		return
	}
	info, err := c.Info(ctx)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "\nevents not yet recorded: %d waiting, %d delivered to the leader and not yet acknowledged\n", info.NumPending, info.NumAckPending)
}
