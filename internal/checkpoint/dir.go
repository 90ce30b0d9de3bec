package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Dir is a Store in a directory that every host mounts, the way SLURM
// clusters share data (NFS, Lustre). A key is a path below the root. Put
// writes a temporary file beside the checkpoint, fsyncs it and renames it
// into place, so a checkpoint appears whole or not at all; beside it, a
// small hidden file records its size and SHA-256 for List.
type Dir struct {
	root string
	log  *slog.Logger
}

var _ Store = (*Dir)(nil)

// copyBuf is the size of the buffer a Dir streams through: large enough
// that a shared filesystem sees few, large writes.
const copyBuf = 1 << 20

// NewDir returns the store rooted at root, creating the directory if it
// is missing. log may be nil.
func NewDir(root string, log *slog.Logger) (*Dir, error) {
	if root == "" {
		return nil, errors.New("checkpoint directory is empty; set it to a path every agent host mounts")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("checkpoint directory %q: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("create checkpoint directory: %w; check that the shared filesystem is mounted and writable", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dir{root: abs, log: log.With("checkpoint_store", abs)}, nil
}

// Root returns the absolute path of the store's directory.
func (d *Dir) Root() string { return d.root }

func (d *Dir) path(key string) string { return filepath.Join(d.root, filepath.FromSlash(key)) }

// sumPath is the hidden file beside a checkpoint that holds its size and
// SHA-256.
func sumPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".sha256")
}

// Put implements Store.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	path := d.path(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return Info{}, fmt.Errorf("put checkpoint %q: %w; check that %s is writable", key, err, d.root)
	}
	hr := newHashingReader(ctx, r)
	err := writeAtomic(path, func(f *os.File) error {
		// Hide f's ReadFrom, which would copy in small pieces.
		_, err := io.CopyBuffer(struct{ io.Writer }{f}, hr, make([]byte, copyBuf))
		return err
	})
	if err != nil {
		return Info{}, fmt.Errorf("put checkpoint %q: nothing stored: %w", key, err)
	}
	info := hr.info(key)
	// The sum is written after the checkpoint: a crash between the two
	// leaves a sum whose size or age does not match, which List ignores.
	line := info.SHA256 + " " + strconv.FormatInt(info.Size, 10) + "\n"
	if err := writeAtomic(sumPath(path), func(f *os.File) error {
		_, err := f.WriteString(line)
		return err
	}); err != nil {
		d.log.Warn("checkpoint stored, but not its sum; List will not report its SHA-256", "key", key, "err", err)
	}
	d.log.Debug("checkpoint stored", "key", key, "bytes", info.Size)
	return info, nil
}

// writeAtomic writes path through a temporary file in the same directory:
// write, fsync, rename, then fsync the directory so the rename lasts.
func writeAtomic(path string, write func(*os.File) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	df, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer df.Close()
	if err := df.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// Get implements Store.
func (d *Dir) Get(ctx context.Context, key string, want Info) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if err := checkWant(key, want); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(d.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get checkpoint %q from %s: %w (it was never stored, or was deleted)", key, d.root, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get checkpoint %q: %w", key, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("get checkpoint %q from %s: %w (the key names a directory of checkpoints, not one)", key, d.root, ErrNotFound)
	}
	return newVerifyingReader(ctx, key, want, f), nil
}

// Delete implements Store. It also removes the directories the key's
// checkpoints leave empty, up to the root.
func (d *Dir) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	path := d.path(key)
	var errs []error
	for _, p := range []string{path, sumPath(path)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete checkpoint %q: %w", key, err)
	}
	for dir := filepath.Dir(path); dir != d.root && strings.HasPrefix(dir, d.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil { // not empty, or already gone
			break
		}
	}
	d.log.Debug("checkpoint deleted", "key", key)
	return nil
}

// List implements Store. SHA256 comes from the sum written beside each
// checkpoint, and is empty where that sum is missing or stale.
func (d *Dir) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	// Walk only the directory the prefix's complete segments name.
	start := d.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = d.path(prefix[:i])
	}
	var out []Info
	err := filepath.WalkDir(start, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == start {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(e.Name(), ".") && path != start {
			if e.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(d.root, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) || !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		out = append(out, Info{Key: key, Size: fi.Size(), SHA256: readSum(path, fi)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list checkpoints under %q in %s: %w", prefix, d.root, err)
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// readSum returns the SHA-256 recorded beside path if it is at least as
// new as the checkpoint and records its size, or "".
func readSum(path string, fi fs.FileInfo) string {
	sp := sumPath(path)
	st, err := os.Stat(sp)
	if err != nil || st.ModTime().Before(fi.ModTime()) {
		return ""
	}
	b, err := os.ReadFile(sp)
	if err != nil {
		return ""
	}
	sum, size, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	if !ok || size != strconv.FormatInt(fi.Size(), 10) {
		return ""
	}
	return sum
}
