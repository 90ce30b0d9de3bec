// Package store lays out the coordinator's state in etcd and writes it
// under the leader's fence.
//
// Keyspace (one key per trial, never a whole-study blob, so a study of
// 100,000 trials never meets etcd's 1.5 MiB request limit):
//
//	/asymptote/studies/<study>          api.Study
//	/asymptote/trials/<study>/<trial>   api.Trial
//	/asymptote/nodes/<node>             api.Node
//	/asymptote/leader/                  the leader election
//
// Every write is a transaction whose outer guard compares the leader key's
// create revision with the one this coordinator won: once leadership is
// lost, nothing it writes lands. Inside, each key is compared with the
// revision the leader last saw, so a write never silently replaces a value
// it did not read.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"asymptote.dev/asymptote/internal/api"
)

// Key prefixes.
const (
	Prefix         = "/asymptote/"
	StudyPrefix    = Prefix + "studies/"
	TrialPrefix    = Prefix + "trials/"
	NodePrefix     = Prefix + "nodes/"
	ElectionPrefix = Prefix + "leader"
)

// StudyKey returns the key of a study.
func StudyKey(name string) string { return StudyPrefix + name }

// TrialKey returns the key of a trial.
func TrialKey(study, id string) string { return TrialPrefix + study + "/" + id }

// NodeKey returns the key of a node.
func NodeKey(id string) string { return NodePrefix + id }

var (
	// ErrNotLeader means the leader fence failed: this coordinator no
	// longer holds leadership and must stop writing.
	ErrNotLeader = errors.New("store: not the leader")
	// ErrConflict means a key changed since the leader read it.
	ErrConflict = errors.New("store: key changed concurrently")
)

// MaxOpsPerTxn bounds the writes in one transaction, under etcd's default
// limit of 128 operations.
const MaxOpsPerTxn = 100

// Store reads and writes the coordinator's documents.
type Store struct {
	cli   *clientv3.Client
	fence []clientv3.Cmp
}

// New returns a store on cli. Its writes are unfenced until Fenced is used;
// only tests and tools write unfenced.
func New(cli *clientv3.Client) *Store { return &Store{cli: cli} }

// Fenced returns a store whose writes all require cmp (the leader fence).
func (s *Store) Fenced(cmp clientv3.Cmp) *Store {
	return &Store{cli: s.cli, fence: []clientv3.Cmp{cmp}}
}

// Client returns the etcd client.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Put is one write: Value (JSON-encoded) at Key, if the key's modification
// revision is still Rev. Rev 0 means the key must not exist.
type Put struct {
	Key   string
	Value any
	Rev   int64
	// Delete removes the key instead of writing Value.
	Delete bool
}

// Commit applies puts in transactions of at most MaxOpsPerTxn, several in
// flight at once, and returns each key's new revision in order. Writes in
// one transaction land together or not at all; a failed Commit may have
// applied earlier transactions, which the caller sees as the revisions it
// must re-read.
func (s *Store) Commit(ctx context.Context, puts []Put) ([]int64, error) {
	revs := make([]int64, len(puts))
	if len(puts) == 0 {
		return revs, nil
	}
	type chunk struct{ lo, hi int }
	var chunks []chunk
	for lo := 0; lo < len(puts); lo += MaxOpsPerTxn {
		chunks = append(chunks, chunk{lo, min(lo+MaxOpsPerTxn, len(puts))})
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 8)
	)
	for _, c := range chunks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rev, err := s.commitChunk(ctx, puts[c.lo:c.hi])
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			for i := c.lo; i < c.hi; i++ {
				revs[i] = rev
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		for _, e := range errs {
			if errors.Is(e, ErrNotLeader) {
				return revs, ErrNotLeader
			}
		}
		return revs, errors.Join(errs...)
	}
	return revs, nil
}

func (s *Store) commitChunk(ctx context.Context, puts []Put) (int64, error) {
	cmps := make([]clientv3.Cmp, 0, len(puts))
	ops := make([]clientv3.Op, 0, len(puts))
	for _, p := range puts {
		if p.Rev == 0 {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(p.Key), "=", 0))
		} else {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(p.Key), "=", p.Rev))
		}
		if p.Delete {
			ops = append(ops, clientv3.OpDelete(p.Key))
			continue
		}
		b, err := json.Marshal(p.Value)
		if err != nil {
			return 0, fmt.Errorf("store: encode %s: %w", p.Key, err)
		}
		ops = append(ops, clientv3.OpPut(p.Key, string(b)))
	}
	inner := clientv3.OpTxn(cmps, ops, nil)
	resp, err := s.cli.Txn(ctx).If(s.fence...).Then(inner).Commit()
	if err != nil {
		return 0, fmt.Errorf("store: commit %d keys: %w", len(puts), err)
	}
	if !resp.Succeeded {
		return 0, ErrNotLeader
	}
	if tr := resp.Responses[0].GetResponseTxn(); tr == nil || !tr.Succeeded {
		return 0, fmt.Errorf("%w (one of %d keys, first %s)", ErrConflict, len(puts), puts[0].Key)
	}
	return resp.Header.Revision, nil
}

// Versioned is a decoded document with its modification revision.
type Versioned[T any] struct {
	Value T
	Rev   int64
}

// listPage is how many keys one range read returns.
const listPage = 2000

// list decodes every document under prefix, paging through the range.
func list[T any](ctx context.Context, cli *clientv3.Client, prefix string, fn func(Versioned[T]) error) error {
	key := prefix
	end := clientv3.GetPrefixRangeEnd(prefix)
	for {
		resp, err := cli.Get(ctx, key, clientv3.WithRange(end), clientv3.WithLimit(listPage))
		if err != nil {
			return fmt.Errorf("store: list %s: %w", prefix, err)
		}
		for _, kv := range resp.Kvs {
			var v T
			if err := json.Unmarshal(kv.Value, &v); err != nil {
				return fmt.Errorf("store: decode %s: %w", kv.Key, err)
			}
			if err := fn(Versioned[T]{Value: v, Rev: kv.ModRevision}); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Studies calls fn for every study.
func (s *Store) Studies(ctx context.Context, fn func(Versioned[api.Study]) error) error {
	return list(ctx, s.cli, StudyPrefix, fn)
}

// Trials calls fn for every trial of every study.
func (s *Store) Trials(ctx context.Context, fn func(Versioned[api.Trial]) error) error {
	return list(ctx, s.cli, TrialPrefix, fn)
}

// StudyTrials calls fn for every trial of one study.
func (s *Store) StudyTrials(ctx context.Context, study string, fn func(Versioned[api.Trial]) error) error {
	return list(ctx, s.cli, TrialPrefix+study+"/", fn)
}

// Nodes calls fn for every node.
func (s *Store) Nodes(ctx context.Context, fn func(Versioned[api.Node]) error) error {
	return list(ctx, s.cli, NodePrefix, fn)
}
