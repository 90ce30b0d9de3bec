package backoff

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

const ms = time.Millisecond

func TestDelay(t *testing.T) {
	t.Parallel()
	retry := Policy{First: time.Second, Max: 5 * time.Minute}
	tests := []struct {
		p    Policy
		n    int
		want time.Duration
	}{
		{retry, 1, time.Second},
		{retry, 2, 2 * time.Second},
		{retry, 3, 4 * time.Second},
		{retry, 9, 256 * time.Second},
		{retry, 10, 5 * time.Minute},
		{retry, 1 << 30, 5 * time.Minute}, // no overflow however many
		{retry, 0, time.Second},
		{retry, -3, time.Second},
		{Policy{First: 50 * ms, Max: 2 * time.Second}, 6, 1600 * ms},
		{Policy{First: 50 * ms, Max: 2 * time.Second}, 7, 2 * time.Second},
		{Policy{First: 3 * time.Second, Max: time.Second}, 1, time.Second}, // the cap holds from the start
	}
	for _, tt := range tests {
		if got := tt.p.Delay(tt.n); got != tt.want {
			t.Errorf("%+v.Delay(%d) = %v, want %v", tt.p, tt.n, got, tt.want)
		}
	}
}

func TestWaitDoubles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    Policy
		want []time.Duration
	}{
		{"etcd commits and history", Policy{First: 50 * ms, Max: 2 * time.Second},
			[]time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2 * time.Second, 2 * time.Second}},
		{"agent events", Policy{First: 100 * ms, Max: 5 * time.Second},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5 * time.Second, 5 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				b := tt.p.Start()
				for i, want := range tt.want {
					if next := b.Next(); next != want {
						t.Errorf("wait %d: Next() = %v, want %v", i+1, next, want)
					}
					start := time.Now()
					if err := b.Wait(t.Context()); err != nil {
						t.Fatalf("wait %d: %v", i+1, err)
					}
					if got := time.Since(start); got != want {
						t.Errorf("wait %d took %v, want %v", i+1, got, want)
					}
				}
			})
		})
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	t.Parallel()
	errDone := errors.New("shutting down")
	tests := []struct {
		name  string
		after time.Duration // when the context ends
		want  error
	}{
		{"ends mid-wait", 30 * ms, errDone},
		{"ended before", 0, errDone},
		{"outlives the wait", time.Second, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancelCause(t.Context())
				t.Cleanup(func() { cancel(nil) })
				if tt.after == 0 {
					cancel(errDone)
				} else {
					time.AfterFunc(tt.after, func() { cancel(errDone) })
				}
				b := Policy{First: 100 * ms, Max: time.Second}.Start()
				start := time.Now()
				err := b.Wait(ctx)
				if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
					t.Fatalf("Wait = %v, want %v", err, tt.want)
				}
				if got, want := time.Since(start), min(tt.after, 100*ms); got != want {
					t.Errorf("Wait took %v, want %v", got, want)
				}
				if next := b.Next(); next != 200*ms {
					t.Errorf("after a cut-short wait, Next() = %v, want 200ms", next)
				}
			})
		})
	}
}
