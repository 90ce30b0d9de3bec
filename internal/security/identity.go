package security

import (
	"fmt"
	"slices"
	"strings"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
)

// Role is what an identity does in a deployment.
type Role string

// The roles, from most to least rights.
const (
	// RoleCoordinator is the only etcd client and has every bus right:
	// it leads, records, dispatches and serves the HTTP API.
	RoleCoordinator Role = "coordinator"
	// RoleOperator may call every API verb (quarantine, resume and
	// delete besides a submitter's) and drain agents.
	RoleOperator Role = "operator"
	// RoleSubmitter may submit, cancel, and read status and results.
	RoleSubmitter Role = "submitter"
	// RoleViewer may read status and results only.
	RoleViewer Role = "viewer"
	// RoleAgent receives its own node's dispatches, cancellations and
	// drains, and publishes heartbeats for its own node and trial events.
	RoleAgent Role = "agent"
)

// Identity is one credential of a deployment.
type Identity struct {
	// Name names the identity's files and its inbox: coordinator,
	// operator, submitter, viewer, or agent-NODE for an agent.
	Name string
	Role Role
	// Node is an agent's node ID.
	Node string
	// Team is a submitter's or viewer's team (bus.DefaultTeam for the
	// fixed submitter and viewer), and bus.AllTeams for the operator:
	// the identity may call the API only on its team's subjects.
	Team string
}

// Agent returns the identity of the agent with node ID node.
func Agent(node string) (Identity, error) {
	if err := bus.ValidToken(node); err != nil {
		return Identity{}, fmt.Errorf("agent node ID %q: %w (it names NATS subjects); give a name such as gpu-01", node, err)
	}
	return Identity{Name: "agent-" + node, Role: RoleAgent, Node: node}, nil
}

// fixedIdentities are the identities every deployment has.
var fixedIdentities = []Identity{
	{Name: "coordinator", Role: RoleCoordinator},
	{Name: "operator", Role: RoleOperator, Team: bus.AllTeams},
	{Name: "submitter", Role: RoleSubmitter, Team: bus.DefaultTeam},
	{Name: "viewer", Role: RoleViewer, Team: bus.DefaultTeam},
}

// Team returns the submitter and viewer identities of team, named
// submitter-TEAM and viewer-TEAM; the default team's are the fixed
// submitter and viewer.
func Team(team string) ([]Identity, error) {
	if err := bus.ValidTeam(team); err != nil {
		return nil, fmt.Errorf("team %q: %w (it names NATS subjects); give a name such as vision", team, err)
	}
	if team == bus.DefaultTeam {
		return nil, fmt.Errorf("team %q: the default team's identities are always written, as submitter and viewer; give the other teams", team)
	}
	return []Identity{
		{Name: "submitter-" + team, Role: RoleSubmitter, Team: team},
		{Name: "viewer-" + team, Role: RoleViewer, Team: team},
	}, nil
}

// Inbox is the prefix of the identity's reply subjects (-nats-inbox):
// the server lets it receive replies there and nowhere else.
func (id Identity) Inbox() string { return "_INBOX." + id.Name }

// Permissions are the subjects an identity may publish to and subscribe
// to, and whether it may reply to requests it received.
type Permissions struct {
	Publish, Subscribe []string
	// Responses lets the identity publish one reply to each request it
	// received, on the requester's reply subject (NATS allow_responses).
	Responses bool
}

// historyReads are the JetStream API subjects that reading a study's
// metric history straight from its stream (results --history, fit
// --study, on an open bus; only the operator may on a secured one) and the
// events backlog (status) use: stream info, ordered consumers that are created, fetched
// from and deleted, and the leader's consumer's info. Nothing here writes
// or deletes stored messages.
var historyReads = []string{
	"$JS.API.STREAM.INFO." + bus.StreamHistory,
	"$JS.API.CONSUMER.CREATE." + bus.StreamHistory,
	"$JS.API.CONSUMER.CREATE." + bus.StreamHistory + ".>",
	"$JS.API.CONSUMER.MSG.NEXT." + bus.StreamHistory + ".>",
	"$JS.API.CONSUMER.DELETE." + bus.StreamHistory + ".>",
	backlogRead,
}

// backlogRead is the leader's consumer's info, whose pending count status
// shows as the events backlog; it names no study.
const backlogRead = "$JS.API.CONSUMER.INFO." + bus.StreamEvents + "." + bus.ConsumerCoordinator

// CheckpointBucket is internal/checkpoint's DefaultBucket (a test keeps
// them equal): importing that package here would make a cycle through
// the embedded servers in its tests.
const CheckpointBucket = "asymptote-checkpoints"

