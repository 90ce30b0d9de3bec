package security_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/checkpoint"
	"asymptote.dev/asymptote/internal/security"
	"asymptote.dev/asymptote/internal/security/securitytest"
)

// conn is a NATS connection of a test.
type conn struct{ *nats.Conn }

// dial connects with sec's settings, once, with no retries.
func dial(url string, sec security.NATS) (*conn, error) {
	opts, err := sec.Options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.Timeout(3*time.Second), nats.NoReconnect(),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, err
	}
	return &conn{nc}, nil
}

func mustDial(t *testing.T, url string, sec security.NATS) *conn {
	t.Helper()
	c, err := dial(url, sec)
	if err != nil {
		t.Fatalf("connect as %s: %v", sec.NKey, err)
	}
	t.Cleanup(c.Close)
	return c
}

// refusal returns the server's permissions violation that names subject,
// if it sent one. The server answers a PING after it refused what came
// before it, and the client records the refusal as its last error before
// it reads the PONG, so a flush is enough to know.
func (c *conn) refusal(t *testing.T, subject string) error {
	t.Helper()
	if err := c.FlushTimeout(3 * time.Second); err != nil {
		t.Fatalf("flush: %v", err)
	}
	err := c.LastError()
	if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
		return err
	}
	return nil
}

func newBundle(t *testing.T, agents ...string) *security.Bundle {
	t.Helper()
	b, err := security.Init(security.Plan{Dir: filepath.Join(t.TempDir(), "secure"), Agents: agents})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPermissions checks, against a real nats-server with the generated
// configuration, that every identity may publish and subscribe to the
// subjects of its job and is refused the others.
func TestPermissions(t *testing.T) {
	b, err := security.Init(security.Plan{Dir: filepath.Join(t.TempDir(), "secure"), Agents: []string{"gpu-01", "gpu-02"}, Teams: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := securitytest.StartNATS(t, b)
	type check struct {
		sub     bool // subscribe, else publish
		subject string
		allowed bool
	}
	pub := func(s string, ok bool) check { return check{subject: s, allowed: ok} }
	sub := func(s string, ok bool) check { return check{sub: true, subject: s, allowed: ok} }
	tests := []struct {
		identity string
		checks   []check
	}{
		{"agent-gpu-01", []check{
			pub("asymptote.hb.gpu-01", true),
			pub("asymptote.hb.gpu-02", false),
			pub("asymptote.events.s.t.gpu-01", true),
			pub("asymptote.events.s.t.gpu-02", false),
			pub("asymptote.events.s.t", false),
			pub("asymptote.started.s.t.gpu-01", true),
			pub("asymptote.started.s.t.gpu-02", false),
			pub("asymptote.metrics.s.t.gpu-01", true),
			pub("asymptote.metrics.s.t.gpu-02", false),
			pub("asymptote.metrics.s.t", false),
			pub("asymptote.api.submit", false),
			pub("asymptote.api.cancel", false),
			pub("asymptote.api.results", false),
			pub("asymptote.api.allow", false),
			pub("asymptote.node.gpu-02.dispatch", false),
			pub("$JS.API.STREAM.INFO.ASYMPTOTE_HISTORY", false),
			sub("asymptote.node.gpu-01.dispatch", true),
			sub("asymptote.node.gpu-01.cancel", true),
			sub("asymptote.node.gpu-02.dispatch", false),
			sub("asymptote.node.*.dispatch", false),
			sub("asymptote.events.>", false),
			sub("asymptote.api.>", false),
			sub("_INBOX.agent-gpu-01.x", true),
			sub("_INBOX.viewer.>", false),
			sub("_INBOX.>", false),
		}},
		{"viewer", []check{
			pub("asymptote.api.status.default.viewer", true),
			pub("asymptote.api.results.default.viewer", true),
			pub("asymptote.api.status", false),
			pub("asymptote.api.status.default.submitter", false),
			pub("asymptote.api.status._all.viewer", false),
			pub("asymptote.api.submit.default.viewer", false),
			pub("asymptote.api.cancel.default.viewer", false),
			pub("asymptote.api.delete.default.viewer", false),
			pub("asymptote.api.allow.default.viewer", false),
			pub("asymptote.events.s.t.gpu-01", false),
			pub("asymptote.node.gpu-01.drain", false),
			pub("$JS.API.STREAM.DELETE.ASYMPTOTE_HISTORY", false),
			sub("_INBOX.viewer.x", true),
			sub("_INBOX.submitter.>", false),
			sub("asymptote.>", false),
		}},
		{"submitter", []check{
			pub("asymptote.api.submit.default.submitter", true),
			pub("asymptote.api.cancel.default.submitter", true),
			pub("asymptote.api.status.default.submitter", true),
			pub("asymptote.api.submit", false),
			pub("asymptote.api.status", false),
			pub("asymptote.api.submit.a.submitter", false),
			pub("asymptote.api.delete.default.submitter", false),
			pub("asymptote.api.quarantine.default.submitter", false),
			pub("asymptote.api.allow.default.submitter", false),
			pub("asymptote.node.gpu-01.drain", false),
			sub("asymptote.api.submit", false),
		}},
		// A team's submitter calls the API under its own team and name
		// only: team b's subjects, the operator's and the unscoped ones
		// are refused by the server.
		{"submitter-a", []check{
			pub("asymptote.api.submit.a.submitter-a", true),
			pub("asymptote.api.cancel.a.submitter-a", true),
			pub("asymptote.api.status.a.submitter-a", true),
			pub("asymptote.api.results.a.submitter-a", true),
			pub("asymptote.api.history.a.submitter-a", true),
			pub("asymptote.api.history.b.submitter-b", false),
			// The history stream holds every team's: a team's
			// identity reads it through the leader only.
			pub("$JS.API.STREAM.INFO.ASYMPTOTE_HISTORY", false),
			pub("$JS.API.CONSUMER.CREATE.ASYMPTOTE_HISTORY.x.asymptote.curves.b0.>", false),
			pub("$JS.API.CONSUMER.INFO.ASYMPTOTE_EVENTS.coordinator", true),
			pub("asymptote.api.submit.b.submitter-b", false),
			pub("asymptote.api.status.b.submitter-b", false),
			pub("asymptote.api.cancel.b.submitter-a", false),
			pub("asymptote.api.status.a.submitter-b", false),
			pub("asymptote.api.status._all.submitter-a", false),
			pub("asymptote.api.status._all.operator", false),
			pub("asymptote.api.status", false),
			pub("asymptote.api.cancel", false),
			pub("asymptote.api.delete.a.submitter-a", false),
			sub("_INBOX.submitter-a.x", true),
			sub("_INBOX.submitter-b.>", false),
		}},
		{"viewer-b", []check{
			pub("asymptote.api.status.b.viewer-b", true),
			pub("asymptote.api.results.b.viewer-b", true),
			pub("asymptote.api.history.b.viewer-b", true),
			pub("$JS.API.CONSUMER.CREATE.ASYMPTOTE_HISTORY", false),
			pub("asymptote.api.submit.b.viewer-b", false),
			pub("asymptote.api.cancel.b.viewer-b", false),
			pub("asymptote.api.status.a.viewer-b", false),
			pub("asymptote.api.status.a.viewer-a", false),
		}},
		{"operator", []check{
			pub("asymptote.api.delete._all.operator", true),
			pub("asymptote.api.resume._all.operator", true),
			pub("asymptote.api.status._all.operator", true),
			pub("asymptote.api.submit._all.operator", true),
			pub("asymptote.api.status.a.submitter-a", false),
			pub("asymptote.api.delete", false),
			pub("asymptote.api.allow._all.operator", true),
			pub("asymptote.api.history._all.operator", true),
			pub("$JS.API.STREAM.INFO.ASYMPTOTE_HISTORY", true),
			pub("asymptote.api.allow", false),
			pub("asymptote.node.gpu-01.drain", true),
			pub("asymptote.node.gpu-01.dispatch", false),
			pub("asymptote.hb.gpu-01", false),
			// It runs `asymptote slurm` and asks its status.
			pub("asymptote.slurm.status", true),
			sub("asymptote.slurm.status", true),
			sub("asymptote.hb.*", false),
		}},
		{"coordinator", []check{
			pub("asymptote.node.gpu-01.dispatch", true),
			pub("$JS.API.STREAM.INFO.ASYMPTOTE_EVENTS", true),
			sub("asymptote.hb.*", true),
			sub("asymptote.api.submit", true),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.identity, func(t *testing.T) {
			for _, c := range tt.checks {
				nc := mustDial(t, srv.URL, securitytest.NATSOf(b, tt.identity))
				what := "publish to"
				if c.sub {
					what = "subscribe to"
					if _, err := nc.SubscribeSync(c.subject); err != nil {
						t.Fatal(err)
					}
				} else if err := nc.Publish(c.subject, []byte("{}")); err != nil {
					t.Fatal(err)
				}
				err := nc.refusal(t, c.subject)
				if c.allowed && err != nil {
					t.Errorf("%s may not %s %s: %v", tt.identity, what, c.subject, err)
				}
				if !c.allowed && err == nil {
					t.Errorf("%s may %s %s; want a permissions violation", tt.identity, what, c.subject)
				}
			}
		})
	}
}

// TestCheckpointBucket: the permissions name the bucket the checkpoint
// store uses.
func TestCheckpointBucket(t *testing.T) {
	if security.CheckpointBucket != checkpoint.DefaultBucket {
		t.Errorf("security.CheckpointBucket %q, checkpoint.DefaultBucket %q: agents would be refused their checkpoints", security.CheckpointBucket, checkpoint.DefaultBucket)
	}
}

// TestJobs runs each identity's job end to end over the secure server:
// the coordinator answers the API and declares the streams; a viewer reads
// status and metric history but gets the server's refusal when it
// submits; a submitter submits; an agent answers its own dispatches,
// publishes its trial events to JetStream and heartbeats, and never hears
// another node's dispatches.
func TestJobs(t *testing.T) {
	b := newBundle(t, "gpu-01", "gpu-02")
	srv := securitytest.StartNATS(t, b)
	ctx := t.Context()

	co := mustDial(t, srv.URL, securitytest.NATSOf(b, "coordinator"))
	js, err := jetstream.New(co.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Declare(ctx, js, 1); err != nil {
		t.Fatalf("coordinator declares the events stream: %v", err)
	}
	if err := bus.DeclareHistory(ctx, js, 1, 0); err != nil {
		t.Fatalf("coordinator declares the history stream: %v", err)
	}
	for _, verb := range api.Verbs {
		if _, err := co.Subscribe(bus.TeamAPISubjects(verb), func(m *nats.Msg) {
			_ = m.Respond(api.EncodeReply(map[string]any{}, nil))
		}); err != nil {
			t.Fatal(err)
		}
	}
	heartbeats := make(chan string, 10)
	if _, err := co.Subscribe(bus.AllHeartbeats, func(m *nats.Msg) {
		heartbeats <- m.Subject
		_ = m.Respond([]byte("{}"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := co.Flush(); err != nil {
		t.Fatal(err)
	}

	t.Run("viewer", func(t *testing.T) {
		// The refusal comes back at once, not when the minute is up.
		c := securitytest.ClientOf(t, bus.NewClient(mustDial(t, srv.URL, securitytest.NATSOf(b, "viewer")).Conn, time.Minute), b, "viewer")
		if _, err := c.Status(ctx, ""); err != nil {
			t.Errorf("viewer status: %v", err)
		}
		_, err := c.Submit(ctx, api.SubmitRequest{SpecFile: "s.yaml", Spec: "name: s\n"})
		if err == nil || !strings.Contains(err.Error(), "permissions violation") || !strings.Contains(err.Error(), "may not submit") {
			t.Errorf("viewer submit: %v, want the server's permissions violation", err)
		}
		if _, err := c.Cancel(ctx, api.CancelRequest{Study: "s"}); err == nil || !strings.Contains(err.Error(), "may not cancel") {
			t.Errorf("viewer cancel: %v, want the server's permissions violation", err)
		}
		if _, err := c.Drain(ctx, "gpu-01"); err == nil || !strings.Contains(err.Error(), "may not drain") {
			t.Errorf("viewer drain: %v, want the server's permissions violation", err)
		}
	})
	t.Run("submitter", func(t *testing.T) {
		c := securitytest.ClientOf(t, bus.NewClient(mustDial(t, srv.URL, securitytest.NATSOf(b, "submitter")).Conn, 2*time.Second), b, "submitter")
		if _, err := c.Submit(ctx, api.SubmitRequest{SpecFile: "s.yaml", Spec: "name: s\n"}); err != nil {
			t.Errorf("submitter submit: %v", err)
		}
		if _, err := c.Cancel(ctx, api.CancelRequest{Study: "s"}); err != nil {
			t.Errorf("submitter cancel: %v", err)
		}
	})
	t.Run("agent", func(t *testing.T) {
		ag := mustDial(t, srv.URL, securitytest.NATSOf(b, "agent-gpu-01"))
		other := mustDial(t, srv.URL, securitytest.NATSOf(b, "agent-gpu-02"))
		if _, err := ag.Subscribe(bus.DispatchSubject("gpu-01"), func(m *nats.Msg) { _ = m.Respond([]byte("accepted")) }); err != nil {
			t.Fatal(err)
		}
		stolen, err := ag.SubscribeSync(bus.DispatchSubject("gpu-02"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Subscribe(bus.DispatchSubject("gpu-02"), func(m *nats.Msg) { _ = m.Respond([]byte("mine")) }); err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(ag.Flush(), other.Flush()); err != nil {
			t.Fatal(err)
		}
		for node, want := range map[string]string{"gpu-01": "accepted", "gpu-02": "mine"} {
			m, err := co.Request(bus.DispatchSubject(node), []byte("{}"), 2*time.Second)
			if err != nil || string(m.Data) != want {
				t.Errorf("dispatch to %s: %v %q, want the reply %q", node, err, msgData(m), want)
			}
		}
		if m, err := stolen.NextMsg(200 * time.Millisecond); err == nil {
			t.Errorf("agent gpu-01 received gpu-02's dispatch %q", m.Data)
		}
		ajs, err := jetstream.New(ag.Conn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ajs.Publish(ctx, bus.EventSubject("s", "t1", "gpu-01"), []byte(`{"kind":"outcome"}`)); err != nil {
			t.Errorf("agent publishes an event to JetStream: %v", err)
		}
		// As another node: refused by the server, so the leader learns
		// an event's sender from its subject.
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = ajs.Publish(pctx, bus.EventSubject("s", "t1", "gpu-02"), []byte(`{"kind":"outcome"}`))
		cancel()
		if err == nil {
			t.Error("agent gpu-01 published an event as gpu-02")
		}
		if err := ag.Publish(bus.StartedSubject("s", "t1", "gpu-02"), []byte("{}")); err == nil {
			_ = ag.Flush()
			if lerr := ag.LastError(); lerr == nil || !strings.Contains(lerr.Error(), "Permissions Violation") {
				t.Errorf("agent gpu-01 sent a started event as gpu-02: %v", lerr)
			}
		}
		report := bus.MetricsReport{AttemptRef: bus.AttemptRef{Study: "s", Trial: "t1", Attempt: 1}, Seq: 1, Step: 1, Values: map[string]float64{"val_loss": 2.5}}
		if _, err := ajs.Publish(ctx, bus.MetricsSubject("s", "t1", "gpu-01"), bus.Encode(&report)); err != nil {
			t.Errorf("agent publishes a metrics report to JetStream: %v", err)
		}
		pctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		_, err = ajs.Publish(pctx, bus.MetricsSubject("s", "t1", "gpu-02"), bus.Encode(&report))
		cancel()
		if err == nil {
			t.Error("agent gpu-01 published metrics as gpu-02")
		}
		if _, err := ag.Request(bus.HeartbeatSubject("gpu-01"), []byte("{}"), 2*time.Second); err != nil {
			t.Errorf("agent heartbeat: %v", err)
		}
		if got := <-heartbeats; got != bus.HeartbeatSubject("gpu-01") {
			t.Errorf("heartbeat on %s", got)
		}

		// The agent saves a checkpoint in the store the coordinator made,
		// and reads it back to resume.
		if _, err := checkpoint.NewObject(ctx, js, checkpoint.ObjectConfig{}); err != nil {
			t.Fatalf("coordinator creates the checkpoint store: %v", err)
		}
		store, err := checkpoint.NewObject(ctx, ajs, checkpoint.ObjectConfig{Open: true})
		if err != nil {
			t.Fatalf("agent opens the checkpoint store: %v", err)
		}
		blob := bytes.Repeat([]byte("weights "), 1<<14)
		info, err := store.Put(ctx, "s/t1/1/step-100", bytes.NewReader(blob))
		if err != nil {
			t.Fatalf("agent saves a checkpoint: %v", err)
		}
		r, err := store.Get(ctx, "s/t1/1/step-100", info)
		if err != nil {
			t.Fatalf("agent opens its checkpoint: %v", err)
		}
		back, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(back, blob) {
			t.Errorf("agent reads its checkpoint back: %d bytes, %v; want %d", len(back), err, len(blob))
		}
		if list, err := store.List(ctx, "s/"); err != nil || len(list) != 1 {
			t.Errorf("agent lists checkpoints: %v, %v", list, err)
		}

		// The operator reads the history the agent wrote from its
		// stream; a viewer reads it through the leader (TestSecureTeams
		// in internal/node), never from the stream, which holds every
		// team's.
		vjs, err := jetstream.New(mustDial(t, srv.URL, securitytest.NATSOf(b, "operator")).Conn)
		if err != nil {
			t.Fatal(err)
		}
		var got []float64
		if err := bus.History(ctx, vjs, "s", "t1", func(r *bus.MetricsReport) error {
			got = append(got, r.Values["val_loss"])
			return nil
		}); err != nil || len(got) != 1 || got[0] != 2.5 {
			t.Errorf("the operator reads the history: %v %v, want [2.5]", got, err)
		}
		vctx, vcancel := context.WithTimeout(ctx, time.Second)
		defer vcancel()
		viewer, err := jetstream.New(mustDial(t, srv.URL, securitytest.NATSOf(b, "viewer")).Conn)
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.History(vctx, viewer, "s", "t1", func(*bus.MetricsReport) error { return nil }); err == nil {
			t.Error("the viewer read the history stream")
		}
		// The agent may not read it.
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		err = bus.History(actx, ajs, "s", "t1", func(*bus.MetricsReport) error { return nil })
		if err == nil {
			t.Error("agent read the metric history")
		}
	})
}

func msgData(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	return string(m.Data)
}

// TestRefused: a client without credentials, one that speaks plaintext to
// the TLS port, one that does not trust the CA, one without a client
// certificate, and one whose certificate expired are each refused, with
// the error the user sees.
func TestRefused(t *testing.T) {
	b := newBundle(t)
	srv := securitytest.StartNATS(t, b)
	other := newBundle(t)
	viewer := securitytest.NATSOf(b, "viewer")
	// Viewer certificates signed by the server's CA, one that expired a
	// day ago and one current: Init reuses the CA it finds in its
	// directory.
	issue := func(start time.Time, valid time.Duration) security.NATS {
		dir := filepath.Join(t.TempDir(), "issued")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		copyFile(t, filepath.Join(b.Dir, security.CAFile), filepath.Join(dir, security.CAFile))
		copyFile(t, filepath.Join(b.Dir, security.CAKeyFile), filepath.Join(dir, security.CAKeyFile))
		if _, err := security.Init(security.Plan{Dir: dir, Now: func() time.Time { return start }, Valid: valid}); err != nil {
			t.Fatal(err)
		}
		s := viewer
		s.Cert, s.Key = filepath.Join(dir, security.CertFile("viewer")), filepath.Join(dir, security.KeyFile("viewer"))
		return s
	}
	expired := issue(time.Now().Add(-48*time.Hour), time.Hour)
	if c, err := dial(srv.URL, issue(time.Now(), time.Hour)); err != nil {
		t.Fatalf("a current certificate issued the same way is refused: %v", err)
	} else {
		c.Close()
	}
	tests := []struct {
		name string
		url  string
		sec  security.NATS
		want string
	}{
		{"no credentials", srv.URL, security.NATS{CA: viewer.CA, Cert: viewer.Cert, Key: viewer.Key}, "authorization violation"},
		// nats.go upgrades to TLS whenever the server requires it, so a
		// client given no CA fails on the server's certificate.
		{"no CA", strings.Replace(srv.URL, "tls://", "nats://", 1), security.NATS{NKey: viewer.NKey}, "certificate signed by unknown authority"},
		{"server not trusted", srv.URL, func() security.NATS { s := viewer; s.CA = filepath.Join(other.Dir, security.CAFile); return s }(), "certificate signed by unknown authority"},
		{"no client certificate", srv.URL, security.NATS{CA: viewer.CA, NKey: viewer.NKey, Inbox: viewer.Inbox}, "tls"},
		{"expired client certificate", srv.URL, expired, "tls"},
		{"unknown nkey", srv.URL, func() security.NATS {
			s := viewer
			s.NKey = filepath.Join(other.Dir, security.NKeyFile("viewer"))
			return s
		}(), "authorization violation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := dial(tt.url, tt.sec)
			if err == nil {
				c.Close()
				t.Fatal("connected; want a refusal")
			}
			t.Logf("the user sees: %v", err)
			if !strings.Contains(strings.ToLower(err.Error()), tt.want) {
				t.Errorf("error %q, want it to say %q", err, tt.want)
			}
		})
	}
}

// TestPlaintextRefused speaks the NATS protocol in plaintext to the TLS
// port, as a client that ignores the server's tls_required would: the
// server answers nothing but its INFO, and closes the connection.
func TestPlaintextRefused(t *testing.T) {
	b := newBundle(t)
	srv := securitytest.StartNATS(t, b)
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "tls://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	info, err := r.ReadString('\n')
	if err != nil || !strings.Contains(info, `"tls_required":true`) {
		t.Fatalf("INFO %q (%v), want tls_required", info, err)
	}
	if _, err := c.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if strings.Contains(string(rest), "PONG") {
		t.Fatalf("the server answered a plaintext PING: %q", rest)
	}
	t.Logf("after plaintext the server sent %q and closed the connection (%v)", rest, err)
}

// TestRotate rotates one agent's credential and revokes another's: after
// the server reloads its configuration the old seed and the revoked agent
// are refused, and the new seed and every other identity still work.
func TestRotate(t *testing.T) {
	b := newBundle(t, "gpu-01", "gpu-02")
	srv := securitytest.StartNATS(t, b)
	old := filepath.Join(t.TempDir(), "old.nk")
	copyFile(t, filepath.Join(b.Dir, security.NKeyFile("agent-gpu-01")), old)
	revokedSeed := filepath.Join(t.TempDir(), "revoked.nk")
	copyFile(t, filepath.Join(b.Dir, security.NKeyFile("agent-gpu-02")), revokedSeed)
	// The revoked agent keeps a current certificate: only its nkey is
	// gone from the server's list.
	revoked := securitytest.NATSOf(b, "agent-gpu-01")
	revoked.NKey = revokedSeed
	live := map[string]*conn{}
	for _, id := range []string{"agent-gpu-01", "agent-gpu-02", "viewer"} {
		live[id] = mustDial(t, srv.URL, securitytest.NATSOf(b, id))
	}
	if _, err := security.Init(security.Plan{Dir: b.Dir, Rotate: []string{"agent-gpu-01"}, Revoke: []string{"agent-gpu-02"}}); err != nil {
		t.Fatal(err)
	}
	srv.Reload(t)
	oldSec := securitytest.NATSOf(b, "agent-gpu-01")
	oldSec.NKey = old
	deadline := time.Now().Add(5 * time.Second)
	for {
		// While the server reloads, a handshake may also be cut short;
		// only the refusal of the identity ends the wait.
		c, err := dial(srv.URL, oldSec)
		if err != nil && strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			t.Logf("the old seed after the reload: %v", err)
			break
		}
		if c != nil {
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotated-away seed is not refused 5s after the reload (last: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Connections made with the old credentials are closed by the
	// reload; the viewer's stays.
	for id, closed := range map[string]bool{"agent-gpu-01": true, "agent-gpu-02": true, "viewer": false} {
		c := live[id]
		for end := time.Now().Add(5 * time.Second); closed && !c.IsClosed() && time.Now().Before(end); {
			time.Sleep(50 * time.Millisecond)
		}
		if c.IsClosed() != closed {
			t.Errorf("%s's connection from before the reload: closed %v, want %v", id, c.IsClosed(), closed)
		}
	}
	if c, err := dial(srv.URL, revoked); err == nil {
		c.Close()
		t.Error("the revoked agent's seed still connects after the reload")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Errorf("the revoked agent's seed: %v, want an authorization violation", err)
	}
	for _, f := range []string{security.NKeyFile("agent-gpu-02"), security.CertFile("agent-gpu-02"), security.EnvFile("agent-gpu-02")} {
		if _, err := os.Stat(filepath.Join(b.Dir, f)); err == nil {
			t.Errorf("revoked agent's %s is still there", f)
		}
	}
	auth, err := os.ReadFile(filepath.Join(b.Dir, security.NATSAuthFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(auth), "agent-gpu-02") {
		t.Error("the NATS configuration still lists the revoked agent")
	}
	for _, id := range []string{"agent-gpu-01", "viewer", "coordinator"} {
		if c, err := dial(srv.URL, securitytest.NATSOf(b, id)); err != nil {
			t.Errorf("%s after the rotation: %v", id, err)
		} else {
			c.Close()
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
