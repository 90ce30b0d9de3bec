package sdk

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// This file is the one place where method errors become gRPC statuses (in
// the plugin) and statuses become errors again (in the host). Keep both
// directions together so that every error round-trips.

// Errors a host sees from a method served by a plugin. They are matched with
// errors.Is; the error's text carries the plugin's message.
var (
	// ErrMethodPanicked reports that the method panicked; the SDK recovered
	// the panic and logged its stack, but the process should not be reused.
	ErrMethodPanicked = errors.New("method panicked")

	// ErrUnavailable reports that the connection to the plugin broke, which
	// usually means the plugin process died.
	ErrUnavailable = errors.New("method plugin unavailable")

	// ErrBusy reports that the plugin process was already running a trial.
	ErrBusy = errors.New("method plugin busy with another trial")

	// ErrProtocol reports a plugin that broke the method protocol (for
	// example a stream that ended without a result).
	ErrProtocol = errors.New("method protocol violation")

	// ErrPreempted is what a method returns, wrapped, when its attempt was
	// interrupted through no fault of its own (the program was preempted
	// and asks to be resumed): the agent reports the attempt lost, and the
	// coordinator runs it again without counting a failure.
	ErrPreempted = errors.New("preempted")
)

// errorDomain qualifies the reasons in google.rpc.ErrorInfo details.
const errorDomain = "asymptote.dev"

// reasonPanic marks an INTERNAL status caused by a recovered panic;
// reasonPreempted an ABORTED status for ErrPreempted.
const (
	reasonPanic     = "PANIC"
	reasonPreempted = "PREEMPTED"
)

// panicError carries a recovered panic from Run to toStatus.
type panicError struct{ value any }

func (e *panicError) Error() string { return fmt.Sprintf("method panicked: %v", e.value) }

// remoteError is an error received from a plugin: its text is the plugin's
// message and it matches the sentinel (or context error) its code maps to.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

// toStatus converts an error returned by a method into the gRPC status error
// the plugin sends.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var pe *ParamError
	if errors.As(err, &pe) {
		st := status.New(codes.InvalidArgument, err.Error())
		if d, derr := st.WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: pe.Param, Description: pe.Reason}},
		}); derr == nil {
			st = d
		}
		return st.Err()
	}
	var pan *panicError
	if errors.As(err, &pan) {
		st := status.New(codes.Internal, err.Error())
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: reasonPanic, Domain: errorDomain}); derr == nil {
			st = d
		}
		return st.Err()
	}
	if errors.Is(err, ErrPreempted) {
		st := status.New(codes.Aborted, err.Error())
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: reasonPreempted, Domain: errorDomain}); derr == nil {
			st = d
		}
		return st.Err()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	if st, ok := status.FromError(err); ok {
		// Already a status, for example a failed stream send.
		return st.Err()
	}
	return status.Error(codes.Unknown, err.Error())
}

// fromStatus converts an error from a gRPC call to a plugin back into the
// error the method returned, as far as the wire preserves it.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	switch st.Code() {
	case codes.InvalidArgument:
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
				v := br.GetFieldViolations()[0]
				return &ParamError{Param: v.GetField(), Reason: v.GetDescription()}
			}
		}
		return &ParamError{Reason: msg}
	case codes.Canceled:
		return &remoteError{msg: msg, kind: context.Canceled}
	case codes.DeadlineExceeded:
		return &remoteError{msg: msg, kind: context.DeadlineExceeded}
	case codes.Internal:
		for _, d := range st.Details() {
			if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == reasonPanic && ei.GetDomain() == errorDomain {
				return &remoteError{msg: msg, kind: ErrMethodPanicked}
			}
		}
		return &remoteError{msg: msg}
	case codes.Aborted:
		for _, d := range st.Details() {
			if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == reasonPreempted && ei.GetDomain() == errorDomain {
				return &remoteError{msg: msg, kind: ErrPreempted}
			}
		}
		return &remoteError{msg: msg}
	case codes.Unavailable:
		return &remoteError{msg: ErrUnavailable.Error() + ": " + msg, kind: ErrUnavailable}
	case codes.FailedPrecondition:
		return &remoteError{msg: msg, kind: ErrBusy}
	default:
		return &remoteError{msg: msg}
	}
}