// checkpointStore is what an agent needs of the JetStream object store
// that keeps checkpoints (internal/checkpoint): publish chunks and
// metadata, read them back (stream info, direct gets, ordered consumers
// and their flow control) and purge an object's old chunks. The
// coordinator creates the bucket; an agent cannot create or delete
// streams.
var checkpointStore = func() []string {
	stream := "OBJ_" + CheckpointBucket
	return []string{
		"$O." + CheckpointBucket + ".>",
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.STREAM.MSG.GET." + stream,
		"$JS.API.DIRECT.GET." + stream,
		"$JS.API.DIRECT.GET." + stream + ".>",
		"$JS.API.STREAM.PURGE." + stream,
		"$JS.API.CONSUMER.CREATE." + stream,
		"$JS.API.CONSUMER.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.INFO." + stream + ".>",
		"$JS.API.CONSUMER.DELETE." + stream + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + stream + ".>",
		"$JS.FC." + stream + ".>",
	}
}()

// apiVerbs are the identity's own subjects of the verbs: under its team
// and its name, so the leader learns both from the subject.
func (id Identity) apiVerbs(verbs ...string) []string {
	out := make([]string, len(verbs))
	for i, v := range verbs {
		out[i] = bus.TeamAPISubject(v, id.Team, id.Name)
	}
	return out
}

// Permissions returns what the identity may do on the bus, derived from
// the subjects in internal/bus.
func (id Identity) Permissions() Permissions {
	inbox := []string{id.Inbox() + ".>"}
	switch id.Role {
	case RoleCoordinator:
		return Permissions{Publish: []string{">"}, Subscribe: []string{">"}}
	case RoleOperator:
		// The operator also runs `asymptote slurm`, which answers the
		// provisioners' status subject, and asks it (`asymptote slurm
		// status`).
		pub := append(id.apiVerbs(api.Verbs...), bus.DrainSubject("*"), bus.SubjectSLURMStatus)
		return Permissions{Publish: append(pub, historyReads...), Subscribe: append(inbox, bus.SubjectSLURMStatus)}
	case RoleSubmitter:
		// A team's identities read the history through the leader
		// (api.VerbHistory), which checks the study's team: the stream
		// holds every team's.
		pub := id.apiVerbs(api.VerbSubmit, api.VerbCancel, api.VerbStatus, api.VerbResults, api.VerbHistory)
		return Permissions{Publish: append(pub, backlogRead), Subscribe: inbox}
	case RoleViewer:
		pub := id.apiVerbs(api.VerbStatus, api.VerbResults, api.VerbHistory)
		return Permissions{Publish: append(pub, backlogRead), Subscribe: inbox}
	case RoleAgent:
		// Event and metrics subjects end with the sender's node: an
		// agent publishes only under its own, and the leader refuses an
		// event whose body claims another node than its subject, and
		// metrics from another node than the attempt's. Curve chunks
		// name the node too (readers of the history do not check it
		// against the attempt's yet).
		return Permissions{
			Publish: append([]string{
				bus.HeartbeatSubject(id.Node),
				bus.EventSubject("*", "*", id.Node),
				bus.StartedSubject("*", "*", id.Node),
				bus.MetricsSubject("*", "*", id.Node),
				bus.CurveSubject("*", "*", id.Node),
			}, checkpointStore...),
			Subscribe: append([]string{bus.SubjectNode + "." + id.Node + ".>"}, inbox...),
			Responses: true,
		}
	}
	return Permissions{}
}

// natsUser writes the identity's entry of the NATS server's
// authorization users.
func natsUser(b *strings.Builder, id Identity, publicKey string) {
	p := id.Permissions()
	if id.Team != "" && id.Team != bus.AllTeams {
		fmt.Fprintf(b, "    # %s (%s of team %s)\n", id.Name, id.Role, id.Team)
	} else {
		fmt.Fprintf(b, "    # %s (%s)\n", id.Name, id.Role)
	}
	fmt.Fprintf(b, "    {\n      nkey: %s\n      permissions: {\n", publicKey)
	fmt.Fprintf(b, "        publish: { allow: %s }\n", quoteList(p.Publish))
	fmt.Fprintf(b, "        subscribe: { allow: %s }\n", quoteList(p.Subscribe))
	if p.Responses {
		b.WriteString("        allow_responses: true\n")
	}
	b.WriteString("      }\n    }\n")
}

func quoteList(subjects []string) string {
	q := make([]string, len(subjects))
	for i, s := range subjects {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// sortIdentities orders the fixed identities first, then agents by node.
func sortIdentities(ids []Identity) {
	rank := func(id Identity) int {
		for i, f := range fixedIdentities {
			if f.Name == id.Name {
				return i
			}
		}
		return len(fixedIdentities)
	}
	slices.SortFunc(ids, func(a, b Identity) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a.Name, b.Name)
	})
}
