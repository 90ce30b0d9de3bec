package methodmgr

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"asymptote.dev/asymptote/internal/procgroup"
)

// markerEnv names the environment variable that tags every plugin process
// (and, by inheritance, everything it starts) with a per-process token. The
// token is what makes a registered pid safe to kill after an agent restart:
// a pid that was reused by an unrelated process lacks it.
const markerEnv = "ASYMPTOTE_METHOD_INSTANCE"

// regEntry is one registered plugin process group.
type regEntry struct {
	PID     int       `json:"pid"` // also the process group id
	Token   string    `json:"token"`
	Method  string    `json:"method"`
	Started time.Time `json:"started"`
}

// marker returns the environment entry carrying e's token.
func (e regEntry) marker() string { return markerEnv + "=" + e.Token }

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// registry records the plugin process groups the agent owns, one file per
// group under dir, so that a restarted agent can kill what its predecessor
// left running.
type registry struct{ dir string }

func (r *registry) path(pid int) string { return filepath.Join(r.dir, strconv.Itoa(pid)+".json") }

// add records e; the file is written whole or not at all.
func (r *registry) add(e regEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	tmp := r.path(e.PID) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, r.path(e.PID))
}

// remove forgets pid.
func (r *registry) remove(pid int) error {
	err := os.Remove(r.path(pid))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// cleanOrphans kills every registered process group that still has a
// member carrying its entry's token, and forgets all entries. It returns
// the group ids it killed.
func (r *registry) cleanOrphans() ([]int, error) {
	files, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, err
	}
	var (
		killed []int
		errs   []error
		groups map[int][]int // pgid -> member pids, read once on demand
	)
	for _, f := range files {
		p := filepath.Join(r.dir, f.Name())
		if !strings.HasSuffix(f.Name(), ".json") {
			_ = os.Remove(p) // a torn .tmp
			continue
		}
		var e regEntry
		b, err := os.ReadFile(p)
		if err == nil {
			err = json.Unmarshal(b, &e)
		}
		if err != nil || e.PID <= 1 || e.Token == "" {
			errs = append(errs, fmt.Errorf("pid registry entry %s: unreadable, dropped: %v", f.Name(), err))
			_ = os.Remove(p)
			continue
		}
		if groups == nil {
			groups = procgroup.All()
		}
		if groupMarked(groups[e.PID], e.marker()) {
			if err := syscall.Kill(-e.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("kill orphaned plugin group %d: %w", e.PID, err))
				continue
			}
			killed = append(killed, e.PID)
		}
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
		}
	}
	return killed, errors.Join(errs...)
}

// groupMarked reports whether any of pids has marker in its environment.
func groupMarked(pids []int, marker string) bool {
	want := []byte(marker)
	for _, pid := range pids {
		env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil {
			continue
		}
		for kv := range bytes.SplitSeq(env, []byte{0}) {
			if bytes.Equal(kv, want) {
				return true
			}
		}
	}
	return false
}
