package checkpoint

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ObjectConfig configures an Object store.
type ObjectConfig struct {
	// Bucket is the JetStream object store's name (default
	// "asymptote-checkpoints"): letters, digits, - and _.
	Bucket string
	// Replicas is how many JetStream servers keep each checkpoint
	// (default 1; use 3 on a three-server cluster so a checkpoint
	// survives the loss of a server).
	Replicas int
	// MaxBytes caps the bucket's size; 0 leaves it unlimited.
	MaxBytes int64
	// MinRate is the slowest rate, in bytes per second, at which a Get
	// whose context has no deadline may stream before it fails as
	// stalled (default 4 MiB/s, after a grace of StallGrace). JetStream
	// bounds every read by a deadline, so without one from the caller
	// Get sets one from the checkpoint's size.
	MinRate int64
	// StallGrace is added to the deadline MinRate gives (default 30s).
	StallGrace time.Duration
	// Logger receives debug lines for puts and deletes; nil discards them.
	Logger *slog.Logger
}

// DefaultBucket is the object store an ObjectConfig without a Bucket uses.
const DefaultBucket = "asymptote-checkpoints"

// Object is a Store in a NATS JetStream object store. JetStream splits
// each checkpoint into chunks and keeps its own SHA-256 digest; Get checks
// the bytes against the caller's Info as well. A checkpoint becomes
// visible under its key only when its last chunk and its description are
// stored: a failed Put purges the chunks it sent.
type Object struct {
	obs     jetstream.ObjectStore
	bucket  string
	minRate int64
	grace   time.Duration
	log     *slog.Logger
}

var _ Store = (*Object)(nil)

// NewObject creates the bucket, or updates its settings, and returns the
// store. It fails, rather than waits, when JetStream does not answer
// before ctx ends (or within the JetStream client's default timeout).
func NewObject(ctx context.Context, js jetstream.JetStream, cfg ObjectConfig) (*Object, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Replicas < 1 || cfg.Replicas > 5 {
		return nil, fmt.Errorf("checkpoint object store %q: %d replicas; JetStream keeps 1 to 5 (use 1 on a single server, 3 on a three-server cluster)", cfg.Bucket, cfg.Replicas)
	}
	if cfg.MinRate <= 0 {
		cfg.MinRate = 4 << 20
	}
	if cfg.StallGrace <= 0 {
		cfg.StallGrace = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      cfg.Bucket,
		Description: "asymptote trial checkpoints",
		Replicas:    cfg.Replicas,
		MaxBytes:    cfg.MaxBytes,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, objectErr(ctx, "create checkpoint object store "+cfg.Bucket, err)
	}
	return &Object{obs: obs, bucket: cfg.Bucket, minRate: cfg.MinRate, grace: cfg.StallGrace, log: cfg.Logger.With("checkpoint_bucket", cfg.Bucket)}, nil
}

// objectErr adds what to do to an error of JetStream.
func objectErr(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("%s: %w; enable JetStream on the NATS servers (jetstream: enabled)", what, err)
	case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionReconnecting):
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%w)", err, cerr)
		}
		return fmt.Errorf("%s: NATS JetStream did not answer: %w; check that the NATS servers are up and reachable from this host, then retry", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Put implements Store.
func (o *Object) Put(ctx context.Context, key string, r io.Reader) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	hr := newHashingReader(ctx, r)
	oi, err := o.obs.Put(ctx, jetstream.ObjectMeta{Name: key}, hr)
	if err != nil {
		if hr.err != nil { // the source failed, or ctx ended, not JetStream
			return Info{}, fmt.Errorf("put checkpoint %q: nothing stored: %w", key, hr.err)
		}
		return Info{}, objectErr(ctx, fmt.Sprintf("put checkpoint %q", key), err)
	}
	info := hr.info(key)
	if got := digestHex(oi.Digest); got != info.SHA256 || int64(oi.Size) != info.Size {
		return Info{}, fmt.Errorf("put checkpoint %q: JetStream recorded %d bytes with SHA-256 %s, but %d bytes with SHA-256 %s were sent; put it again", key, oi.Size, got, info.Size, info.SHA256)
	}
	o.log.Debug("checkpoint stored", "key", key, "bytes", info.Size)
	return info, nil
}

// digestHex turns JetStream's "SHA-256=<base64url>" digest into hex, or
// returns "" for one it cannot read.
func digestHex(d string) string {
	b, err := jetstream.DecodeObjectDigest(d)
	if err != nil {
		return ""
	}
	return hex.EncodeToString(b)
}

// Get implements Store.
func (o *Object) Get(ctx context.Context, key string, want Info) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if err := checkWant(key, want); err != nil {
		return nil, err
	}
	// JetStream gives a Get without a deadline 5s in all; give it one
	// that a healthy stream of this size meets and a stalled one misses.
	cancel := context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel = context.WithTimeout(ctx, o.grace+time.Duration(float64(want.Size)/float64(o.minRate)*float64(time.Second)))
	}
	res, err := o.obs.Get(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		cancel()
		return nil, fmt.Errorf("get checkpoint %q from object store %s: %w (it was never stored, or was deleted)", key, o.bucket, ErrNotFound)
	}
	if err != nil {
		cancel()
		return nil, objectErr(ctx, fmt.Sprintf("get checkpoint %q", key), err)
	}
	return newVerifyingReader(ctx, key, want, &objectReader{ctx: ctx, res: res, cancel: cancel, key: key}), nil
}

// objectReader names JetStream's errors for what they mean to a caller.
type objectReader struct {
	ctx    context.Context
	res    jetstream.ObjectResult
	cancel context.CancelFunc
	key    string
}

func (r *objectReader) Read(p []byte) (int, error) {
	n, err := r.res.Read(p)
	switch {
	case err == nil, err == io.EOF:
	case r.ctx.Err() != nil || errors.Is(err, nats.ErrTimeout):
		// A stream cut short by a deadline also fails JetStream's digest.
		err = objectErr(r.ctx, "read checkpoint "+r.key, err)
	case errors.Is(err, jetstream.ErrDigestMismatch):
		err = &CorruptError{Err: err}
	}
	return n, err
}

func (r *objectReader) Close() error {
	defer r.cancel()
	return r.res.Close()
}

// Delete implements Store.
func (o *Object) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	err := o.obs.Delete(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil
	}
	if err != nil {
		return objectErr(ctx, fmt.Sprintf("delete checkpoint %q", key), err)
	}
	o.log.Debug("checkpoint deleted", "key", key)
	return nil
}

// List implements Store.
func (o *Object) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.grace)
		defer cancel()
	}
	objs, err := o.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, objectErr(ctx, fmt.Sprintf("list checkpoints under %q", prefix), err)
	}
	var out []Info
	for _, oi := range objs {
		if oi.Deleted || !strings.HasPrefix(oi.Name, prefix) {
			continue
		}
		out = append(out, Info{Key: oi.Name, Size: int64(oi.Size), SHA256: digestHex(oi.Digest)})
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}
