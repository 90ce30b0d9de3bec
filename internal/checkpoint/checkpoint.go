// Package checkpoint stores the checkpoints of long trials where they
// outlive the host that wrote them, so an attempt that went stale can
// resume on another agent from its last step instead of from scratch.
//
// It is the storage layer only: a Store streams blobs in and out under
// keys like "<study>/<trial>/<attempt>-<step>" and checks every byte it
// gives back against the size and SHA-256 that Put returned. Two stores
// exist: Dir, a directory on a shared filesystem (NFS, Lustre), and
// Object, a NATS JetStream object store. The agent and the leader share
// this package; it depends on neither, nor on etcd.
package checkpoint

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
)

// Store keeps checkpoint blobs. Implementations stream: no method holds a
// whole checkpoint in memory.
type Store interface {
	// Put streams r under key and returns its size and SHA-256. The
	// checkpoint exists only once Put returns without error: an upload
	// that fails part way (r errors, ctx ends, the store fails) leaves
	// whatever was under key before, and never a partial blob.
	Put(ctx context.Context, key string, r io.Reader) (Info, error)
	// Get streams the checkpoint under key. The reader checks what it
	// returns against want (the Info that Put returned): at EOF, or as
	// soon as more bytes than want.Size arrive, a mismatch is a
	// *CorruptError. A caller must read to io.EOF before it trusts the
	// bytes. A missing key is an error wrapping ErrNotFound.
	Get(ctx context.Context, key string, want Info) (io.ReadCloser, error)
	// Delete removes the checkpoint under key. Deleting a missing key is
	// not an error, so a retried cleanup succeeds.
	Delete(ctx context.Context, key string) error
	// List returns the checkpoints whose keys start with prefix, sorted
	// by key. An empty prefix lists them all.
	List(ctx context.Context, prefix string) ([]Info, error)
}

// Info identifies one stored checkpoint.
type Info struct {
	Key  string
	Size int64
	// SHA256 is the hex SHA-256 of the bytes. List leaves it empty where
	// the store cannot tell it without reading the checkpoint.
	SHA256 string
}

// ErrNotFound is wrapped by the errors of Get for a key with no
// checkpoint.
var ErrNotFound = errors.New("checkpoint not found")

// CorruptError says that the bytes read under Key are not the ones that
// were stored: truncated, altered, or replaced.
type CorruptError struct {
	Key string
	// Want is what the caller expected; Got is what was read. Got.SHA256
	// is empty when reading stopped early because more than Want.Size
	// bytes arrived.
	Want, Got Info
	// Err is an error of the store's own integrity check, if it had one.
	Err error
}

func (e *CorruptError) Error() string {
	got := "more than " + strconv.FormatInt(e.Want.Size, 10) + " bytes"
	if e.Got.SHA256 != "" {
		got = fmt.Sprintf("%d bytes with SHA-256 %s", e.Got.Size, e.Got.SHA256)
	}
	msg := fmt.Sprintf("checkpoint %q is corrupt: want %d bytes with SHA-256 %s, read %s; do not resume from it: use an earlier checkpoint or restart the trial from scratch", e.Key, e.Want.Size, e.Want.SHA256, got)
	if e.Err != nil {
		msg += " (" + e.Err.Error() + ")"
	}
	return msg
}

func (e *CorruptError) Unwrap() error { return e.Err }

// maxKeyLen bounds a key; a study, a trial ID and two numbers fit well
// inside it, and a filesystem path built from it stays short.
const maxKeyLen = 512

// KeyFor returns the key of the checkpoint that attempt of trial in study
// wrote at step, validated.
func KeyFor(study, trial string, attempt int, step int64) (string, error) {
	key := fmt.Sprintf("%s/%s/%d-%d", study, trial, attempt, step)
	return key, ValidateKey(key)
}

// ValidateKey checks that key is relative, has no empty, "." or ".."
// segment, no segment starting with "." (the stores keep their temporary
// files under such names), and only letters, digits and . _ - + = @ ,
// between its slashes.
func ValidateKey(key string) error {
	if key == "" {
		return errors.New("checkpoint key is empty; use <study>/<trial>/<attempt>-<step>")
	}
	if err := checkChars(key); err != nil {
		return err
	}
	if len(key) > maxKeyLen {
		return fmt.Errorf("checkpoint key %.40q... is %d bytes long; keep keys under %d bytes (shorten the study or trial name)", key, len(key), maxKeyLen)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if err := checkSegment(key, seg); err != nil {
			return err
		}
	}
	return nil
}

