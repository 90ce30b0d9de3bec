package poison

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/sweep"
)

// poison is an in-process method whose output is chosen by its "out"
// parameter; "ok" reports a plain finite loss.
type poison struct{}

func (poison) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{Name: "poison", Version: "1"}, nil
}

func (poison) Run(_ context.Context, req *sdk.TrialRequest, report func(sdk.Metrics) error) (*sdk.Result, error) {
	out, _ := req.Params["out"].(string)
	m := map[string]float64{"loss": 1}
	switch out {
	case "nan-objective":
		m["loss"] = math.NaN()
	case "inf-objective":
		m["loss"] = math.Inf(1)
	case "non-finite-metrics":
		m["grad_norm"], m["lo"], m["hi"] = math.NaN(), math.Inf(-1), math.Inf(1)
	case "huge-metrics":
		m["big"], m["small"], m["neg"] = math.MaxFloat64, 5e-324, -math.MaxFloat64
	case "many-metrics":
		for i := range 5000 {
			m[fmt.Sprintf("metric_%d", i)] = float64(i)
		}
	case "long-name":
		m[strings.Repeat("n", 1<<20)] = 1
	case "huge-error":
		return nil, fmt.Errorf("exploded: %s", strings.Repeat("trace line\n", 1<<20))
	case "bad-reports":
		_ = report(sdk.Metrics{Step: 1, Values: map[string]float64{"loss": math.NaN(), "x": math.Inf(1)}})
		vals := map[string]float64{}
		for i := range 3000 {
			vals[fmt.Sprintf("r%d", i)] = 1
		}
		if err := report(sdk.Metrics{Step: 2, Values: vals}); err != nil {
			return nil, err
		}
	}
	return &sdk.Result{Metrics: m}, nil
}

type env struct {
	cl     *clustertest.Cluster
	client *bus.Client
	nc     *nats.Conn
	js     jetstream.JetStream
	n      int
}

func start(t *testing.T) *env {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	cl.StartCoordinator("c2", nil)
	cl.StartAgent("a1", bus.Resources{CPU: 2, Memory: 8 << 30}, clustertest.InProcess{"poison": poison{}})
	nc := cl.Conn("poisoner")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Raw requests do not wait for a leader as the client does: wait
	// until one answers, so the first poison meets a leader, not an
	// empty subject.
	clustertest.WaitFor(t, 30*time.Second, func() error {
		_, err := nc.Request(bus.APISubject(api.VerbStatus), []byte(`{}`), time.Second)
		return err
	})
	return &env{cl: cl, client: cl.Client(), nc: nc, js: js}
}

// healthy runs a small healthy study and checks that status answers: the
// proof, after each poison, that the control plane and the agent still
// work.
func (e *env) healthy(t *testing.T, after string) {
	t.Helper()
	e.n++
	name := fmt.Sprintf("healthy-%d", e.n)
	spec := fmt.Sprintf("name: %s\nmethod: poison\nobjective: {metric: loss}\nspace:\n  x: [1, 2]\nfixed: {out: ok}\nresources: {cpu: 0.5, memory: 16MiB}\n", name)
	if _, err := e.client.Submit(t.Context(), api.SubmitRequest{SpecFile: name + ".yaml", Spec: spec}); err != nil {
		t.Fatalf("after %s: a healthy submit failed: %v", after, err)
	}
	st := e.cl.WaitDone(e.client, name, 30*time.Second)
	if st.Counts[string(sweep.Succeeded)] != 2 {
		t.Fatalf("after %s: the healthy study ended with %v", after, st.Counts)
	}
	if _, err := e.client.Status(t.Context(), ""); err != nil {
		t.Fatalf("after %s: status: %v", after, err)
	}
}

// request sends raw bytes to an API verb and returns the leader's error
// text ("" for success).
func (e *env) request(t *testing.T, verb string, data []byte) string {
	t.Helper()
	msg, err := e.nc.Request(bus.APISubject(verb), data, 10*time.Second)
	if err != nil {
		t.Fatalf("%s: no answer: %v", verb, err)
	}
	var env struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &env); err != nil {
		t.Fatalf("%s: the reply is not JSON: %v", verb, err)
	}
	return env.Error
}

