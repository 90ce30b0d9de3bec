package sdk

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestStatusRoundTrip checks that each kind of method error survives the
// trip to a gRPC status and back.
func TestStatusRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code codes.Code
		is   error // the host-side error must match it
		msg  string
	}{
		{name: "param error", err: &ParamError{Param: "lr", Reason: "must be positive"}, code: codes.InvalidArgument, msg: `parameter "lr": must be positive`},
		{name: "wrapped param error", err: fmt.Errorf("parse: %w", &ParamError{Param: "n", Reason: "too big"}), code: codes.InvalidArgument, msg: `parameter "n": too big`},
		{name: "canceled", err: context.Canceled, code: codes.Canceled, is: context.Canceled},
		{name: "wrapped deadline", err: fmt.Errorf("step 3: %w", context.DeadlineExceeded), code: codes.DeadlineExceeded, is: context.DeadlineExceeded, msg: "step 3: context deadline exceeded"},
		{name: "panic", err: &panicError{value: "boom"}, code: codes.Internal, is: ErrMethodPanicked, msg: "method panicked: boom"},
		{name: "plain failure", err: errors.New("loss is NaN"), code: codes.Unknown, msg: "loss is NaN"},
		{name: "transport", err: status.Error(codes.Unavailable, "connection reset"), code: codes.Unavailable, is: ErrUnavailable},
		{name: "preempted", err: fmt.Errorf("%w: the program exited with status 75", ErrPreempted), code: codes.Aborted, is: ErrPreempted, msg: "preempted: the program exited with status 75"},
		{name: "aborted without detail", err: status.Error(codes.Aborted, "aborted"), code: codes.Aborted, msg: "aborted"},
		{name: "busy", err: status.Error(codes.FailedPrecondition, "busy"), code: codes.FailedPrecondition, is: ErrBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := toStatus(tt.err)
			if got := status.Code(st); got != tt.code {
				t.Errorf("toStatus code = %v, want %v", got, tt.code)
			}
			back := fromStatus(st)
			if tt.is != nil && !errors.Is(back, tt.is) {
				t.Errorf("fromStatus = %v, want it to match %v", back, tt.is)
			}
			if tt.msg != "" && back.Error() != tt.msg {
				t.Errorf("fromStatus message = %q, want %q", back.Error(), tt.msg)
			}
			var want *ParamError
			if errors.As(tt.err, &want) {
				var got *ParamError
				if !errors.As(back, &got) || !reflect.DeepEqual(got, want) {
					t.Errorf("fromStatus = %#v, want %#v", back, want)
				}
			}
		})
	}
	if toStatus(nil) != nil || fromStatus(nil) != nil {
		t.Error("nil did not map to nil")
	}
}
