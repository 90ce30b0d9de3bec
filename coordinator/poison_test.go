package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"

	"asymptote.dev/asymptote/coordinator"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/plugins/sdk"
)

// constant is a test method whose loss does not depend on its parameters:
// a power law fitted to it has R² of -Inf.
type constant struct{}

func (constant) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{Name: "constant", Version: "1"}, nil
}

func (constant) Run(_ context.Context, req *sdk.TrialRequest, _ func(sdk.Metrics) error) (*sdk.Result, error) {
	p, err := req.Float("params", 1)
	if err != nil {
		return nil, err
	}
	return &sdk.Result{Metrics: map[string]float64{"val_loss": 2, "params": p}}, nil
}

// healthyAfter submits a small healthy study and asserts that it runs to
// completion and that status answers: whatever came before did not stop
// the control plane.
func healthyAfter(t *testing.T, cl *clustertest.Cluster, client *bus.Client, name string) {
	t.Helper()
	spec := replace(gridSpec, "name: grid", "name: "+name)
	submit(t, client, spec)
	st := cl.WaitDone(client, name, 30*time.Second)
	if st.Counts["succeeded"] != 12 {
		t.Fatalf("healthy study %s: counts %v, want 12 succeeded", name, st.Counts)
	}
	if _, err := client.Status(t.Context(), ""); err != nil {
		t.Fatalf("status after a poison input: %v", err)
	}
}

// TestHugeParameterIsRefused is the first case of the poison report: a 1
// MiB string parameter made the leader's etcd write exceed etcd's request
// limit, and the leader retried it forever.
func TestHugeParameterIsRefused(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": newQuadratic()})
	client := cl.Client()
	big := strings.Repeat("x", 1<<20)
	spec := fmt.Sprintf("name: huge\nmethod: quadratic\nobjective: {metric: val_loss}\nspace:\n  x: [1]\nfixed:\n  note: %q\n", big)
	_, err := client.Submit(t.Context(), api.SubmitRequest{SpecFile: "huge.yaml", Spec: spec})
	if err == nil {
		t.Fatal("a 1 MiB parameter was accepted")
	}
	t.Logf("refused: %v", err)
	healthyAfter(t, cl, client, "healthy")
}

// TestConstantLossFitDoesNotWedgeTheLeader is the second case: a live
// power-law fit over a constant loss has R² = -Inf, which JSON cannot
// encode, and the study record's write failed forever.
func TestConstantLossFitDoesNotWedgeTheLeader(t *testing.T) {
	cl := clustertest.New(t)
	c1 := cl.StartCoordinator("c1", nil)
	cl.StartCoordinator("c2", nil)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": newQuadratic(), "constant": constant{}})
	client := cl.Client()
	submit(t, client, `name: flat
method: constant
objective: {metric: val_loss}
space:
  params: [1e6, 1e7, 1e8, 1e9, 1e10]
resources: {cpu: 0.5, memory: 16MiB}
analysis:
  fit: {law: power, x: params, bootstrap: 20}
`)
	cl.WaitDone(client, "flat", 30*time.Second)
	// The fit of the flat study lands (or fails with its reason) and the
	// study stays readable.
	clustertest.WaitFor(t, 20*time.Second, func() error {
		r, err := client.Status(t.Context(), "flat")
		if err != nil {
			return err
		}
		a := r.Studies[0].Analysis
		if len(a) == 0 {
			return fmt.Errorf("no analysis yet")
		}
		// R² of a constant is undefined: no number, or no fit at all.
		if a[0].R2 != nil && a[0].Error == "" {
			return fmt.Errorf("R² = %v over a constant loss", *a[0].R2)
		}
		return nil
	})
	healthyAfter(t, cl, client, "healthy")
	// The standby that takes over loads the same records and leads.
	c1.Kill()
	healthyAfter(t, cl, client, "healthy2")
}

// wide is a test method whose result holds 200 metrics with long names:
// about 30 KB, more than a trial record may hold under a small etcd
// request limit.
type wide struct{}

func (wide) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{Name: "wide", Version: "1"}, nil
}

