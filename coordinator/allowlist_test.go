package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/node"
)

// allowRecorder is an agent's side of the cluster's allowlist: it keeps
// every list the agent received and offers the list's methods.
type allowRecorder struct {
	mu   sync.Mutex
	got  []bus.Allowlist
	base []string
}

func (r *allowRecorder) apply(l bus.Allowlist) ([]string, map[string][]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, l)
	names := slices.Clone(r.base)
	for n := range l.Methods {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

func (r *allowRecorder) received() []bus.Allowlist {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// TestClusterAllowlist changes the allowlist through the leader: every
// agent receives each change with its next heartbeat and offers what it
// allows, without a restart; the list survives a leader change, and a
// new leader resends nothing to an agent that holds its version. Bad
// requests fail with the field and the fix and change nothing.
func TestClusterAllowlist(t *testing.T) {
	cl := clustertest.New(t)
	first := cl.StartCoordinator("c1", nil)
	client := cl.Client()
	q := newQuadratic()
	rec := &allowRecorder{base: []string{"quadratic"}}
	p, err := cl.Node.StartAgent(node.Agent{Config: node.AgentConfig{
		NodeID: "a1", Resources: cpuNode(2), Methods: clustertest.InProcess{"quadratic": q}, MethodNames: rec.base,
		HeartbeatInterval: 200 * time.Millisecond, ShutdownGrace: 3 * time.Second, Allowlist: rec.apply,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	offers := func(want ...string) {
		t.Helper()
		clustertest.WaitFor(t, 10*time.Second, func() error {
			st, err := client.Status(t.Context(), "")
			if err != nil {
				return err
			}
			for _, n := range st.Nodes {
				if n.ID == "a1" {
					if !slices.Equal(n.Methods, want) {
						return fmt.Errorf("a1 offers %v, want %v", n.Methods, want)
					}
					return nil
				}
			}
			return errors.New("a1 not registered yet")
		})
	}
	offers("quadratic")
	if n := len(rec.received()); n != 0 {
		t.Fatalf("the agent received %d lists while the cluster's was empty, want none", n)
	}

	sum := strings.Repeat("ab", 32)
	r, err := client.Allow(t.Context(), api.AllowRequest{Kind: api.AllowMethod, Name: "train_lm", SHA256: strings.ToUpper(sum)})
	if err != nil {
		t.Fatal(err)
	}
	if e := r.Allowlist.Methods["train_lm"]; e.SHA256 != sum || e.Time.IsZero() {
		t.Fatalf("allowlist after allow = %+v, want train_lm with sha256 %s", r.Allowlist, sum)
	}
	offers("quadratic", "train_lm")
	if _, err := client.Allow(t.Context(), api.AllowRequest{Kind: api.AllowProgram, Name: "/usr/bin/python3", SHA256: sum}); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 10*time.Second, func() error {
		got := rec.received()
		if len(got) == 0 || got[len(got)-1].Programs["/usr/bin/python3"] != sum || got[len(got)-1].Methods["train_lm"] != sum {
			return fmt.Errorf("agent holds %+v", got)
		}
		return nil
	})

	for _, c := range []struct {
		name string
		req  api.AllowRequest
		want string
	}{
		{"bad hash", api.AllowRequest{Kind: api.AllowMethod, Name: "m", SHA256: "abc"}, "sha256sum m"},
		{"a path for a method", api.AllowRequest{Kind: api.AllowMethod, Name: "../m", SHA256: sum}, "plugin directory"},
		{"a relative program", api.AllowRequest{Kind: api.AllowProgram, Name: "python3", SHA256: sum}, "absolute path"},
		{"no kind", api.AllowRequest{Name: "m", SHA256: sum}, "kind"},
		{"a hash with a revocation", api.AllowRequest{Kind: api.AllowMethod, Name: "train_lm", SHA256: sum, Revoke: true}, "no hash"},
	} {
		if _, err := client.Allow(t.Context(), c.req); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to say %q", c.name, err, c.want)
		}
	}
	list, err := client.Allow(t.Context(), api.AllowRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Allowlist.Methods) != 1 || len(list.Allowlist.Programs) != 1 {
		t.Fatalf("after refused requests the allowlist is %+v, want train_lm and /usr/bin/python3 only", list.Allowlist)
	}

	// A new leader loads the list from etcd: the agent, which holds its
	// version, is sent nothing new.
	held := len(rec.received())
	cl.StartCoordinator("c2", nil)
	first.Kill()
	clustertest.WaitFor(t, 15*time.Second, func() error {
		st, err := client.Status(t.Context(), "")
		if err != nil {
			return err
		}
		if st.Leader != "c2" {
			return fmt.Errorf("leader %q", st.Leader)
		}
		return nil
	})
	list, err = client.Allow(t.Context(), api.AllowRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if list.Allowlist.Methods["train_lm"].SHA256 != sum {
		t.Fatalf("the new leader's allowlist is %+v, want train_lm", list.Allowlist)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	<-ctx.Done()
	cancel()
	if n := len(rec.received()); n != held {
		t.Errorf("the agent received %d lists from the new leader, want none (it holds the version)", n-held)
	}

	// Revoking takes the method off the agent's offer.
	r, err = client.Allow(t.Context(), api.AllowRequest{Kind: api.AllowMethod, Name: "train_lm", Revoke: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Note, "revoked") {
		t.Errorf("revoke note = %q", r.Note)
	}
	offers("quadratic")
}
