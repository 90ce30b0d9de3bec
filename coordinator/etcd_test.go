package coordinator_test

import (
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func withPrefix() clientv3.OpOption { return clientv3.WithPrefix() }

func fenceOn(key string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), "=", rev)
}

// fmtSscanInterval reads the "95% interval (lo, hi)" a decision states.
func fmtSscanInterval(s string, lo, hi *float64) (int, error) {
	i := strings.Index(s, "interval (")
	if i < 0 {
		return 0, fmt.Errorf("no interval in %q", s)
	}
	return fmt.Sscanf(s[i:], "interval (%g, %g)", lo, hi)
}