func (wide) Run(context.Context, *sdk.TrialRequest, func(sdk.Metrics) error) (*sdk.Result, error) {
	m := map[string]float64{"val_loss": 1}
	for i := range 200 {
		m[fmt.Sprintf("m%03d_%s", i, strings.Repeat("n", 110))] = float64(i)
	}
	return &sdk.Result{Metrics: m}, nil
}

// keys counts the etcd keys under prefix.
func keys(t *testing.T, cl *clustertest.Cluster, prefix string) int64 {
	t.Helper()
	r, err := cl.Etcd.Get(t.Context(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return r.Count
}

// TestOverLimitInputIsRefusedNamingTheLimit checks each submit-time limit:
// the error names the field and the limit, and nothing of the study is
// written.
func TestOverLimitInputIsRefusedNamingTheLimit(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", func(c *coordinator.Config) {
		c.Limits = coordinator.Limits{SpecBytes: 4 << 20, ParamBytes: 32 << 10, Trials: 50}
	})
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": newQuadratic()})
	client := cl.Client()
	base := "name: %s\nmethod: quadratic\nobjective: {metric: val_loss}\nspace:\n  x: %s\nfixed:\n  note: %q\n"
	cases := []struct {
		name, x, note string
		want          []string
	}{
		{"spec", "[1]", strings.Repeat("x", 5<<20), []string{"the spec is", "over the limit of 4194304", "-max-spec-bytes"}},
		{"param", "[1]", strings.Repeat("x", 40<<10), []string{"fixed.note", "over the limit of 32768", "-max-param-bytes"}},
		{"trials", "{range: [0, 1], count: 60}", "", []string{"60 trials", "over the limit of 50", "-max-trials"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "over-" + c.name
			_, err := client.Submit(t.Context(), api.SubmitRequest{SpecFile: name + ".yaml", Spec: fmt.Sprintf(base, name, c.x, c.note)})
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if n := keys(t, cl, store.StudyKey(name)) + keys(t, cl, store.TrialPrefix+name+"/"); n != 0 {
				t.Errorf("%d keys of the refused study were written", n)
			}
			if _, err := client.Status(t.Context(), name); err == nil {
				t.Error("status lists the refused study")
			}
		})
	}
	healthyAfter(t, cl, client, "healthy")
}

