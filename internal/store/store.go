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
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"asymptote.dev/asymptote/internal/api"
)

// Key prefixes.
const (
	Prefix      = "/asymptote/"
	StudyPrefix = Prefix + "studies/"
	TrialPrefix = Prefix + "trials/"
	NodePrefix  = Prefix + "nodes/"
	// QuarantinePrefix holds one small record per quarantined study,
	// apart from the study's own record, so that quarantining a study
	// whose record cannot be written still lands.
	QuarantinePrefix = Prefix + "quarantine/"
	// OrphanPrefix holds the trial events the leader could not apply.
	OrphanPrefix   = Prefix + "orphans/"
	ElectionPrefix = Prefix + "leader"
	// AllowlistKey holds the cluster's allowlist of external methods and
	// programs, one record.
	AllowlistKey = Prefix + "allowlist"
)

// OrphanKey returns the key of a kept event, one per event (its message ID).
func OrphanKey(msgID string) string { return OrphanPrefix + msgID }

// QuarantineKey returns the key of a study's quarantine record.
func QuarantineKey(study string) string { return QuarantinePrefix + study }

// StudyOf returns the study a study, trial or quarantine key belongs to,
// or "" for any other key.
func StudyOf(key string) string {
	for _, p := range []string{StudyPrefix, QuarantinePrefix} {
		if name, ok := strings.CutPrefix(key, p); ok {
			return name
		}
	}
	if rest, ok := strings.CutPrefix(key, TrialPrefix); ok {
		name, _, _ := strings.Cut(rest, "/")
		return name
	}
	return ""
}

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

// DefaultMaxRequestBytes is etcd's default limit on one request
// (--max-request-bytes, 1.5 MiB). A transaction is filled to at most
// RequestBytes less txnOverhead, and one record may take all of that.
const DefaultMaxRequestBytes = 1536 << 10

// txnOverhead is the room kept in each request for the fence, the
// comparisons and the protobuf framing.
const txnOverhead = 64 << 10

// ErrRejected marks a write that can never succeed as it is: a value that
// cannot be encoded, or one too large for etcd. Retrying it is useless;
// the caller refuses the input it came from or quarantines its study.
var ErrRejected = errors.New("store: write rejected")

// Rejected is one write that can never succeed as it is.
type Rejected struct {
	// Index is the put's position in the Commit call.
	Index int
	Key   string
	// Reason says why, with the limit where a limit was passed.
	Reason string
}

// RejectedError lists the puts of a Commit that can never be written as
// they are. Every put it does not list has landed.
type RejectedError struct{ Puts []Rejected }

func (e *RejectedError) Error() string {
	parts := make([]string, 0, min(len(e.Puts), 3))
	for _, r := range e.Puts[:min(len(e.Puts), 3)] {
		parts = append(parts, r.Key+": "+r.Reason)
	}
	more := ""
	if len(e.Puts) > 3 {
		more = fmt.Sprintf(" (and %d more)", len(e.Puts)-3)
	}
	return fmt.Sprintf("store: %d write(s) rejected: %s%s", len(e.Puts), strings.Join(parts, "; "), more)
}

// Unwrap makes errors.Is(err, ErrRejected) true.
func (e *RejectedError) Unwrap() error { return ErrRejected }

// Store reads and writes the coordinator's documents.
type Store struct {
	cli   *clientv3.Client
	fence []clientv3.Cmp
	// maxRequest is the etcd server's request limit.
	maxRequest int
	// attempt bounds each transaction (0: only the caller's context).
	attempt time.Duration
}

// WithAttemptTimeout returns a store whose every transaction gives up
// after d: etcd drops the proposals in flight when its leader changes,
// and the client then waits for the server's request timeout (about 7 s)
// before it learns so. Whether a transaction that timed out landed is not
// known; ModRevisions tells.
func (s *Store) WithAttemptTimeout(d time.Duration) *Store {
	c := *s
	c.attempt = d
	return &c
}

// New returns a store on cli. Its writes are unfenced until Fenced is used;
// only tests and tools write unfenced.
func New(cli *clientv3.Client) *Store { return &Store{cli: cli, maxRequest: DefaultMaxRequestBytes} }

// Fenced returns a store whose writes all require cmp (the leader fence).
func (s *Store) Fenced(cmp clientv3.Cmp) *Store {
	return &Store{cli: s.cli, fence: []clientv3.Cmp{cmp}, maxRequest: s.maxRequest, attempt: s.attempt}
}

// WithMaxRequestBytes returns a store for an etcd server whose request
// limit (--max-request-bytes) is n bytes; n <= 0 keeps the default.
func (s *Store) WithMaxRequestBytes(n int) *Store {
	c := *s
	if n > 0 {
		c.maxRequest = n
	}
	return &c
}

// MaxRecordBytes is the largest encoded record (key and value) this store
// writes: one transaction's room.
func (s *Store) MaxRecordBytes() int { return max(s.maxRequest-txnOverhead, s.maxRequest/2) }

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

