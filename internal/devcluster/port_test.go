package devcluster

import (
	"errors"
	"fmt"
	"net"
	"testing"
)

// TestAddrInUse: a listener's error on a taken port is what startEtcd
// picks a new port for, wrapped or not; other errors are not.
func TestAddrInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, taken := net.Listen("tcp", l.Addr().String())
	if taken == nil {
		t.Fatal("a second listener on a taken port succeeded")
	}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{taken, true},
		{fmt.Errorf("devcluster: start etcd: %w", taken), true},
		{errors.New("listen tcp 127.0.0.1:34061: bind: address already in use"), true}, // as etcd words it, unwrapped
		{errors.New("etcd: member has already been bootstrapped"), false},
	} {
		if got := addrInUse(tt.err); got != tt.want {
			t.Errorf("addrInUse(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
