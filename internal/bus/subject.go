package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/api"
)

// Subjects. Request subjects are answered only by the leader coordinator.
const (
	// SubjectHeartbeat is the prefix of heartbeat subjects:
	// asymptote.hb.<node>.
	SubjectHeartbeat = "asymptote.hb"
	// SubjectAPI is the prefix of the client API: asymptote.api.<verb>.
	SubjectAPI = "asymptote.api"
	// SubjectEvents is the prefix of durable trial events:
	// asymptote.events.<study>.<trial>.<node>, <node> the sender's, so a
	// bus that lets an agent publish only under its own node (the agent
	// identity's permissions) tells the leader who sent an event.
	SubjectEvents = "asymptote.events"
	// SubjectStarted is the prefix of started events, which are not
	// durable: asymptote.started.<study>.<trial>.<node>. Losing one only leaves
	// the attempt shown as dispatched until its outcome arrives.
	SubjectStarted = "asymptote.started"
	// SubjectMetrics is the prefix of live metrics:
	// asymptote.metrics.<study>.<trial>.<node>, <node> the sender's, as
	// on event subjects (asymptote.metrics.<study>.<trial> before
	// senders were named, still in the history stream after an upgrade).
	SubjectMetrics = "asymptote.metrics"
	// SubjectNode is the prefix of per-node subjects:
	// asymptote.node.<node>.dispatch and asymptote.node.<node>.cancel.
	SubjectNode = "asymptote.node"
	// SubjectSLURMStatus is answered by every `asymptote slurm`
	// provisioner with its latest report (its queue's allocations and
	// why work waits); `asymptote status` gathers the answers.
	SubjectSLURMStatus = "asymptote.slurm.status"
)

// StreamEvents is the JetStream stream of trial events.
const StreamEvents = "ASYMPTOTE_EVENTS"

// ConsumerCoordinator is the durable consumer the leader reads events
// with; a new leader continues where the last one stopped.
const ConsumerCoordinator = "coordinator"

// HeartbeatSubject returns the subject node heartbeats on.
func HeartbeatSubject(node string) string { return SubjectHeartbeat + "." + node }

// DispatchSubject returns the subject a node receives dispatches on, as
// DispatchBatch requests.
func DispatchSubject(node string) string { return SubjectNode + "." + node + ".dispatch" }

// DrainSubject returns the subject a node is asked to drain on: the agent
// stops taking work, preempts what it runs, and exits (DrainReply).
func DrainSubject(node string) string { return SubjectNode + "." + node + ".drain" }

// CancelSubject returns the subject a node receives cancellations on.
func CancelSubject(node string) string { return SubjectNode + "." + node + ".cancel" }

// EventSubject returns the subject node sends a trial's durable events on.
func EventSubject(study, trial, node string) string {
	return SubjectEvents + "." + study + "." + trial + "." + node
}

// StartedSubject returns the subject node sends a trial's started events
// on.
func StartedSubject(study, trial, node string) string {
	return SubjectStarted + "." + study + "." + trial + "." + node
}

// Sender returns the node an event, started or metrics subject names as
// its sender, and false for a subject of the layout before senders were
// named (asymptote.events.<study>.<trial>, still in a stream after an
// upgrade).
func Sender(subject string) (string, bool) {
	parts := strings.Split(subject, ".")
	if len(parts) != 5 {
		return "", false
	}
	return parts[4], true
}

// MetricsSubject returns the subject node sends a trial's live metrics
// on.
func MetricsSubject(study, trial, node string) string {
	return SubjectMetrics + "." + study + "." + trial + "." + node
}

// SubjectTrial returns the trial a metrics, event or started subject
// names, in either layout, and false for a subject that names none.
func SubjectTrial(subject string) (string, bool) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 && len(parts) != 5 {
		return "", false
	}
	return parts[3], true
}

// AllHeartbeats matches every node's heartbeat subject.
const AllHeartbeats = SubjectHeartbeat + ".*"

// AllStarted matches the started events of every study.
const AllStarted = SubjectStarted + ".>"

// StudyMetrics matches the live metrics of every trial of a study, from
// every node, in both layouts.
func StudyMetrics(study string) string { return SubjectMetrics + "." + study + ".>" }

// APISubject returns the unscoped subject of a client API verb,
// asymptote.api.<verb>. It names no team and no identity: the leader takes
// a request there as the open bus's, for the default team on submit and
// for every team on reads (docs/security.md). A secured bus grants it to
// no one but the coordinator.
func APISubject(verb string) string { return SubjectAPI + "." + verb }

