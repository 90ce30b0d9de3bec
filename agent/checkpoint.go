package agent

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/checkpoint"
	"asymptote.dev/asymptote/plugins/sdk"
)

// An attempt's checkpoints on the agent: the method writes each into a
// directory under the attempt's scratch space, the agent packs it as a tar
// stream into the checkpoint store (never whole in memory), and only once
// the store holds it does the checkpoint event go out for the leader to
// record. A new attempt unpacks the latest checkpoint that verifies.

// scratch is an attempt's local directory: "resume" holds the checkpoint
// it resumed from, "new" the ones the method writes.
func (a *Agent) scratch(ref bus.AttemptRef) string {
	return filepath.Join(a.cfg.ScratchDir, ref.Study, fmt.Sprintf("%s-%d", ref.Trial, ref.Attempt))
}

// restore downloads and unpacks the first of d's checkpoints that
// verifies. It returns nil (start from scratch) when none does, and in
// note why each one before was passed over.
func (a *Agent) restore(ctx context.Context, d bus.Dispatch, dir string, log *slog.Logger) (*sdk.Checkpoint, string) {
	if len(d.Resume) == 0 {
		return nil, ""
	}
	if a.cfg.Checkpoints == nil {
		return nil, "the agent has no checkpoint store configured; started from scratch"
	}
	var skipped []string
	deadline := time.Now().Add(a.cfg.RestoreWait)
	for i, c := range d.Resume {
		into := filepath.Join(dir, fmt.Sprintf("resume-%d", i))
		err := a.unpack(ctx, c, into)
		for wait := 250 * time.Millisecond; err != nil && errors.As(err, new(*unreachableError)) && time.Now().Add(wait).Before(deadline); wait = min(2*wait, 4*time.Second) {
			log.Warn("checkpoint store unreachable; trying again", "step", c.Step, "in", wait, "error", err)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
			if ctx.Err() != nil {
				break
			}
			_ = os.RemoveAll(into)
			err = a.unpack(ctx, c, into)
		}
		if err == nil {
			note := fmt.Sprintf("resumed from the checkpoint after step %d of attempt %d", c.Step, c.Attempt)
			if len(skipped) > 0 {
				note += "; " + strings.Join(skipped, "; ")
			}
			return &sdk.Checkpoint{Step: c.Step, Metrics: c.Metrics, Dir: into}, note
		}
		log.Warn("checkpoint not usable; trying an earlier one", "step", c.Step, "key", c.Key, "error", err)
		_ = os.RemoveAll(into)
		skipped = append(skipped, fmt.Sprintf("checkpoint after step %d not used: %v", c.Step, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "started from scratch; " + strings.Join(skipped, "; ")
}

// unreachableError is a store that did not answer when a checkpoint was
// asked for: worth asking again, unlike a missing or corrupt one.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// restoreTimeout bounds the download of one checkpoint.
const restoreTimeout = 30 * time.Minute

// unpack streams checkpoint c from the store into dir, verifying it.
func (a *Agent) unpack(ctx context.Context, c bus.Checkpoint, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	rc, err := a.cfg.Checkpoints.Get(ctx, c.Key, checkpoint.Info{Key: c.Key, Size: c.Size, SHA256: c.SHA256})
	if err != nil {
		var ce *checkpoint.CorruptError
		if errors.Is(err, checkpoint.ErrNotFound) || errors.As(err, &ce) || ctx.Err() != nil {
			return err
		}
		return &unreachableError{err}
	}
	defer rc.Close()
	if err := untar(rc, dir); err != nil {
		// Bad bytes usually break the archive before its end: read on,
		// so the store's check says what is wrong when it can.
		var ce *checkpoint.CorruptError
		if _, derr := io.Copy(io.Discard, rc); errors.As(derr, &ce) {
			return derr
		}
		return err
	}
	// The store verifies at EOF: read what the tar reader left, so a
	// checkpoint with a bad tail is refused, not half trusted.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return err
	}
	return nil
}

// untar unpacks a tar stream of regular files and directories into dir.
// Anything else, or a name that leaves dir, is refused.
func untar(r io.Reader, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("checkpoint archive: %w", err)
		}
		name := filepath.FromSlash(h.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("checkpoint archive: entry %q leaves its directory", h.Name)
		}
		path := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("checkpoint archive: %s: %w", h.Name, err)
			}
		default:
			return fmt.Errorf("checkpoint archive: entry %q is not a file or a directory", h.Name)
		}
	}
}

