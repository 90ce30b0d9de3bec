package bus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
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
		Subjects:    []string{SubjectMetrics + ".>", SubjectCurves + ".>"},
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
	return errors.Join(
		s.Purge(ctx, jetstream.WithPurgeSubject(SubjectMetrics+"."+study+".>")),
		s.Purge(ctx, jetstream.WithPurgeSubject(SubjectCurves+"."+study+".>")))
}

// History calls fn with every report kept for study (with trial set,
// only that trial's), once each: a report stored twice, by an agent's
// retry past the server's duplicate window, is passed once. Within an
// attempt, reports come in the order they were made. It reads what the
// stream holds when it starts and needs no coordinator.
func History(ctx context.Context, js jetstream.JetStream, study, trial string, fn func(*MetricsReport) error) error {
	return HistoryChunks(ctx, js, study, trial, func(c *Curve, _ []byte) error {
		rs := c.Reports()
		for i := range rs {
			if err := fn(&rs[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// HistoryChunks is History by chunk: it reads the attempts' curve chunks
// in bulk first, passing each with its stored encoding, then, one trial at
// a time, the reports no chunk holds yet (attempts still running, or lost
// with their agent), each as a chunk of one report (raw nil). A bulk
// export forwards raw instead of encoding the reports again.
func HistoryChunks(ctx context.Context, js jetstream.JetStream, study, trial string, fn func(c *Curve, raw []byte) error) error {
	s, err := js.Stream(ctx, StreamHistory)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil // nothing recorded yet
	}
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	// A trial's reports are on one subject per node that ran it (and
	// on one without a node from before senders were named): the filter
	// takes the study's, and only the trial's subjects are read.
	curves, reports := []string{SubjectCurves + "." + study + ".>"}, StudyMetrics(study)
	if trial != "" {
		curves = trialCurves(study, trial)
	}
	type attempt struct {
		trial string
		n     int
	}
	type chunkKey struct {
		attempt
		chunk int
	}
	type reportKey struct {
		attempt
		seq int64
	}
	upTo := map[attempt]int64{} // the last seq the chunks hold
	complete := map[attempt]bool{}
	held := map[string]uint64{} // reports the chunks hold, by trial
	seenChunk := map[chunkKey]bool{}
	chunk := func(data []byte) error {
		var c Curve
		if Decode(data, &c) != nil {
			return nil // not a valid chunk: skip it
		}
		a := attempt{c.Trial, c.Attempt}
		if seenChunk[chunkKey{a, c.Chunk}] {
			return nil
		}
		seenChunk[chunkKey{a, c.Chunk}] = true
		if c.Len() > 0 {
			if err := fn(&c, data); err != nil {
				return err
			}
		}
		held[c.Trial] += uint64(c.Len())
		if last := c.First + int64(c.Len()) - 1; last > upTo[a] {
			upTo[a] = last
		}
		if c.Last {
			complete[a] = true
		}
		return nil
	}
	for _, f := range curves {
		if err := readSubject(ctx, s, f, chunk); err != nil {
			return err
		}
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(reports))
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	stored := map[string]uint64{} // reports, by trial, over its subjects
	var subjects []string
	for _, subj := range slices.Sorted(maps.Keys(info.State.Subjects)) {
		id, ok := SubjectTrial(subj)
		if !ok || trial != "" && id != trial {
			continue
		}
		stored[id] += info.State.Subjects[subj]
		subjects = append(subjects, subj)
	}
	for _, subj := range subjects {
		id, _ := SubjectTrial(subj)
		if stored[id] <= held[id] {
			continue // every report of the trial is in its chunks
		}
		seen := map[reportKey]bool{}
		err := readSubject(ctx, s, subj, func(data []byte) error {
			var r MetricsReport
			if Decode(data, &r) != nil {
				return nil
			}
			a := attempt{r.Trial, r.Attempt}
			if complete[a] || (r.Seq > 0 && r.Seq <= upTo[a]) {
				return nil
			}
			k := reportKey{a, r.Seq}
			if r.Seq > 0 && seen[k] {
				return nil
			}
			seen[k] = true
			b := NewCurveBuilder(r.AttemptRef)
			_ = b.Add(&r)
			c := b.flush(false)
			return fn(c, nil)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// readSubject passes the data of every message the stream holds on
// subject (a filter) when it starts, in order. A read that JetStream cuts
// short (a server restarting, a stream leader being elected) goes on from
// the message after the last one passed, until ctx ends; an error of fn
// ends it at once.
func readSubject(ctx context.Context, s jetstream.Stream, subject string, fn func([]byte) error) error {
	var r subjectRead
	progress := time.Now()
	for {
		got := r.got
		err := r.read(ctx, s, subject, fn)
		var fe fnError
		if err == nil || errors.As(err, &fe) {
			return errors.Unwrap(err)
		}
		if r.got > got {
			progress = time.Now()
		} else if time.Since(progress) > historyRetry {
			return fmt.Errorf("%w (no progress for %s)", err, historyRetry)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// historyRetry is how long readSubject retries a read that makes no
// progress.
const historyRetry = time.Minute

// fnError is the error of readSubject's fn, which is never retried.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }
func (e fnError) Unwrap() error { return e.err }

// subjectRead is where a read of one subject stands, across the
// consumers that a retry creates.
type subjectRead struct {
	started   bool
	want, got uint64 // the messages the subject held at the start; passed
	last      uint64 // the stream's last sequence at the start
	from      uint64 // the sequence to go on from; 0 before any message
}

// read reads on from where r stands, with one ordered consumer; it
// returns nil when every message is passed.
func (r *subjectRead) read(ctx context.Context, s jetstream.Stream, subject string, fn func([]byte) error) error {
	if !r.started {
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return fmt.Errorf("history: stream info: %w", err)
		}
		for _, n := range info.State.Subjects {
			r.want += n
		}
		r.last, r.started = info.State.LastSeq, true
	}
	if r.got >= r.want {
		return nil
	}
	// An ordered consumer retries its own creation without end unless
	// told to stop: a few tries, then this read starts a new one.
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy, MaxResetAttempts: 3}
	if r.from > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.from
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("history: create a consumer: %w", err)
	}
	for r.got < r.want {
		batch, err := c.Fetch(int(min(r.want-r.got, 10000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("history: fetch after %d of %d messages: %w", r.got, r.want, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			r.got++
			meta, merr := msg.Metadata()
			if merr == nil {
				r.from = meta.Sequence.Stream + 1
			}
			if err := fn(msg.Data()); err != nil {
				return fnError{err}
			}
			if merr == nil && meta.Sequence.Stream >= r.last {
				r.got = r.want
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("history: fetch after %d of %d messages: %w", r.got, r.want, err)
		}
		if n == 0 {
			// Nothing came although the subject held more: either the
			// stream shrank under us (retention), and what is left is
			// read, or the server could not deliver yet (a stream
			// leader catching up after a restart), and the read goes on.
			info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
			if err != nil {
				return fmt.Errorf("history: stream info: %w", err)
			}
			var held uint64
			for _, k := range info.State.Subjects {
				held += k
			}
			if held < r.want {
				return nil
			}
			return fmt.Errorf("history: no message came after %d of %d, and the stream holds them", r.got, r.want)
		}
	}
	return nil
}