// TeamAPISubject returns the subject a team's identity calls verb on,
// asymptote.api.<verb>.<team>.<identity>. The bus lets each identity
// publish only under its own team and name, so the leader learns both
// from the subject, never from the request's body.
func TeamAPISubject(verb, team, identity string) string {
	return SubjectAPI + "." + verb + "." + team + "." + identity
}

// TeamAPISubjects matches every team-scoped subject of verb, for the
// leader's subscription.
func TeamAPISubjects(verb string) string { return SubjectAPI + "." + verb + ".*.*" }

// DefaultTeam is the team of a study submitted on an unscoped subject, and
// of a study recorded before teams existed.
const DefaultTeam = api.DefaultTeam

// AllTeams is the team token of an operator's requests: it reads and
// touches every team's studies. A secured bus grants it to the operator
// identity only.
const AllTeams = "_all"

// Caller is who made an API request, as its subject says.
type Caller struct {
	// Team is the caller's team; AllTeams for an operator, and empty
	// for an unscoped request (an open bus).
	Team string
	// Identity names the caller; empty for an unscoped request.
	Identity string
}

// Scoped reports whether the caller may see only one team's studies.
func (c Caller) Scoped() bool { return c.Team != "" && c.Team != AllTeams }

// Who names the caller for a record of what it did: the identity, or
// "anonymous" for an unscoped request.
func (c Caller) Who() string {
	if c.Identity == "" {
		return "anonymous"
	}
	return c.Identity
}

// ParseAPISubject returns the verb and the caller an API subject names:
// asymptote.api.<verb> (unscoped) or asymptote.api.<verb>.<team>.<identity>.
func ParseAPISubject(subject string) (string, Caller, error) {
	rest, ok := strings.CutPrefix(subject, SubjectAPI+".")
	if !ok {
		return "", Caller{}, fmt.Errorf("subject %q is not under %s", subject, SubjectAPI)
	}
	parts := strings.Split(rest, ".")
	switch {
	case len(parts) == 1 && parts[0] != "":
		return parts[0], Caller{}, nil
	case len(parts) == 3 && parts[0] != "" && parts[1] != "" && parts[2] != "":
		return parts[0], Caller{Team: parts[1], Identity: parts[2]}, nil
	}
	return "", Caller{}, fmt.Errorf("subject %q is neither %s.VERB nor %s.VERB.TEAM.IDENTITY", subject, SubjectAPI, SubjectAPI)
}

// ValidTeam reports whether name can name a team: a subject token that
// does not start with '_' (AllTeams is reserved).
func ValidTeam(name string) error {
	if err := ValidToken(name); err != nil {
		return err
	}
	if strings.HasPrefix(name, "_") {
		return fmt.Errorf("%q starts with '_', which is reserved (%s means every team)", name, AllTeams)
	}
	return nil
}

// ValidToken reports whether s can be used as one NATS subject token (node
// IDs, study names and trial IDs all are).
func ValidToken(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if strings.ContainsAny(s, ".*> \t\r\n") {
		return fmt.Errorf("%q contains one of '.', '*', '>' or whitespace", s)
	}
	return nil
}

// EventsDuplicateWindow is how long JetStream remembers event message IDs;
// an agent republishing an event within it is deduplicated by the server,
// and the coordinator's recording is idempotent beyond it.
const EventsDuplicateWindow = 10 * time.Minute

// EventsAckWait is how long the leader has to acknowledge an event. A
// leader that dies holds the events delivered to it but not yet
// acknowledged this long before its successor receives them.
const EventsAckWait = 10 * time.Second

// Declare creates or updates the events stream and the coordinator's
// durable consumer. It is idempotent and safe to run on every start.
func Declare(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Consumer, error) {
	if replicas < 1 {
		replicas = 1
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "asymptote trial events: attempts started and finished",
		Subjects:    []string{SubjectEvents + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  EventsDuplicateWindow,
		Replicas:    replicas,
		// No MaxAge and no size limit: an outcome leaves the stream only
		// when the leader has recorded it (work-queue retention), however
		// long that takes (a quarantined study, every coordinator down
		// for a week). An age limit dropped such outcomes unrecorded.
		MaxAge: 0,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: declare stream %s: %w", StreamEvents, err)
	}
	c, err := js.CreateOrUpdateConsumer(ctx, StreamEvents, jetstream.ConsumerConfig{
		Durable:       ConsumerCoordinator,
		Description:   "the leader coordinator records trial events",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       EventsAckWait,
		MaxAckPending: 20000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: declare consumer %s: %w", ConsumerCoordinator, err)
	}
	return c, nil
}
