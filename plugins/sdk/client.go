package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	asymptotev1 "asymptote.dev/asymptote/proto/asymptote/v1"
)

// cancelTimeout bounds the CancelTrial call a Client makes when its
// context ends.
const cancelTimeout = 5 * time.Second

// deadlineSlack is how long after a deadline the Client sends CancelTrial.
const deadlineSlack = 100 * time.Millisecond

// Client is the host's side of a method served by a plugin process. It
// implements [Method], so a host runs remote and in-process methods alike.
//
// Client.Run differs from a well-behaved Method in one respect: when ctx
// ends it asks the plugin to cancel the trial and then waits for the remote
// method to return, however long that takes. Whoever owns the plugin
// process enforces a grace period by killing the process, which ends the
// call with an error matching [ErrUnavailable].
type Client struct {
	rpc asymptotev1.MethodServiceClient
}

var _ Method = (*Client)(nil)

// NewClient returns a Client for the method served on conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{rpc: asymptotev1.NewMethodServiceClient(conn)}
}

// Info asks the plugin to describe its method.
func (c *Client) Info(ctx context.Context) (*Info, error) {
	resp, err := c.rpc.Info(ctx, &asymptotev1.InfoRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	return infoFromProto(resp)
}

// Run runs one attempt in the plugin, calling report for each metrics event
// it streams. ctx's deadline travels with the request, so the method's own
// context expires at the same time. Errors match what the method returned
// (*ParamError, context.Canceled, context.DeadlineExceeded, or
// ErrMethodPanicked); ErrUnavailable means the connection broke. When
// report fails, Run cancels the remote trial, waits for the method to
// return and returns report's error.
func (c *Client) Run(ctx context.Context, req *TrialRequest, report func(Metrics) error) (*Result, error) {
	deadline, _ := ctx.Deadline()
	in, err := requestToProto(req, deadline)
	if err != nil {
		return nil, err
	}
	// The stream outlives ctx on purpose: after ctx ends the method gets
	// the chance to return, and the stream's end tells us it did.
	sctx, cancelStream := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelStream()
	stream, err := c.rpc.RunTrial(sctx, in)
	if err != nil {
		return nil, fromStatus(err)
	}
	cancelRemote := func(reason string) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
		defer cancel()
		// A failed cancel leaves the method running; the process owner's
		// grace period handles that.
		_, _ = c.rpc.CancelTrial(cctx, &asymptotev1.CancelTrialRequest{
			TrialId: req.TrialID, Attempt: int32(req.Attempt), Reason: reason,
		})
	}
	finished := make(chan struct{})
	defer close(finished)
	stop := context.AfterFunc(ctx, func() {
		if !deadline.IsZero() && errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			// The plugin enforces the deadline itself, so the method sees
			// DeadlineExceeded rather than a cancellation; CancelTrial
			// follows only for plugins that ignore the deadline field.
			select {
			case <-time.After(deadlineSlack):
			case <-finished:
				return
			}
		}
		cancelRemote(context.Cause(ctx).Error())
	})
	defer stop()

	var (
		result    *Result
		reportErr error // once set, events are drained and dropped
	)
	for {
		resp, err := stream.Recv()
		switch {
		case reportErr != nil && err != nil:
			return nil, reportErr
		case errors.Is(err, io.EOF):
			if result == nil {
				return nil, fmt.Errorf("%w: stream ended without a result", ErrProtocol)
			}
			return result, nil
		case err != nil:
			return nil, fromStatus(err)
		case reportErr != nil:
			continue
		case result != nil:
			return nil, fmt.Errorf("%w: event after the result", ErrProtocol)
		}
		switch ev := resp.GetEvent().(type) {
		case *asymptotev1.RunTrialResponse_Metrics:
			m := metricsFromProto(ev.Metrics)
			if m.Checkpoint != "" {
				// The host deletes a checkpoint's directory after its
				// upload: a plugin may name nothing else.
				if err := checkCheckpointDir(req.CheckpointRoot(), m.Checkpoint); err != nil {
					reportErr = err
					go cancelRemote(err.Error())
					continue
				}
			}
			if report == nil {
				continue
			}
			if err := report(m); err != nil {
				// Keep reading until the method returns, so the plugin is
				// idle when Run returns.
				reportErr = fmt.Errorf("report metrics: %w", err)
				go cancelRemote("report failed: " + err.Error())
			}
		case *asymptotev1.RunTrialResponse_Result:
			// Read on to the end of the stream: it ends once the plugin is
			// idle again, so the next trial never finds it busy.
			result = resultFromProto(ev.Result)
		default:
			return nil, fmt.Errorf("%w: unknown event %T", ErrProtocol, ev)
		}
	}
}

// RequestCheckpoint asks the plugin's running attempt of trialID to save a
// checkpoint at its next safe point. It reports whether that attempt was
// running; a plugin that predates checkpoints answers false, no error.
func (c *Client) RequestCheckpoint(ctx context.Context, trialID string, attempt int, reason string) (bool, error) {
	resp, err := c.rpc.RequestCheckpoint(ctx, &asymptotev1.RequestCheckpointRequest{
		TrialId: trialID, Attempt: int32(attempt), Reason: reason,
	})
	if status.Code(err) == codes.Unimplemented {
		return false, nil
	}
	if err != nil {
		return false, fromStatus(err)
	}
	return resp.GetFound(), nil
}
