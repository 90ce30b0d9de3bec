package sdk

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestCheckpointRequestRoundTrip(t *testing.T) {
	root := t.TempDir()
	in := (&TrialRequest{Study: "s", TrialID: "t", Attempt: 3, Threads: 1, Params: map[string]any{},
		Resume: &Checkpoint{Step: 40, Metrics: map[string]float64{"val_loss": 2.5}, Dir: "/tmp/ck"}}).WithCheckpointRoot(root)
	p, err := requestToProto(in, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := requestFromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	if out.CheckpointRoot() != root {
		t.Errorf("root = %q, want %q", out.CheckpointRoot(), root)
	}
	if !reflect.DeepEqual(out.Resume, in.Resume) {
		t.Errorf("resume = %+v, want %+v", out.Resume, in.Resume)
	}
	if m := metricsFromProto(metricsToProto(Metrics{Step: 7, Values: map[string]float64{"a": 1}, Checkpoint: "/x"}).GetMetrics()); m.Checkpoint != "/x" {
		t.Errorf("metrics checkpoint = %q, want /x", m.Checkpoint)
	}
}

func TestNewCheckpoint(t *testing.T) {
	if _, err := (&TrialRequest{}).NewCheckpoint(1); !errors.Is(err, ErrNoCheckpoints) {
		t.Errorf("without a root: err = %v, want ErrNoCheckpoints", err)
	}
	req := (&TrialRequest{}).WithCheckpointRoot(t.TempDir())
	a, err := req.NewCheckpoint(5)
	if err != nil {
		t.Fatal(err)
	}
	b, err := req.NewCheckpoint(5)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("two checkpoints of one step share %q", a)
	}
	if err := checkCheckpointDir(req.CheckpointRoot(), a); err != nil {
		t.Errorf("a directory from NewCheckpoint is refused: %v", err)
	}
}

func TestCheckCheckpointDir(t *testing.T) {
	root := t.TempDir()
	inside := filepath.Join(root, "step-1")
	if err := os.Mkdir(inside, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "link")
	if err := os.Symlink("/etc", link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, root, dir string
		ok              bool
	}{
		{"inside", root, inside, true},
		{"the root itself", root, root, false},
		{"outside", root, "/etc", false},
		{"escaping", root, filepath.Join(root, "..", "x"), false},
		{"missing", root, filepath.Join(root, "nope"), false},
		{"a file", root, file, false},
		{"a symlink out", root, link, false},
		{"no root", "", inside, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := checkCheckpointDir(tt.root, tt.dir)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrProtocol) {
				t.Errorf("err = %v, want ErrProtocol", err)
			}
		})
	}
}