func specRequest(spec string) []byte {
	b, _ := json.Marshal(api.SubmitRequest{SpecFile: "poison.yaml", Spec: spec})
	return b
}

const head = "name: bad\nmethod: poison\nobjective: {metric: loss}\n"

// TestAPIRequests: malformed, mistyped, truncated and oversized requests,
// and hostile specs, each refused with an error that says what is wrong.
func TestAPIRequests(t *testing.T) {
	e := start(t)
	cases := []struct {
		name, verb string
		data       []byte
		want       string // in the error; "" accepts any non-empty error
	}{
		{"not json", api.VerbSubmit, []byte("\x00\xffnot json"), "invalid character"},
		{"truncated", api.VerbSubmit, []byte(`{"spec_file":"a.yaml","spec":"name: x`), "unexpected end"},
		{"wrong type", api.VerbSubmit, []byte(`{"spec_file":"a.yaml","spec":5}`), "cannot unmarshal"},
		{"empty spec", api.VerbSubmit, specRequest(""), "name"},
		{"7 MiB spec", api.VerbSubmit, specRequest(head + "fixed:\n  note: \"" + strings.Repeat("x", 7<<20) + "\"\n"), "over the limit"},
		{"big parameter", api.VerbSubmit, specRequest(head + "fixed:\n  note: \"" + strings.Repeat("x", 100<<10) + "\"\n"), "fixed.note"},
		{"nan literal", api.VerbSubmit, specRequest(head + "space:\n  x: [.nan, 1]\n"), "space.x"},
		{"inf literal", api.VerbSubmit, specRequest(head + "fixed:\n  x: .inf\n"), "fixed.x"},
		{"1e309", api.VerbSubmit, specRequest(head + "fixed:\n  x: 1e309\n"), "fixed.x"},
		{"derived divides by zero", api.VerbSubmit, specRequest(head + "space:\n  x: [0, 1]\nderived:\n  y: 1 / x\n"), "y"},
		{"thousands of axes", api.VerbSubmit, specRequest(head + "space:\n" + axes(3000)), "over the limit"},
		{"deep nesting", api.VerbSubmit, specRequest(head + "fixed:\n  x: " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n"), ""},
		{"unicode name", api.VerbSubmit, specRequest("name: \"stud\u202ey\U0001F600\"\nmethod: poison\nobjective: {metric: loss}\n"), "name"},
		{"status of nothing", api.VerbStatus, []byte(`{"study":"` + strings.Repeat("z", 100000) + `"}`), "no study"},
		{"results wrong type", api.VerbResults, []byte(`{"study":["a"]}`), "cannot unmarshal"},
		{"cancel unknown", api.VerbCancel, []byte(`{"study":"nope","trials":["a","b"]}`), "no study"},
		{"delete unknown", api.VerbDelete, []byte(`{"study":"nope"}`), "no study"},
		{"resume unknown", api.VerbResume, []byte(`{}`), "no study"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := e.request(t, c.verb, c.data)
			t.Logf("%.200s", msg)
			if msg == "" || !strings.Contains(msg, c.want) {
				t.Errorf("error %.300q, want one that says %q", msg, c.want)
			}
		})
	}
	// A page far past the end, and a negative one, answer empty.
	if msg := e.request(t, api.VerbResults, []byte(`{"study":"nope","offset":-5,"limit":-1}`)); !strings.Contains(msg, "no study") {
		t.Errorf("results of nothing: %q", msg)
	}
	e.healthy(t, "the API poison")
}

func axes(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  a%d: [1, 2]\n", i)
	}
	return b.String()
}

