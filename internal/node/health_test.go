package node_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/health"
	"asymptote.dev/asymptote/internal/node"
)

// TestHealth serves a coordinator's and an agent's health endpoints on
// real servers and takes the servers away one by one: NATS going makes
// both unready while the coordinator's etcd check still passes; cutting
// the coordinator off from etcd too fails that check. The agent has no
// etcd check: it never talks to etcd. Liveness stays 200 throughout, so a
// scheduler never restarts a process for its dependency's outage.
func TestHealth(t *testing.T) {
	c := clustertest.New(t)
	coordLn, agentLn := listen(t), listen(t)
	co, err := c.Node.StartCoordinator(node.Coordinator{
		Config: node.CoordinatorConfig{ID: "c1", LeaseTTL: 2 * time.Second, HeartbeatGrace: 3 * time.Second},
		Health: coordLn,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(co.Stop)
	ag, err := c.Node.StartAgent(node.Agent{
		Config: node.AgentConfig{NodeID: "a1", Resources: bus.Resources{CPU: 1, Memory: 1 << 30}, Methods: clustertest.InProcess{}, HeartbeatInterval: 200 * time.Millisecond},
		Health: agentLn,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ag.Stop)
	coordURL, agentURL := "http://"+coordLn.Addr().String(), "http://"+agentLn.Addr().String()

	steps := []struct {
		name  string
		take  func()
		coord map[string]bool // check name: ok
		agent map[string]bool
	}{
		{name: "both servers up", coord: map[string]bool{"nats": true, "etcd": true}, agent: map[string]bool{"nats": true}},
		{name: "NATS down", take: func() { c.Servers.NATS.Shutdown() }, coord: map[string]bool{"nats": false, "etcd": true}, agent: map[string]bool{"nats": false}},
		// Partition closes the coordinator's etcd client (and its NATS
		// connection): etcd is out of its reach as well.
		{name: "etcd out of reach too", take: co.Partition, coord: map[string]bool{"nats": false, "etcd": false}, agent: map[string]bool{"nats": false}},
	}
	for _, s := range steps {
		if s.take != nil {
			s.take()
		}
		for _, p := range []struct {
			who, url string
			want     map[string]bool
		}{{"coordinator", coordURL, s.coord}, {"agent", agentURL, s.agent}} {
			clustertest.WaitFor(t, 10*time.Second, func() error {
				if err := ready(p.url, p.want); err != nil {
					return fmt.Errorf("%s: %s: %w", s.name, p.who, err)
				}
				return nil
			})
			if code, _, err := get(p.url + "/livez"); err != nil || code != http.StatusOK {
				t.Errorf("%s: %s: /livez %d %v, want 200", s.name, p.who, code, err)
			}
		}
	}
}

// ready checks /readyz against want: the checks it names, which pass, and
// the status code that follows from them.
func ready(url string, want map[string]bool) error {
	code, rep, err := get(url + "/readyz")
	if err != nil {
		return err
	}
	allOK := true
	for _, ok := range want {
		allOK = allOK && ok
	}
	if wantCode := map[bool]int{true: http.StatusOK, false: http.StatusServiceUnavailable}[allOK]; code != wantCode {
		return fmt.Errorf("/readyz %d %+v, want %d", code, rep, wantCode)
	}
	if len(rep.Checks) != len(want) {
		return fmt.Errorf("/readyz checks %+v, want %v", rep.Checks, want)
	}
	for _, r := range rep.Checks {
		ok, named := want[r.Name]
		if !named || r.OK != ok || (!r.OK && !strings.Contains(strings.ToLower(r.Error), r.Name)) {
			return fmt.Errorf("/readyz check %+v, want ok=%v with an error naming it", r, ok)
		}
	}
	return nil
}

func get(url string) (int, health.Report, error) {
	var rep health.Report
	resp, err := http.Get(url)
	if err != nil {
		return 0, rep, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return resp.StatusCode, rep, fmt.Errorf("%s: body: %w", url, err)
	}
	return resp.StatusCode, rep, nil
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
