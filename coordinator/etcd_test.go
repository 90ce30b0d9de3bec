package coordinator_test

import (
	clientv3 "go.etcd.io/etcd/client/v3"
)

func withPrefix() clientv3.OpOption { return clientv3.WithPrefix() }

func fenceOn(key string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), "=", rev)
}