// encoded is a put ready to send: its value's bytes and its size.
type encoded struct {
	Put
	index int
	value string
}

func (e encoded) size() int { return len(e.Key) + len(e.value) }

// Check encodes puts and reports, without writing anything, the ones that
// can never be written: a value that cannot be encoded as JSON (a NaN or
// an infinity, say) or a record larger than MaxRecordBytes. It returns nil
// when every put can be written.
func (s *Store) Check(puts []Put) *RejectedError {
	_, rej := s.encode(puts)
	return rej
}

func (s *Store) encode(puts []Put) ([]encoded, *RejectedError) {
	out := make([]encoded, 0, len(puts))
	var rej []Rejected
	limit := s.MaxRecordBytes()
	for i, p := range puts {
		e := encoded{Put: p, index: i}
		if !p.Delete {
			b, err := json.Marshal(p.Value)
			if err != nil {
				rej = append(rej, Rejected{Index: i, Key: p.Key, Reason: fmt.Sprintf("cannot be encoded: %v", err)})
				continue
			}
			e.value = string(b)
		}
		if n := e.size(); n > limit {
			rej = append(rej, Rejected{Index: i, Key: p.Key, Reason: fmt.Sprintf("the record is %d bytes, over the limit of %d (etcd's request limit, %d bytes, less room for the transaction)", n, limit, s.maxRequest)})
			continue
		}
		out = append(out, e)
	}
	if len(rej) > 0 {
		return out, &RejectedError{Puts: rej}
	}
	return out, nil
}

// Commit applies puts in transactions of at most MaxOpsPerTxn writes and
// the server's request limit in bytes, several in flight at once, and
// returns each key's new revision in order. Writes in one transaction land
// together or not at all; a failed Commit may have applied earlier
// transactions, which the caller sees as the revisions it must re-read.
//
// A put that can never be written as it is (see Check) is left out, and
// the others are written: Commit then returns a *RejectedError (which
// matches ErrRejected) that names it, and every other put has landed. So
// one bad record never blocks a batch that holds other records.
func (s *Store) Commit(ctx context.Context, puts []Put) ([]int64, error) {
	revs := make([]int64, len(puts))
	if len(puts) == 0 {
		return revs, nil
	}
	good, rej := s.encode(puts)
	var chunks [][]encoded
	for lo := 0; lo < len(good); {
		hi, bytes := lo, 0
		for hi < len(good) && hi-lo < MaxOpsPerTxn && (hi == lo || bytes+good[hi].size() <= s.MaxRecordBytes()) {
			bytes += good[hi].size()
			hi++
		}
		chunks = append(chunks, good[lo:hi])
		lo = hi
	}
	var (
		mu       sync.Mutex
		errs     []error
		rejected []Rejected
		wg       sync.WaitGroup
		sem      = make(chan struct{}, 8)
	)
	if rej != nil {
		rejected = rej.Puts
	}
	for _, c := range chunks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := s.commitSplitting(ctx, c, revs)
			mu.Lock()
			defer mu.Unlock()
			rejected = append(rejected, r...)
			if err != nil {
				errs = append(errs, err)
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
	if len(rejected) > 0 {
		slices.SortFunc(rejected, func(a, b Rejected) int { return a.Index - b.Index })
		return revs, &RejectedError{Puts: rejected}
	}
	return revs, nil
}

// commitSplitting commits one chunk; if the server finds it too large
// (its limit is below the one this store was told), it halves the chunk
// until a single record is left, which is then rejected.
func (s *Store) commitSplitting(ctx context.Context, c []encoded, revs []int64) ([]Rejected, error) {
	rev, err := s.commitChunk(ctx, c)
	if err == nil {
		for _, e := range c {
			revs[e.index] = rev
		}
		return nil, nil
	}
	if !TooLarge(err) {
		return nil, err
	}
	if len(c) == 1 {
		return []Rejected{{Index: c[0].index, Key: c[0].Key, Reason: fmt.Sprintf("the record is %d bytes, too large for the etcd server (%v); raise its --max-request-bytes or make the record smaller", c[0].size(), err)}}, nil
	}
	mid := len(c) / 2
	r1, err := s.commitSplitting(ctx, c[:mid], revs)
	if err != nil {
		return r1, err
	}
	r2, err := s.commitSplitting(ctx, c[mid:], revs)
	return append(r1, r2...), err
}

// ModRevisions returns each key's modification revision, 0 for a key that
// does not exist. The leader reads them after a commit whose outcome it
// does not know (a timeout, a lost connection): as the only writer, it
// finds in them which of its writes landed.
func (s *Store) ModRevisions(ctx context.Context, keys []string) ([]int64, error) {
	revs := make([]int64, len(keys))
	for lo := 0; lo < len(keys); lo += MaxOpsPerTxn {
		hi := min(lo+MaxOpsPerTxn, len(keys))
		ops := make([]clientv3.Op, 0, hi-lo)
		for _, k := range keys[lo:hi] {
			ops = append(ops, clientv3.OpGet(k, clientv3.WithKeysOnly()))
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("store: read %d revisions: %w", hi-lo, err)
		}
		for i, r := range resp.Responses {
			if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
				revs[lo+i] = kvs[0].ModRevision
			}
		}
	}
	return revs, nil
}