// TestUnstorableRecordQuarantinesOnlyItsStudy: a result etcd cannot take
// (here under a small request limit) quarantines its study with the
// reason, the rest of the cluster carries on, resume tries again, and
// delete removes the study without touching etcd by hand.
func TestUnstorableRecordQuarantinesOnlyItsStudy(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", func(c *coordinator.Config) { c.EtcdMaxRequestBytes = 40 << 10 })
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": newQuadratic(), "wide": wide{}})
	client := cl.Client()
	submit(t, client, "name: bloat\nmethod: wide\nobjective: {metric: val_loss}\nspace:\n  x: [1]\nresources: {cpu: 0.5, memory: 16MiB}\n")
	quarantined := func(why string) api.StudyStatus {
		t.Helper()
		var st api.StudyStatus
		clustertest.WaitFor(t, 20*time.Second, func() error {
			r, err := client.Status(t.Context(), "bloat")
			if err != nil {
				return err
			}
			st = r.Studies[0]
			if st.State != api.StudyQuarantined || st.Quarantine == nil {
				return fmt.Errorf("%s: state %s, want quarantined", why, st.State)
			}
			return nil
		})
		if r := st.Quarantine.Reason; !strings.Contains(r, "cannot be stored") || !strings.Contains(r, "over the limit") {
			t.Errorf("%s: reason %q does not say what and which limit", why, r)
		}
		return st
	}
	quarantined("after the result")
	healthyAfter(t, cl, client, "healthy")

	// The quarantine survives a new leader.
	c2 := cl.StartCoordinator("c2", func(c *coordinator.Config) { c.EtcdMaxRequestBytes = 40 << 10 })
	_ = c2
	if _, err := client.Study(t.Context(), api.VerbResume, api.StudyRequest{Study: "bloat"}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	// The held record still cannot be written: quarantined again.
	quarantined("after resume")
	if _, err := client.Cancel(t.Context(), api.CancelRequest{Study: "bloat"}); err == nil || !strings.Contains(err.Error(), "study delete bloat") {
		t.Errorf("cancel of a quarantined study: %v, want a refusal naming delete", err)
	}
	r, err := client.Study(t.Context(), api.VerbDelete, api.StudyRequest{Study: "bloat"})
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if r.Deleted != 1 {
		t.Errorf("deleted %d trials, want 1", r.Deleted)
	}
	if n := keys(t, cl, store.StudyKey("bloat")) + keys(t, cl, store.TrialPrefix+"bloat/") + keys(t, cl, store.QuarantineKey("bloat")); n != 0 {
		t.Errorf("%d keys of the deleted study remain", n)
	}
	if _, err := client.Status(t.Context(), "bloat"); err == nil {
		t.Error("status still lists the deleted study")
	}
	healthyAfter(t, cl, client, "healthy2")
}

// TestCorruptRecordQuarantinesItsStudy: a record that does not decode
// (written by hand, or by a bug) once stopped every new leader in load;
// now only its study is quarantined.
func TestCorruptRecordQuarantinesItsStudy(t *testing.T) {
	cl := clustertest.New(t)
	c1 := cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": newQuadratic()})
	client := cl.Client()
	submit(t, client, gridSpec)
	cl.WaitDone(client, "grid", 30*time.Second)
	var id string
	for tid := range results(t, client, "grid") {
		id = tid
		break
	}
	if _, err := cl.Etcd.Put(t.Context(), store.TrialKey("grid", id), `{"id": truncated`); err != nil {
		t.Fatal(err)
	}
	c1.Kill()
	cl.StartCoordinator("c2", nil)
	var st api.StudyStatus
	clustertest.WaitFor(t, 20*time.Second, func() error {
		r, err := client.Status(t.Context(), "grid")
		if err != nil {
			return err
		}
		st = r.Studies[0]
		if st.Quarantine == nil {
			return fmt.Errorf("state %s, want quarantined", st.State)
		}
		return nil
	})
	if r := st.Quarantine.Reason; !strings.Contains(r, id) || !strings.Contains(r, "does not decode") {
		t.Errorf("reason %q does not name the record and the problem", r)
	}
	healthyAfter(t, cl, client, "healthy")
	if _, err := client.Study(t.Context(), api.VerbDelete, api.StudyRequest{Study: "grid"}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if n := keys(t, cl, store.TrialPrefix+"grid/"); n != 0 {
		t.Errorf("%d trial keys remain after delete", n)
	}
}

// TestOperatorQuarantineFreezesAndResumeFinishesExactlyOnce: an operator
// quarantines a running study; nothing new of it starts, the outcomes of
// attempts already running wait, and after resume every trial ends with
// exactly one result from one attempt.
func TestOperatorQuarantineFreezesAndResumeFinishesExactlyOnce(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	q := newQuadratic()
	cl.StartAgent("a1", cpuNode(1), clustertest.InProcess{"quadratic": q})
	client := cl.Client()
	submit(t, client, replace(gridSpec, "seeds: [0, 1]", "seeds: [0, 1]\nfixed: {sleep: 0.2}"))
	if _, err := client.Study(t.Context(), api.VerbQuarantine, api.StudyRequest{Study: "grid", Reason: "checking the data"}); err != nil {
		t.Fatalf("quarantine: %v", err)
	}
	if _, err := client.Study(t.Context(), api.VerbDelete, api.StudyRequest{Study: "other"}); err == nil {
		t.Error("delete of an unknown study succeeded")
	}
	started := func() int {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.runs)
	}
	time.Sleep(500 * time.Millisecond)
	frozen := started()
	time.Sleep(time.Second)
	if n := started(); n != frozen || n > 4 {
		t.Errorf("%d trials started while quarantined (%d when it began)", n, frozen)
	}
	r, err := client.Status(t.Context(), "grid")
	if err != nil {
		t.Fatal(err)
	}
	if s := r.Studies[0]; s.Quarantine == nil || s.Quarantine.Reason != "checking the data" || s.Quarantine.By != "operator" {
		t.Errorf("quarantine = %+v, want the operator's reason", s.Quarantine)
	}
	if _, err := client.Submit(t.Context(), api.SubmitRequest{SpecFile: "g.yaml", Spec: gridSpec}); err == nil || !strings.Contains(err.Error(), "quarantined") {
		t.Errorf("resubmit while quarantined: %v, want a refusal", err)
	}
	if _, err := client.Study(t.Context(), api.VerbResume, api.StudyRequest{Study: "grid"}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	st := cl.WaitDone(client, "grid", 60*time.Second)
	if st.Counts["succeeded"] != 12 {
		t.Fatalf("counts %v, want 12 succeeded", st.Counts)
	}
	for id, tr := range results(t, client, "grid") {
		if tr.Attempt != 1 || q.attempts(id) != 1 {
			t.Errorf("trial %s: attempt %d, ran %d times; want once", id, tr.Attempt, q.attempts(id))
		}
	}
}

// TestEventsThatCannotBeAppliedAreKept: an outcome for an unknown study or
// trial, or from a node other than its attempt's, was acknowledged and
// forgotten; now it is kept with its reason and counted in status, and it
// changes no trial. So is one sent on another node's subject than the node
// it claims: on a permissive bus (no identities) anyone may publish, but
// the body's node alone does not make an outcome the agent's.
func TestEventsThatCannotBeAppliedAreKept(t *testing.T) {
	cl := clustertest.New(t)
	c1 := cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": newQuadratic()})
	client := cl.Client()
	submit(t, client, gridSpec)
	cl.WaitDone(client, "grid", 30*time.Second)
	before := results(t, client, "grid")
	var id, other string
	for tid := range before {
		if id == "" {
			id = tid
		} else if other == "" {
			other = tid
		}
	}
	js, err := jetstream.New(cl.Conn("stranger"))
	if err != nil {
		t.Fatal(err)
	}
	events := []bus.Event{
		{AttemptRef: bus.AttemptRef{Study: "never", Trial: "t1", Attempt: 1}, Kind: bus.EventFinished, Node: "a1", Outcome: bus.OutcomeSucceeded, Metrics: map[string]float64{"val_loss": 0.1}},
		{AttemptRef: bus.AttemptRef{Study: "grid", Trial: "no-such-trial", Attempt: 1}, Kind: bus.EventFinished, Node: "a1", Outcome: bus.OutcomeSucceeded},
		{AttemptRef: bus.AttemptRef{Study: "grid", Trial: id, Attempt: 1}, Kind: bus.EventFinished, Node: "impostor", Outcome: bus.OutcomeSucceeded, Metrics: map[string]float64{"val_loss": -100}},
	}
	for _, ev := range events {
		ev.Time = time.Now()
		// No message ID: the impostor's would be the real outcome's, which
		// JetStream's deduplication already refuses.
		if _, err := js.Publish(t.Context(), bus.EventSubject(ev.Study, ev.Trial, ev.Node), bus.Encode(&ev)); err != nil {
			t.Fatal(err)
		}
	}
	forged := bus.Event{AttemptRef: bus.AttemptRef{Study: "grid", Trial: other, Attempt: 1}, Kind: bus.EventFinished, Node: "a1", Time: time.Now(), Outcome: bus.OutcomeSucceeded, Metrics: map[string]float64{"val_loss": -200}}
	if _, err := js.Publish(t.Context(), bus.EventSubject("grid", other, "impostor"), bus.Encode(&forged)); err != nil {
		t.Fatal(err)
	}
	events = append(events, forged)
	want := []string{"no study named never", "has no trial no-such-trial", "dispatched to node a1, not impostor", "sent on node impostor's subject but claims node a1"}
	check := func(when string) {
		t.Helper()
		clustertest.WaitFor(t, 20*time.Second, func() error {
			r, err := client.Status(t.Context(), "")
			if err != nil {
				return err
			}
			if r.Orphans != len(events) {
				return fmt.Errorf("%s: %d kept events, want %d", when, r.Orphans, len(events))
			}
			var reasons []string
			for _, o := range r.RecentOrphans {
				reasons = append(reasons, o.Reason)
			}
			for _, w := range want {
				if !strings.Contains(strings.Join(reasons, "\n"), w) {
					return fmt.Errorf("%s: reasons %q lack %q", when, reasons, w)
				}
			}
			return nil
		})
	}
	check("after the events")
	// Nor does an outcome expire from the stream unrecorded.
	stream, err := js.Stream(t.Context(), bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := stream.Info(t.Context()); err != nil || info.Config.MaxAge != 0 || info.Config.MaxBytes > 0 || info.Config.MaxMsgs > 0 {
		t.Errorf("events stream limits: %+v (%v), want none: an outcome leaves only once recorded", info.Config, err)
	}
	if n := keys(t, cl, store.OrphanPrefix); n != int64(len(events)) {
		t.Errorf("%d kept events in etcd, want %d", n, len(events))
	}
	after := results(t, client, "grid")
	if *after[id].Result.Objective != *before[id].Result.Objective || len(after[id].Late) != 0 {
		t.Errorf("the impostor's outcome touched trial %s: %+v", id, after[id].Result)
	}
	// A new leader finds them kept, and a redelivery keeps no second copy.
	c1.Kill()
	cl.StartCoordinator("c2", nil)
	check("after failover")
}

// TestStudyWhoseLastWritesSplitIsFinishedByTheNextLeader: the last trials
// and the study's done record can land in different transactions; a
// leader that dies between them left the study active forever.
func TestStudyWhoseLastWritesSplitIsFinishedByTheNextLeader(t *testing.T) {
	cl := clustertest.New(t)
	c1 := cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": newQuadratic()})
	client := cl.Client()
	submit(t, client, gridSpec)
	cl.WaitDone(client, "grid", 30*time.Second)
	c1.Kill()
	// Put the study record back to active, as if the done record never
	// landed.
	editStudy(t, cl, "grid", func(rec *api.Study) { rec.State, rec.Finished = api.StudyActive, nil })
	cl.StartCoordinator("c2", nil)
	st := cl.WaitDone(client, "grid", 20*time.Second)
	if st.State != api.StudyDone {
		t.Errorf("state %s, want done", st.State)
	}
}

// TestStudyWhoseSpecNoLongerParsesIsKept: after an upgrade whose parser
// refuses a stored spec, the study was skipped and its outcomes acked as
// unknown; now it is quarantined with the reason and nothing is lost.
func TestStudyWhoseSpecNoLongerParsesIsKept(t *testing.T) {
	cl := clustertest.New(t)
	c1 := cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": newQuadratic()})
	client := cl.Client()
	submit(t, client, gridSpec)
	cl.WaitDone(client, "grid", 30*time.Second)
	c1.Kill()
	editStudy(t, cl, "grid", func(rec *api.Study) { rec.Spec = "name: grid\nspace: {x: [1\n" })
	cl.StartCoordinator("c2", nil)
	clustertest.WaitFor(t, 20*time.Second, func() error {
		r, err := client.Status(t.Context(), "grid")
		if err != nil {
			return err
		}
		s := r.Studies[0]
		if s.Quarantine == nil || !strings.Contains(s.Quarantine.Reason, "no longer parses") {
			return fmt.Errorf("state %s, quarantine %+v; want quarantined because the spec no longer parses", s.State, s.Quarantine)
		}
		if s.Total != 12 || s.Counts["succeeded"] != 12 {
			return fmt.Errorf("%d trials, %v: want its 12 results kept", s.Total, s.Counts)
		}
		return nil
	})
	healthyAfter(t, cl, client, "healthy")
}

// editStudy changes a study's stored record behind the leader's back, as
// a crash between two writes, an upgrade or a hand edit would leave it.
func editStudy(t *testing.T, cl *clustertest.Cluster, name string, edit func(*api.Study)) {
	t.Helper()
	r, err := cl.Etcd.Get(t.Context(), store.StudyKey(name))
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("read study %s: %v", name, err)
	}
	var rec api.Study
	if err := json.Unmarshal(r.Kvs[0].Value, &rec); err != nil {
		t.Fatal(err)
	}
	edit(&rec)
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Etcd.Put(t.Context(), store.StudyKey(name), string(b)); err != nil {
		t.Fatal(err)
	}
}
