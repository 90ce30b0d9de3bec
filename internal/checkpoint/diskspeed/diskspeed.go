// Package diskspeed measures what the checkpoint stores stand on: a
// disk's sequential write (fsynced) and read speed with plain files. It
// also gives the bytes both are measured with, a stream of any length
// that is never held in memory. The store's Go benchmarks and `asymptote
// bench` share it, so the floor and the stores are measured the same way.
package diskspeed

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// BufSize is the buffer the measurements stream through, the same as the
// directory store's.
const BufSize = 1 << 20

// Data returns n bytes made of one random MiB over and over, so a large
// checkpoint streams without being held in memory. Neither store
// compresses, so the repetition does not flatter them.
func Data(n int64) io.Reader {
	return io.LimitReader(&cycle{b: block()}, n)
}

var block = sync.OnceValue(func() []byte {
	b := make([]byte, 1<<20)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(b)
	return b
})

type cycle struct {
	b   []byte
	off int
}

func (c *cycle) Read(p []byte) (int, error) {
	n := copy(p, c.b[c.off:])
	c.off = (c.off + n) % len(c.b)
	return n, nil
}

// Write creates path with n bytes of Data, fsyncs and closes it, and
// returns how long that took.
func Write(path string, n int64) (time.Duration, error) {
	start := time.Now()
	f, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("disk write: %w", err)
	}
	// Hide f's ReadFrom, which would copy in small pieces.
	_, err = io.CopyBuffer(struct{ io.Writer }{f}, Data(n), make([]byte, BufSize))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("disk write %s: %w", path, err)
	}
	return time.Since(start), nil
}

// Read reads path to its end and returns how long that took; a file of
// other than n bytes is an error.
func Read(path string, n int64) (time.Duration, error) {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("disk read: %w", err)
	}
	defer f.Close()
	got, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, make([]byte, BufSize))
	if err != nil {
		return 0, fmt.Errorf("disk read %s: %w", path, err)
	}
	if got != n {
		return 0, fmt.Errorf("disk read %s: %d bytes, want %d", path, got, n)
	}
	return time.Since(start), nil
}

// Evict asks the kernel to drop its cached pages of every regular file
// under root (posix_fadvise DONTNEED), so that the next read of them comes
// from the disk rather than from memory. Pages not yet written back stay
// cached, so call it after the files are synced. A process that keeps its
// own cache of the files (a server's block cache) keeps it.
func Evict(root string) error {
	var errs []error
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		defer f.Close()
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
		return nil
	})
	if err = errors.Join(append(errs, err)...); err != nil {
		return fmt.Errorf("evict cached pages: %w", err)
	}
	return nil
}

// MBps is n bytes over d in megabytes (10^6 bytes) per second.
func MBps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}
