package command

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/export"
	"asymptote.dev/asymptote/plugins/methods/synthetic"
)

// TestResultsHistory prints a finished study's metric history from the
// command line, as CSV on standard output and as a Parquet file.
func TestResultsHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: embedded servers")
	}
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", bus.Resources{CPU: 2, Memory: 1 << 30}, clustertest.InProcess{"synthetic": synthetic.New()})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	spec := "name: hist\nmethod: synthetic\nspace:\n  params: [1e6, 1e7, 1e8]\nfixed: {tokens: 1e9, steps: 4, checkpoint_every: 2}\nresources: {cpu: 0.5, memory: 16MiB}\n"
	if _, err := cl.Client().Submit(ctx, api.SubmitRequest{SpecFile: "hist.yaml", Spec: spec}); err != nil {
		t.Fatal(err)
	}
	cl.WaitDone(cl.Client(), "hist", 30*time.Second)
	url := cl.Servers.NATSURL

	code, out, errOut := runCLI(t, "results", "hist", "-history", "-nats-url", url)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// 3 trials x 4 steps x 4 values (val_loss, train_loss, tokens, flops).
	if len(rows) != 1+48 || strings.Join(rows[0], ",") != "trial,attempt,step,time,metric,value" {
		t.Fatalf("%d rows, header %v:\n%s", len(rows), rows[0], out)
	}

	// A team's identity reads the same history through the leader, and
	// another team is answered as for a missing study.
	code, viaLeader, errOut := runCLI(t, "results", "hist", "-history", "-team", "default", "-identity", "viewer", "-nats-url", url)
	if code != 0 || viaLeader != out {
		t.Errorf("through the leader: exit %d, %s; want the stream's CSV:\n%s\ngot:\n%s", code, errOut, out, viaLeader)
	}
	code, _, errOut = runCLI(t, "results", "hist", "-history", "-team", "other", "-identity", "viewer-other", "-nats-url", url)
	if code == 0 || !strings.Contains(errOut, `no study named "hist"`) {
		t.Errorf("another team reads hist's history: exit %d, %s; want no study named \"hist\"", code, errOut)
	}

	file := filepath.Join(t.TempDir(), "hist.parquet")
	if code, _, errOut := runCLI(t, "results", "hist", "-history", "-format", "parquet", "-o", file, "-nats-url", url); code != 0 {
		t.Fatalf("parquet: exit %d: %s", code, errOut)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	recs, err := parquet.Read[export.Record](f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 48 {
		t.Errorf("%d parquet records, want 48", len(recs))
	}
	if code, _, errOut := runCLI(t, "results", "hist", "-trial", "x", "-nats-url", url); code != 2 || !strings.Contains(errOut, "add -history") {
		t.Errorf("-trial without -history: exit %d, %s", code, errOut)
	}

	// The anytime records: the reports saved with a checkpoint, after
	// step 2 of each trial (none after the last step).
	code, out, errOut = runCLI(t, "results", "hist", "-checkpoints", "-nats-url", url)
	if code != 0 {
		t.Fatalf("-checkpoints: exit %d: %s", code, errOut)
	}
	rows, err = csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+3*4 {
		t.Fatalf("-checkpoints: %d rows, want a header and 3 trials x 4 values:\n%s", len(rows), out)
	}
	for _, r := range rows[1:] {
		if r[2] != "2" {
			t.Errorf("-checkpoints row at step %s, want 2: %v", r[2], r)
		}
	}
}