// writeTar packs dir's regular files and directories into w. Symbolic
// links and other special files are refused: a checkpoint must be
// self-contained.
func writeTar(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if !fi.Mode().IsDir() && !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is neither a file nor a directory; a checkpoint holds only those", rel)
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		h.Uname, h.Gname, h.ModTime = "", "", time.Time{}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// uploader stores one attempt's checkpoints in order, in the background,
// so a method that saves one pauses only to write its files. A checkpoint
// saved while another uploads waits; a newer one replaces it there, since
// only the latest counts.
type uploader struct {
	a    *Agent
	ref  bus.AttemptRef
	log  *slog.Logger
	mu   sync.Mutex
	next *sdk.Metrics // waiting for the upload in flight
	busy bool
	// stored is the step of the latest checkpoint stored and reported
	// (0: none yet); done is closed and replaced each time one is.
	stored int64
	done   chan struct{}
	idle   chan struct{} // closed and replaced when the queue empties
	wg     sync.WaitGroup
}

func newUploader(a *Agent, ref bus.AttemptRef, log *slog.Logger) *uploader {
	return &uploader{a: a, ref: ref, log: log, done: make(chan struct{}), idle: make(chan struct{})}
}

// add queues the checkpoint that m reports.
func (u *uploader) add(m sdk.Metrics) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.next != nil {
		u.log.Debug("a newer checkpoint replaces one not yet uploaded", "step", u.next.Step, "newer", m.Step)
		_ = os.RemoveAll(u.next.Checkpoint)
	}
	u.next = &m
	if !u.busy {
		u.busy = true
		u.wg.Add(1)
		go u.loop()
	}
}

func (u *uploader) loop() {
	defer u.wg.Done()
	for {
		u.mu.Lock()
		m := u.next
		u.next = nil
		if m == nil {
			u.busy = false
			close(u.idle)
			u.idle = make(chan struct{})
			u.mu.Unlock()
			return
		}
		u.mu.Unlock()
		if err := u.store(*m); err != nil {
			u.log.Error("checkpoint not stored; the attempt goes on, and would resume from an earlier one", "step", m.Step, "error", err)
		}
		_ = os.RemoveAll(m.Checkpoint)
	}
}

// store uploads one checkpoint and reports it.
func (u *uploader) store(m sdk.Metrics) error {
	ctx := u.a.publishing
	key, err := checkpoint.KeyFor(u.ref.Study, u.ref.Trial, u.ref.Attempt, m.Step)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, m.Checkpoint)) }()
	start := time.Now()
	info, err := u.a.cfg.Checkpoints.Put(ctx, key, pr)
	_ = pr.CloseWithError(errors.New("upload ended"))
	if err != nil {
		return err
	}
	finite, nonFinite := bus.SplitFinite(m.Values)
	c := &bus.Checkpoint{
		Attempt: u.ref.Attempt, Step: m.Step, Node: u.a.cfg.NodeID, Key: info.Key, Size: info.Size, SHA256: info.SHA256,
		Metrics: finite, NonFinite: nonFinite, Time: time.Now(),
	}
	u.log.Info("checkpoint stored", "step", m.Step, "bytes", info.Size, "took", time.Since(start))
	if !u.a.publish(&bus.Event{AttemptRef: u.ref, Kind: bus.EventCheckpoint, Node: u.a.cfg.NodeID, Time: c.Time, Checkpoint: c}) {
		return errors.New("the checkpoint event was not published")
	}
	u.mu.Lock()
	u.stored = m.Step
	close(u.done)
	u.done = make(chan struct{})
	u.mu.Unlock()
	return nil
}

// latest returns the step of the latest checkpoint stored and a channel
// closed when the next one is.
func (u *uploader) latest() (int64, <-chan struct{}) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.stored, u.done
}

// wait waits for the uploads queued so far, or for ctx to end.
func (u *uploader) wait(ctx context.Context) {
	u.mu.Lock()
	if !u.busy {
		u.mu.Unlock()
		return
	}
	idle := u.idle
	u.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
	}
}