// TestBusMessages: garbage on every subject the leader and the agent
// listen on changes nothing and stops nothing.
func TestBusMessages(t *testing.T) {
	e := start(t)
	e.healthy(t, "start") // the agent is registered and its subjects exist
	garbage := [][]byte{
		nil, []byte("\x00\xff"), []byte("{"), []byte(`{"node":5}`), []byte(`[]`), []byte(`null`),
		[]byte(`{"node":"a1","resources":{"cpu":1e309}}`),
		[]byte(`{"node":"ghost","boot":"b","resources":{"cpu":-1,"memory":-1}}`),
		[]byte(`{"node":"ghost","boot":"b","queue":-3}`),
		[]byte(`{"study":"s","trial":"t","attempt":-1,"kind":"finished","outcome":"succeeded","node":"n"}`),
		[]byte(`{"study":"s","trial":"t","attempt":1,"kind":"exploded","node":"n"}`),
		[]byte(`{"study":"healthy-1","trial":"nope","attempt":99,"kind":"finished","outcome":"succeeded","node":"a1","metrics":{"loss":1e308}}`),
		[]byte(`{"dispatches":[{"study":"s","trial":"t","attempt":1,"method":"poison","threads":0}]}`),
		[]byte(`{"dispatches":[]}`),
		[]byte(`{"attempts":[{"study":"","trial":"","attempt":0}]}`),
		[]byte(strings.Repeat(`{"a":`, 50000)),
	}
	subjects := []string{
		bus.HeartbeatSubject("a1"), bus.HeartbeatSubject("ghost"),
		bus.StartedSubject("s", "t", "a1"), bus.MetricsSubject("s", "t", "a1"),
		bus.DispatchSubject("a1"), bus.CancelSubject("a1"),
	}
	for _, subj := range subjects {
		for _, g := range garbage {
			// Requests, so a subject that answers (heartbeats, dispatches)
			// is exercised on its reply path too; a timeout is fine.
			_, _ = e.nc.Request(subj, g, 200*time.Millisecond)
		}
	}
	for _, g := range garbage {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err := e.js.Publish(ctx, bus.EventSubject("s", "t", "a1"), g)
		cancel()
		if err != nil {
			t.Fatalf("publish a poison event: %v", err)
		}
	}
	// Too large for the server: refused by NATS itself, never delivered.
	if err := e.nc.Publish(bus.HeartbeatSubject("a1"), make([]byte, 9<<20)); err == nil {
		_ = e.nc.Flush()
	}
	e.healthy(t, "bus garbage")
	r, err := e.client.Status(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range r.Nodes {
		if n.ID == "ghost" {
			t.Errorf("a malformed heartbeat registered node %q: %+v", n.ID, n)
		}
	}
}

// TestMethodOutput: whatever a method reports fails that attempt with a
// clear reason, or is kept with a documented meaning; never the agent.
func TestMethodOutput(t *testing.T) {
	e := start(t)
	cases := []struct {
		out   string
		state sweep.State
		want  string // in the trial's error, or a check of its result
		check func(*api.Result) error
	}{
		{"nan-objective", sweep.Failed, "loss = NaN", nil},
		{"inf-objective", sweep.Failed, "loss = +Inf", nil},
		{"many-metrics", sweep.Failed, "5001 metrics, over the limit of 256", nil},
		{"long-name", sweep.Failed, "over the limit of 128", nil},
		{"huge-error", sweep.Failed, "bytes cut", nil},
		{"bad-reports", sweep.Failed, "step 2: 3000 metrics", nil},
		{"non-finite-metrics", sweep.Succeeded, "", func(r *api.Result) error {
			if r.NonFinite["grad_norm"] != bus.NaN || r.NonFinite["lo"] != bus.NegInf || r.NonFinite["hi"] != bus.PosInf {
				return fmt.Errorf("non_finite = %v", r.NonFinite)
			}
			return nil
		}},
		{"huge-metrics", sweep.Succeeded, "", func(r *api.Result) error {
			if r.Metrics["big"] != math.MaxFloat64 || r.Metrics["small"] != 5e-324 || r.Metrics["neg"] != -math.MaxFloat64 {
				return fmt.Errorf("metrics = %v, want the extremes kept exactly", r.Metrics)
			}
			return nil
		}},
	}
	for _, c := range cases {
		t.Run(c.out, func(t *testing.T) {
			name := "out-" + c.out
			spec := fmt.Sprintf("name: %s\nmethod: poison\nobjective: {metric: loss}\nspace:\n  x: [1]\nfixed: {out: %s}\nretries: 0\nresources: {cpu: 0.5, memory: 16MiB}\n", name, c.out)
			if _, err := e.client.Submit(t.Context(), api.SubmitRequest{SpecFile: name + ".yaml", Spec: spec}); err != nil {
				t.Fatalf("submit: %v", err)
			}
			e.cl.WaitDone(e.client, name, 30*time.Second)
			r, err := e.client.Results(t.Context(), name)
			if err != nil {
				t.Fatal(err)
			}
			tr := r.Trials[0]
			if tr.State != c.state {
				t.Fatalf("state %s (error %.200q), want %s", tr.State, tr.Error, c.state)
			}
			if c.want != "" && !strings.Contains(tr.Error, c.want) {
				t.Errorf("error %.300q, want one that says %q", tr.Error, c.want)
			}
			if len(tr.Error) > 2*bus.MaxErrorBytes {
				t.Errorf("the trial's error is %d bytes", len(tr.Error))
			}
			if c.check != nil {
				if err := c.check(tr.Result); err != nil {
					t.Error(err)
				}
			}
		})
	}
	e.healthy(t, "every poison output")
}

// TestRandomMutations (POISON_LONG=1): thousands of random byte mutations
// of valid messages on every subject, then a healthy study.
func TestRandomMutations(t *testing.T) {
	n := 300
	if os.Getenv("POISON_LONG") != "" {
		n = 5000
	}
	e := start(t)
	e.healthy(t, "start")
	valid := map[string][]byte{
		bus.HeartbeatSubject("a1"):                 bus.Encode(&bus.Heartbeat{Node: "a1", Boot: "x", Resources: bus.Resources{CPU: 1, Memory: 1 << 30}}),
		bus.StartedSubject("healthy-1", "t", "a1"): bus.Encode(&bus.Event{AttemptRef: bus.AttemptRef{Study: "healthy-1", Trial: "t", Attempt: 1}, Kind: bus.EventStarted, Node: "a1"}),
		bus.DispatchSubject("a1"):                  bus.Encode(&bus.DispatchBatch{Dispatches: []bus.Dispatch{{AttemptRef: bus.AttemptRef{Study: "s", Trial: "t", Attempt: 1}, Method: "poison", Threads: 1}}}),
		bus.APISubject(api.VerbSubmit):             specRequest(head + "space:\n  x: [1, 2]\n"),
		bus.APISubject(api.VerbCancel):             []byte(`{"study":"nope","trials":["a"]}`),
	}
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range n {
		for subj, msg := range valid {
			m := mutate(rng, msg)
			if strings.HasPrefix(subj, bus.SubjectAPI) && strings.Contains(string(m), `"spec"`) && i%10 != 0 {
				continue // submits are slow-ish; a tenth of them suffice
			}
			_, _ = e.nc.Request(subj, m, 50*time.Millisecond)
		}
		ev := bus.Encode(&bus.Event{AttemptRef: bus.AttemptRef{Study: "s", Trial: "t", Attempt: 1}, Kind: bus.EventFinished, Outcome: bus.OutcomeSucceeded, Node: "a1", Metrics: map[string]float64{"loss": 1}})
		_, _ = e.js.Publish(t.Context(), bus.EventSubject("s", "t", "a1"), mutate(rng, ev))
	}
	e.healthy(t, fmt.Sprintf("%d rounds of mutations", n))
}

// mutate flips, drops, duplicates or inserts a few bytes of msg.
func mutate(rng *rand.Rand, msg []byte) []byte {
	m := append([]byte(nil), msg...)
	for range 1 + rng.IntN(4) {
		if len(m) == 0 {
			break
		}
		i := rng.IntN(len(m))
		switch rng.IntN(5) {
		case 0:
			m[i] = byte(rng.IntN(256))
		case 1:
			m = append(m[:i], m[i+1:]...)
		case 2:
			m = m[:i]
		case 3:
			tok := []string{"NaN", "1e309", "-1", "null", `"x"`, "{}", "[]", "9223372036854775808"}[rng.IntN(8)]
			m = append(m[:i], append([]byte(tok), m[i:]...)...)
		case 4:
			m = append(m, m[i:]...)
		}
	}
	return m
}