// TooLarge reports whether err is etcd's or the client's refusal of a
// request for its size: the same request will fail again.
func TooLarge(err error) bool {
	if errors.Is(err, rpctypes.ErrRequestTooLarge) || errors.Is(err, rpctypes.ErrGRPCRequestTooLarge) {
		return true
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max") {
		return true
	}
	return strings.Contains(err.Error(), "request is too large") || strings.Contains(err.Error(), "message larger than max")
}

func (s *Store) commitChunk(ctx context.Context, puts []encoded) (int64, error) {
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
		ops = append(ops, clientv3.OpPut(p.Key, p.value))
	}
	inner := clientv3.OpTxn(cmps, ops, nil)
	if s.attempt > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.attempt)
		defer cancel()
	}
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
const listPage = 5000

// Undecodable lists the records a read could not decode; the read visited
// every other record.
type Undecodable struct{ Keys map[string]error }

func (e *Undecodable) Error() string {
	for k, err := range e.Keys {
		more := ""
		if len(e.Keys) > 1 {
			more = fmt.Sprintf(" (and %d more)", len(e.Keys)-1)
		}
		return fmt.Sprintf("store: cannot decode %s: %v%s", k, err, more)
	}
	return "store: cannot decode records"
}

// list decodes every document under prefix, paging through the range. A
// record that does not decode is skipped and named in the *Undecodable
// error returned after every other record was visited, so one corrupt
// record cannot hide the rest.
func list[T any](ctx context.Context, cli *clientv3.Client, prefix string, fn func(Versioned[T]) error) error {
	return listKeyed(ctx, cli, prefix, func(_ string, v Versioned[T]) error { return fn(v) })
}

// listKeyed is list with each record's key. It reads the next page while
// it decodes the current one, on every core, then calls fn in key order.
func listKeyed[T any](ctx context.Context, cli *clientv3.Client, prefix string, fn func(string, Versioned[T]) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type page struct {
		kvs []*mvccpb.KeyValue
		err error
	}
	pages := make(chan page, 1)
	go func() {
		defer close(pages)
		key, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
		for {
			resp, err := cli.Get(ctx, key, clientv3.WithRange(end), clientv3.WithLimit(listPage))
			p := page{err: err}
			if err != nil {
				p.err = fmt.Errorf("store: list %s: %w", prefix, err)
			} else {
				p.kvs = resp.Kvs
			}
			// Never block once the reader has gone (it returned early).
			select {
			case pages <- p:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
			if !resp.More || len(resp.Kvs) == 0 {
				return
			}
			key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}()
	var bad *Undecodable
	workers := runtime.GOMAXPROCS(0)
	for p := range pages {
		if p.err != nil {
			return p.err
		}
		vals := make([]T, len(p.kvs))
		errs := make([]error, len(p.kvs))
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(p.kvs); i += workers {
					errs[i] = json.Unmarshal(p.kvs[i].Value, &vals[i])
				}
			})
		}
		wg.Wait()
		for i, kv := range p.kvs {
			if errs[i] != nil {
				if bad == nil {
					bad = &Undecodable{Keys: map[string]error{}}
				}
				bad.Keys[string(kv.Key)] = errs[i]
				continue
			}
			if err := fn(string(kv.Key), Versioned[T]{Value: vals[i], Rev: kv.ModRevision}); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if bad != nil {
		return bad
	}
	return nil
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

// Orphans calls fn for every kept event, with its key.
func (s *Store) Orphans(ctx context.Context, fn func(key string, v Versioned[api.Orphan]) error) error {
	return listKeyed(ctx, s.cli, OrphanPrefix, fn)
}

// Quarantines calls fn for every quarantine record.
func (s *Store) Quarantines(ctx context.Context, fn func(Versioned[api.Quarantine]) error) error {
	return list(ctx, s.cli, QuarantinePrefix, fn)
}

// Allowlist reads the cluster's allowlist; its Rev is 0 when there is none.
func (s *Store) Allowlist(ctx context.Context) (Versioned[api.Allowlist], error) {
	var out Versioned[api.Allowlist]
	err := list(ctx, s.cli, AllowlistKey, func(v Versioned[api.Allowlist]) error {
		out = v
		return nil
	})
	return out, err
}

// DeleteStudy removes a study's record, its quarantine record and every
// one of its trials in one fenced transaction.
func (s *Store) DeleteStudy(ctx context.Context, study string) error {
	resp, err := s.cli.Txn(ctx).If(s.fence...).Then(
		clientv3.OpDelete(StudyKey(study)),
		clientv3.OpDelete(QuarantineKey(study)),
		clientv3.OpDelete(TrialPrefix+study+"/", clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return fmt.Errorf("store: delete study %s: %w", study, err)
	}
	if !resp.Succeeded {
		return ErrNotLeader
	}
	return nil
}
