package coordinator

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSchedule times one scheduling turn that fills 64 agents of 16
// slots from 200 studies of 50 trials: all of one team, and spread over
// four teams, one of them at a quota.
func BenchmarkSchedule(b *testing.B) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	setup := func(b *testing.B, teams int) *leaderState {
		l := offline(b)
		if teams > 1 {
			l.cfg.Quotas = map[string]Quota{"t0": {Trials: 100}, "t1": {Weight: 2}}
		}
		for i := range 64 {
			l.heartbeat(fmt.Sprintf("n%02d", i), 16, 64<<30, 0, nil, now)
		}
		for i := range 200 {
			s := l.addStudy(b, studySpec(fmt.Sprintf("s%03d", i), 50, "{cpu: 1, memory: 16MiB}"), i%3, now)
			if teams > 1 {
				s.rec.Team = fmt.Sprintf("t%d", i%teams)
			}
		}
		return l
	}
	for _, teams := range []int{1, 4} {
		b.Run(fmt.Sprintf("teams=%d", teams), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				l := setup(b, teams)
				b.StartTimer()
				l.schedule(now)
				if n := len(l.dirtyTrials); n != 64*16 {
					b.Fatalf("placed %d, want %d", n, 64*16)
				}
			}
		})
	}
}
