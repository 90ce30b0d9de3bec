package bus_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
)

// historyServer answers the history verb of team t's identity "reader"
// with answer, as a leader would once its checks passed.
func historyServer(t *testing.T, nc *nats.Conn, answer func(m *nats.Msg)) {
	t.Helper()
	sub, err := nc.Subscribe(bus.TeamAPISubject(api.VerbHistory, "t", "reader"), answer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func reader(t *testing.T, nc *nats.Conn, timeout time.Duration) *bus.Client {
	t.Helper()
	c, err := bus.NewClient(nc, timeout).As("t", "reader")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestHistoryThroughTheLeader: a history read through the leader passes
// every report the stream read passes, chunks and lone reports alike, for
// a study and for one trial of it.
func TestHistoryThroughTheLeader(t *testing.T) {
	js := historyJS(t)
	nc := js.Conn()
	for _, trial := range []string{"t1", "t2"} {
		// Attempt 1 is in a finished chunk; attempt 2 still runs, and
		// only its reports hold its curve.
		for attempt := 1; attempt <= 2; attempt++ {
			ref := bus.AttemptRef{Study: "s", Trial: trial, Attempt: attempt}
			b := bus.NewCurveBuilder(ref)
			for seq := int64(1); seq <= 4; seq++ {
				r := &bus.MetricsReport{AttemptRef: ref, Seq: seq, Step: seq, Values: map[string]float64{"loss": float64(seq)}, Time: time.Now()}
				publishReport(t, js, r, r.MsgID())
				_ = b.Add(r)
			}
			if attempt == 1 {
				c := b.Finish()
				if _, err := js.Publish(t.Context(), bus.CurveSubject("s", trial, "n1"), bus.Encode(c)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	historyServer(t, nc, func(m *nats.Msg) {
		var req api.HistoryRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			t.Error(err)
			return
		}
		if err := bus.ServeHistory(t.Context(), nc, js, m.Reply, req.Study, req.Trial); err != nil {
			t.Error(err)
		}
	})
	c := reader(t, nc, 5*time.Second)
	for _, trial := range []string{"", "t2"} {
		var direct, leader []string
		if err := bus.History(t.Context(), js, "s", trial, func(r *bus.MetricsReport) error {
			direct = append(direct, fmt.Sprintf("%s/%d/%d", r.Trial, r.Attempt, r.Step))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := c.History(t.Context(), "s", trial, func(cv *bus.Curve) error {
			for _, r := range cv.Reports() {
				leader = append(leader, fmt.Sprintf("%s/%d/%d", r.Trial, r.Attempt, r.Step))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want := 16
		if trial != "" {
			want = 8
		}
		if len(direct) != want || strings.Join(leader, " ") != strings.Join(direct, " ") {
			t.Errorf("trial %q: through the leader %v, from the stream %v (want %d reports)", trial, leader, direct, want)
		}
	}
}

// TestHistoryReplyChecks: a reply that lost a chunk, or whose end counts
// other chunks than came, fails the read with what to do; the leader's
// refusal is its error as it wrote it; with no leader the read ends
// with ErrNoLeader.
func TestHistoryReplyChecks(t *testing.T) {
	nc := historyJS(t).Conn()
	chunk := bus.Encode(bus.NewCurveBuilder(bus.AttemptRef{Study: "s", Trial: "t1", Attempt: 1}).Finish())
	send := func(m *nats.Msg, seq int) {
		_ = nc.PublishMsg(&nats.Msg{Subject: m.Reply, Header: nats.Header{api.HistorySeqHeader: []string{strconv.Itoa(seq)}}, Data: chunk})
	}
	tests := []struct {
		name   string
		answer func(m *nats.Msg)
		want   string
	}{
		{"a chunk lost", func(m *nats.Msg) {
			send(m, 1)
			send(m, 3)
			_ = bus.EndHistory(nc, m.Reply, 3, nil)
		}, `history: chunk "3" of study s's history came after chunk 1: one was lost on the way; read it again`},
		{"the end counts more", func(m *nats.Msg) {
			send(m, 1)
			_ = bus.EndHistory(nc, m.Reply, 2, nil)
		}, "history: the leader sent 2 chunks of study s's history and 1 arrived; read it again"},
		{"refused", func(m *nats.Msg) {
			_ = m.Respond(api.EncodeReply(nil, errors.New(`no study named "s"`)))
		}, `no study named "s"`},
		{"stopped", func(m *nats.Msg) {
			send(m, 1)
			_ = bus.EndHistory(nc, m.Reply, 1, errors.New("history: stream unavailable"))
		}, "history: stream unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			historyServer(t, nc, tt.answer)
			err := reader(t, nc, 5*time.Second).History(t.Context(), "s", "", func(*bus.Curve) error { return nil })
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("no leader", func(t *testing.T) {
		err := reader(t, nc, 500*time.Millisecond).History(t.Context(), "s", "", func(*bus.Curve) error { return nil })
		if !errors.Is(err, bus.ErrNoLeader) {
			t.Errorf("got %v, want ErrNoLeader", err)
		}
	})
}
