package httpapi

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/store"
)

// Warm loads into the table cache the trials of every study still being
// written (submitting or active) and of the n most recently updated
// others, one study after another, most recently updated first, so that
// the first opening of one of them after the coordinator starts is
// answered from the cache instead of waiting for etcd's records to be
// read and decoded. (Follow takes a study up when its record is written,
// which a running study's is not for every trial.) A study warmed and
// then neither read nor written is dropped like any other once it has
// finished, 10 minutes on.
// A failure is logged, never returned: the cache then loads on the first
// read as it would have. It returns the studies it loaded, once the
// loads are done or ctx ends.
func (s *Server) Warm(ctx context.Context, n int) []string {
	var studies []api.Study
	err := s.store.Studies(ctx, func(v store.Versioned[api.Study]) error {
		studies = append(studies, v.Value)
		return nil
	})
	if err != nil {
		s.log.Warn("trial cache: studies to warm", "error", err)
		return nil
	}
	var warm []string
	slices.SortFunc(studies, func(a, b api.Study) int { return cmp.Or(b.Updated.Compare(a.Updated), cmp.Compare(a.Name, b.Name)) })
	others := 0
	for _, st := range studies {
		if !st.State.Running() {
			if others >= n {
				continue
			}
			others++
		}
		c := s.cache.study(st.Name)
		select {
		case <-c.ready:
			if c.err != nil {
				s.log.Warn("trial cache: warm", "study", st.Name, "error", c.err)
				continue
			}
			warm = append(warm, st.Name)
		case <-ctx.Done():
			return warm
		}
	}
	return warm
}

// Follow keeps in the table cache every study whose record is written
// while ctx lasts (a study submitted or extended, or changing state),
// from that write on, so that the first opening of a study being
// recorded is answered from the cache too: a study submitted after the
// server started is read from etcd when it is submitted, with the trials
// written by then, and follows every trial written after. A study stays
// while it runs and while it is read or written; a finished one is
// dropped 10 minutes (Config.TableIdle) after both have stopped, a
// deleted one at once. It follows the studies
// written from etcd revision from on (0: from when it is called). Follow
// returns when ctx ends; a watch that fails is opened again a second
// later, from the revision it had reached.
func (s *Server) Follow(ctx context.Context, from int64) {
	for ctx.Err() == nil {
		if from <= 0 {
			// Fix the starting point, so that a watch that fails
			// before its first event misses nothing either.
			resp, err := s.cfg.Etcd.Get(ctx, store.StudyPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err == nil {
				from = resp.Header.Revision + 1
			}
		}
		from = s.followStudies(ctx, from)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// followStudies is one watch of Follow's, from revision from, until it
// ends; it returns the revision to go on from.
func (s *Server) followStudies(ctx context.Context, from int64) int64 {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if from > 0 {
		opts = append(opts, clientv3.WithRev(from))
	}
	for resp := range s.cfg.Etcd.Watch(clientv3.WithRequireLeader(ctx), store.StudyPrefix, opts...) {
		if err := resp.Err(); err != nil {
			s.log.Debug("trial cache: study watch ended", "error", err)
			if resp.CompactRevision > 0 {
				return resp.CompactRevision
			}
			return from
		}
		for _, ev := range resp.Events {
			from = ev.Kv.ModRevision + 1
			name := strings.TrimPrefix(string(ev.Kv.Key), store.StudyPrefix)
			if ev.Type == clientv3.EventTypeDelete {
				s.cache.forget(name)
				continue
			}
			s.cache.study(name)
		}
	}
	return from
}