// validatePrefix checks a List prefix: like a key, except that it may be
// empty and its last segment may be partial or empty.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := checkChars(prefix); err != nil {
		return err
	}
	segs := strings.Split(prefix, "/")
	for i, seg := range segs {
		if i == len(segs)-1 && (seg == "" || (seg != "." && seg != ".." && !strings.HasPrefix(seg, "."))) {
			break
		}
		if err := checkSegment(prefix, seg); err != nil {
			return err
		}
	}
	return nil
}

func checkChars(key string) error {
	if strings.HasPrefix(key, "/") {
		return fmt.Errorf("checkpoint key %q is absolute; keys are relative to the store: drop the leading /", key)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !keyByte(c) {
			return fmt.Errorf("checkpoint key %q has %q at byte %d; use only letters, digits, / and . _ - + = @ ,", key, c, i)
		}
	}
	return nil
}

func checkSegment(key, seg string) error {
	switch {
	case seg == "":
		return fmt.Errorf("checkpoint key %q has an empty segment (a leading, trailing or double /); remove it", key)
	case seg == "." || seg == "..":
		return fmt.Errorf("checkpoint key %q has a %q segment; keys may not climb out of the store: name the checkpoint directly", key, seg)
	case seg[0] == '.':
		return fmt.Errorf("checkpoint key %q has segment %q starting with '.', which the stores reserve for temporary files; start it with a letter or digit", key, seg)
	}
	return nil
}

func keyByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("/._-+=@,", c) >= 0
}

// checkWant rejects a Get whose want cannot verify anything.
func checkWant(key string, want Info) error {
	if want.Key != "" && want.Key != key {
		return fmt.Errorf("checkpoint %q: want names key %q; pass the Info that Put returned for this key", key, want.Key)
	}
	if want.Size < 0 {
		return fmt.Errorf("checkpoint %q: want has negative size %d; pass the Info that Put returned", key, want.Size)
	}
	if b, err := hex.DecodeString(want.SHA256); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("checkpoint %q: want has SHA-256 %q, not 64 hex digits; pass the Info that Put returned, so the checkpoint can be verified", key, want.SHA256)
	}
	return nil
}

// hashingReader counts and hashes what passes through it and stops when
// ctx ends, so a Put of a slow source can be cancelled between reads.
type hashingReader struct {
	ctx context.Context
	r   io.Reader
	h   hash.Hash
	n   int64
	err error // the first error other than io.EOF, from r or ctx
}

func newHashingReader(ctx context.Context, r io.Reader) *hashingReader {
	return &hashingReader{ctx: ctx, r: r, h: sha256.New()}
}

func (h *hashingReader) Read(p []byte) (int, error) {
	if err := h.ctx.Err(); err != nil {
		h.err = err
		return 0, err
	}
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	if err != nil && err != io.EOF && h.err == nil {
		h.err = err
	}
	return n, err
}

func (h *hashingReader) info(key string) Info {
	return Info{Key: key, Size: h.n, SHA256: hex.EncodeToString(h.h.Sum(nil))}
}

// verifyingReader checks the bytes of a Get against want as they pass.
type verifyingReader struct {
	hashingReader
	c    io.Closer
	key  string
	want Info
	err  error // sticky: once corrupt, always corrupt
}

func newVerifyingReader(ctx context.Context, key string, want Info, rc io.ReadCloser) *verifyingReader {
	want.Key = key
	return &verifyingReader{hashingReader: *newHashingReader(ctx, rc), c: rc, key: key, want: want}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.hashingReader.Read(p)
	if v.n > v.want.Size {
		v.err = &CorruptError{Key: v.key, Want: v.want, Got: Info{Key: v.key, Size: v.n}}
		return 0, v.err
	}
	var ce *CorruptError
	switch {
	case err == io.EOF:
		if got := v.info(v.key); got != v.want {
			v.err = &CorruptError{Key: v.key, Want: v.want, Got: got}
			return n, v.err
		}
	case errors.As(err, &ce):
		// The store's own check failed; report what this reader saw.
		ce.Key, ce.Want, ce.Got = v.key, v.want, v.info(v.key)
		v.err = ce
		return n, v.err
	case err != nil:
		v.err = fmt.Errorf("read checkpoint %q: %w", v.key, err)
		return n, v.err
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.c.Close() }
