package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/checkpoint"
)

// putCheckpoint stores a checkpoint holding one file, state, with
// content, and returns its record.
func putCheckpoint(t *testing.T, st checkpoint.Store, step int64, content string) bus.Checkpoint {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "state"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeTar(&buf, dir); err != nil {
		t.Fatal(err)
	}
	key, err := checkpoint.KeyFor("s", "t", 1, step)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Put(t.Context(), key, &buf)
	if err != nil {
		t.Fatal(err)
	}
	return bus.Checkpoint{Attempt: 1, Step: step, Key: info.Key, Size: info.Size, SHA256: info.SHA256}
}

// damage rewrites the bytes of a stored checkpoint in place, as a faulty
// disk or a half-finished copy would.
func damage(t *testing.T, st *checkpoint.Dir, c bus.Checkpoint, how func([]byte) []byte) {
	t.Helper()
	path := filepath.Join(st.Root(), filepath.FromSlash(c.Key))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, how(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// flakyStore is a store that does not answer its first `down` Gets, as
// NATS restarting does.
type flakyStore struct {
	checkpoint.Store
	down *int
}

func (f flakyStore) Get(ctx context.Context, key string, info checkpoint.Info) (io.ReadCloser, error) {
	if *f.down > 0 {
		*f.down--
		return nil, errors.New("NATS JetStream did not answer")
	}
	return f.Store.Get(ctx, key, info)
}

// failingStore is a store that is down.
type failingStore struct{ checkpoint.Store }

func (failingStore) Get(context.Context, string, checkpoint.Info) (io.ReadCloser, error) {
	return nil, errors.New("NATS JetStream did not answer")
}

// TestRestorePassesOverBadCheckpoints: a new attempt resumes from the
// latest checkpoint that verifies, says why it passed over any later one,
// and starts from scratch when none does; it never resumes from bad bytes.
func TestRestorePassesOverBadCheckpoints(t *testing.T) {
	flip := func(b []byte) []byte { b[len(b)/2] ^= 0x01; return b }
	truncate := func(b []byte) []byte { return b[:len(b)-100] }
	for _, tc := range []struct {
		name string
		// break the latest (and, with both, the earlier) checkpoint.
		latest, earlier func([]byte) []byte
		missing         bool
		down            bool
		flaky           int   // Gets that fail before the store answers
		wantStep        int64 // 0: from scratch
		wantNote        string
	}{
		{name: "good", wantStep: 40, wantNote: "resumed from the checkpoint after step 40 of attempt 1"},
		{name: "bit flip", latest: flip, wantStep: 20, wantNote: "checkpoint after step 40 not used: checkpoint \"s/t/1-40\" is corrupt"},
		{name: "truncated", latest: truncate, wantStep: 20, wantNote: "is corrupt"},
		{name: "half-uploaded (missing)", missing: true, wantStep: 20, wantNote: "checkpoint not found"},
		{name: "all corrupt", latest: flip, earlier: truncate, wantNote: "started from scratch"},
		{name: "store unavailable", down: true, wantNote: "started from scratch; checkpoint after step 40 not used: NATS JetStream did not answer"},
		{name: "store back within the wait", flaky: 2, wantStep: 40, wantNote: "resumed from the checkpoint after step 40 of attempt 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := checkpoint.NewDir(t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			early := putCheckpoint(t, dir, 20, "twenty")
			late := putCheckpoint(t, dir, 40, strings.Repeat("forty", 100))
			if tc.latest != nil {
				damage(t, dir, late, tc.latest)
			}
			if tc.earlier != nil {
				damage(t, dir, early, tc.earlier)
			}
			if tc.missing {
				if err := dir.Delete(t.Context(), late.Key); err != nil {
					t.Fatal(err)
				}
			}
			var st checkpoint.Store = dir
			if tc.down {
				st = failingStore{dir}
			}
			if tc.flaky > 0 {
				st = flakyStore{dir, &tc.flaky}
			}
			a := &Agent{cfg: Config{Checkpoints: st, RestoreWait: 2 * time.Second}}
			scratch := t.TempDir()
			got, note := a.restore(t.Context(), bus.Dispatch{Resume: []bus.Checkpoint{late, early}}, scratch, slog.New(slog.DiscardHandler))
			if !strings.Contains(note, tc.wantNote) {
				t.Errorf("note %q, want it to contain %q", note, tc.wantNote)
			}
			if tc.wantStep == 0 {
				if got != nil {
					t.Fatalf("resumed from step %d, want from scratch", got.Step)
				}
				return
			}
			if got == nil || got.Step != tc.wantStep {
				t.Fatalf("resumed from %+v, want step %d", got, tc.wantStep)
			}
			want := "twenty"
			if tc.wantStep == 40 {
				want = strings.Repeat("forty", 100)
			}
			if b, err := os.ReadFile(filepath.Join(got.Dir, "state")); err != nil || string(b) != want {
				t.Errorf("restored state %q, %v; want %q", b, err, want)
			}
		})
	}
}

func TestTarRefusesWhatIsNotAFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := writeTar(io.Discard, dir); err == nil {
		t.Error("a checkpoint with a symbolic link was packed")
	}
	// An archive that names a path outside its directory is refused.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "../escape", Mode: 0o600, Size: 1, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write([]byte("x"))
	_ = tw.Close()
	into := t.TempDir()
	if err := untar(&buf, filepath.Join(into, "in")); err == nil || !strings.Contains(err.Error(), "leaves its directory") {
		t.Errorf("untar of ../escape: %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(into, "escape")); err == nil {
		t.Error("untar wrote outside its directory")
	}
}
