package node

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestFailureStopsTheNode runs a failing process beside one that runs
// until stopped: by default the failure stops the node; with KeepGoing the
// other process runs on.
func TestFailureStopsTheNode(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		keepGoing bool
		stopped   bool
	}{
		{name: "default", stopped: true},
		{name: "keep going", keepGoing: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ended []string
			n, err := Start(t.Context(), Config{KeepGoing: tt.keepGoing, Ended: func(p string, _ error) { ended = append(ended, p) }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { n.Close() })
			long := n.Go("long", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, nil)
			failing := n.Go("failing", func(context.Context) error { return boom }, nil)
			<-failing.Done()
			select {
			case <-long.Done():
				if !tt.stopped {
					t.Fatal("the failure stopped the other process")
				}
			case <-time.After(200 * time.Millisecond):
				if tt.stopped {
					t.Fatal("the failure did not stop the other process")
				}
			}
			if err := n.Close(); !errors.Is(err, boom) {
				t.Errorf("Close: %v, want %v", err, boom)
			}
			if !slices.Equal(ended, []string{"failing"}) {
				t.Errorf("Ended heard of %v, want [failing]", ended)
			}
		})
	}
}

// TestCloseOrder checks that Close stops the processes before it runs
// what was deferred, last deferred first.
func TestCloseOrder(t *testing.T) {
	n, err := Start(t.Context(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	n.Defer(func() { order = append(order, "first") })
	n.Go("p", func(ctx context.Context) error {
		<-ctx.Done()
		order = append(order, "process")
		return nil
	}, func() { order = append(order, "severed") })
	n.Defer(func() { order = append(order, "second") })
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"process", "second", "first"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
}
