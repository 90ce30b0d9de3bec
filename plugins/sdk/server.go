package sdk

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	asymptotev1 "asymptote.dev/asymptote/proto/asymptote/v1"
)

// server adapts a Method to the generated MethodService server.
type server struct {
	asymptotev1.UnimplementedMethodServiceServer
	m Method

	mu      sync.Mutex
	running *runningTrial // nil when idle
}

// runningTrial is the attempt a server is running, so CancelTrial can find
// its context.
type runningTrial struct {
	trialID string
	attempt int32
	cancel  context.CancelCauseFunc
	ckpt    *checkpointState
}

func newServer(m Method) *server { return &server{m: m} }

// Info implements MethodService.
func (s *server) Info(ctx context.Context, _ *asymptotev1.InfoRequest) (*asymptotev1.InfoResponse, error) {
	info, err := s.m.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := infoToProto(info)
	if err != nil {
		return nil, toStatus(err)
	}
	return out, nil
}

// RunTrial implements MethodService: it runs the method with a context that
// ends at the request's deadline, on CancelTrial, or when the host goes
// away, and streams its reports and result.
func (s *server) RunTrial(in *asymptotev1.RunTrialRequest, stream asymptotev1.MethodService_RunTrialServer) error {
	req, err := requestFromProto(in)
	if err != nil {
		return toStatus(err)
	}
	ctx := stream.Context()
	if d := in.GetDeadline(); d != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.AsTime())
		defer cancel()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	s.mu.Lock()
	if r := s.running; r != nil {
		s.mu.Unlock()
		return status.Errorf(codes.FailedPrecondition, "busy with trial %s attempt %d", r.trialID, r.attempt)
	}
	s.running = &runningTrial{trialID: in.GetTrialId(), attempt: in.GetAttempt(), cancel: cancel, ckpt: req.checkpoints}
	s.mu.Unlock()
	// The host reads the stream to its end before it sends the next trial,
	// and the end comes after this returns, so the next trial finds the
	// server idle.
	defer func() {
		s.mu.Lock()
		s.running = nil
		s.mu.Unlock()
	}()

	var sendMu sync.Mutex // report may be called from several goroutines
	report := func(m Metrics) error {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		if m.Checkpoint != "" {
			if err := checkCheckpointDir(req.checkpoints.root, m.Checkpoint); err != nil {
				return err
			}
		}
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(metricsToProto(m))
	}
	res, err := runRecovered(ctx, s.m, req, report)
	if err != nil {
		return toStatus(err)
	}
	sendMu.Lock()
	defer sendMu.Unlock()
	return stream.Send(resultToProto(res))
}

// runRecovered runs the method, turning a panic into a *panicError after
// logging its stack (a panic would otherwise kill the process with the
// stack as its only trace).
func runRecovered(ctx context.Context, m Method, req *TrialRequest, report func(Metrics) error) (res *Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			Logger().Error("method panicked", "panic", fmt.Sprint(v), "trial_id", req.TrialID,
				"attempt", req.Attempt, "stack", string(debug.Stack()))
			res, err = nil, &panicError{value: v}
		}
	}()
	return m.Run(ctx, req, report)
}

// CancelTrial implements MethodService.
func (s *server) CancelTrial(_ context.Context, in *asymptotev1.CancelTrialRequest) (*asymptotev1.CancelTrialResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.running
	if r == nil || r.trialID != in.GetTrialId() || r.attempt != in.GetAttempt() {
		return &asymptotev1.CancelTrialResponse{}, nil
	}
	r.cancel(fmt.Errorf("%w by host: %s", context.Canceled, in.GetReason()))
	return &asymptotev1.CancelTrialResponse{Found: true}, nil
}

// RequestCheckpoint implements MethodService: the running attempt's
// CheckpointWanted turns true.
func (s *server) RequestCheckpoint(_ context.Context, in *asymptotev1.RequestCheckpointRequest) (*asymptotev1.RequestCheckpointResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.running
	if r == nil || r.trialID != in.GetTrialId() || r.attempt != in.GetAttempt() {
		return &asymptotev1.RequestCheckpointResponse{}, nil
	}
	r.ckpt.wanted.Store(true)
	Logger().Debug("host asked for a checkpoint", "trial_id", r.trialID, "attempt", r.attempt, "reason", in.GetReason())
	return &asymptotev1.RequestCheckpointResponse{Found: true}, nil
}
