package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamHistory is the JetStream stream that keeps every metrics report,
// per study and trial (subjects asymptote.metrics.<study>.<trial>): the
// metric history that status, the HTTP API and the Python client read.
// Reports are kept on disk, replicated like the events, until the
// retention age passes or their study is deleted; downsampling is done on
// read, never by dropping reports.
const StreamHistory = "ASYMPTOTE_HISTORY"

// DefaultHistoryRetention is how long the history keeps a report unless
// the coordinator is told otherwise (-history-retention): 90 days.
const DefaultHistoryRetention = 90 * 24 * time.Hour

// DeclareHistory creates or updates the history stream. maxAge 0 keeps
// reports until their study is deleted.
func DeclareHistory(ctx context.Context, js jetstream.JetStream, replicas int, maxAge time.Duration) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamHistory,
		Description: "asymptote metric history: every report of every attempt",
		Subjects:    []string{SubjectMetrics + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  EventsDuplicateWindow,
		Replicas:    max(replicas, 1),
		MaxAge:      maxAge,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("bus: declare stream %s: %w", StreamHistory, err)
	}
	return nil
}

// MsgID is the report's JetStream message ID: an agent that republishes it
// is deduplicated by the server, and a reader drops a repeat beyond the
// server's window by (attempt, seq).
func (m *MetricsReport) MsgID() string {
	return "m/" + m.Study + "/" + m.Trial + "/" + strconv.Itoa(m.Attempt) + "/" + strconv.FormatInt(m.Seq, 10)
}

// PurgeHistory deletes a study's reports.
func PurgeHistory(ctx context.Context, js jetstream.JetStream, study string) error {
	s, err := js.Stream(ctx, StreamHistory)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.Purge(ctx, jetstream.WithPurgeSubject(SubjectMetrics+"."+study+".>"))
}

// History calls fn with every report kept for study, in the order they
// were stored, once each (a report stored twice, by an agent's retry past
// the server's duplicate window, is passed once). With trial set, only
// that trial's. It reads what the stream holds when it starts and needs
// no coordinator.
func History(ctx context.Context, js jetstream.JetStream, study, trial string, fn func(*MetricsReport) error) error {
	subject := SubjectMetrics + "." + study + ".>"
	if trial != "" {
		subject = MetricsSubject(study, trial)
	}
	s, err := js.Stream(ctx, StreamHistory)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil // nothing recorded yet
	}
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	var want uint64
	for _, n := range info.State.Subjects {
		want += n
	}
	if want == 0 {
		return nil
	}
	last := info.State.LastSeq
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	type key struct {
		trial   string
		attempt int
		seq     int64
	}
	seen := map[key]bool{}
	var got uint64
	for got < want {
		batch, err := c.Fetch(int(min(want-got, 10000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("history: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			got++
			meta, merr := msg.Metadata()
			var r MetricsReport
			if derr := Decode(msg.Data(), &r); derr == nil {
				k := key{r.Trial, r.Attempt, r.Seq}
				if r.Seq == 0 || !seen[k] {
					seen[k] = true
					if err := fn(&r); err != nil {
						return err
					}
				}
			}
			if merr == nil && meta.Sequence.Stream >= last {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("history: %w", err)
		}
		if n == 0 {
			return ctx.Err() // the stream shrank under us (retention): done
		}
	}
	return nil
}
