package httpapi

import (
	"cmp"
	"context"
	"slices"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/store"
)

// Warm loads into the table cache the trials of the n most recently
// updated studies, one study after another, so that the first opening of
// one of them after the coordinator starts is answered from the cache
// instead of waiting for etcd's records to be read and decoded. A study
// warmed and then left unread is dropped like any other, 10 minutes on.
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
	for _, st := range studies[:min(n, len(studies))] {
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
