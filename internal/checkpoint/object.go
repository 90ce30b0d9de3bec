package checkpoint

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
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
	// PartSize is the most bytes one JetStream object holds (default 64
	// MiB); a larger checkpoint is stored as several parts. The JetStream
	// client sends a whole object without waiting for the server, which
	// turns publishes away ("429 too many requests") once more than its
	// max_buffered_size (default 128 MiB) waits to be written; a part
	// ends with a wait for every acknowledgement, so it must fit in
	// that buffer.
	PartSize int64
	// MinRate is the slowest rate, in bytes per second, at which a part
	// may stream before a Get or Put fails as stalled (default 4 MiB/s,
	// after a grace of StallGrace). JetStream bounds every read and every
	// acknowledgement by a deadline; without one from the caller, Get and
	// Put give each part one.
	MinRate int64
	// StallGrace is added to the deadline MinRate gives (default 30s),
	// and bounds a List whose context has no deadline.
	StallGrace time.Duration
	// Logger receives debug lines for puts and deletes; nil discards them.
	Logger *slog.Logger
	// Open uses the bucket as it is when it exists, creating it only when
	// it does not: what agents do, so that only coordinators, which know
	// the cluster's replication, set the bucket's settings.
	Open bool
}

// DefaultBucket is the object store an ObjectConfig without a Bucket uses.
const DefaultBucket = "asymptote-checkpoints"

// partsPrefix starts the names of the parts; no key can start with "."
// so List never confuses a part with a checkpoint.
const partsPrefix = ".parts/"

// Object is a Store in a NATS JetStream object store. A checkpoint is a
// small manifest under its key, listing its size, SHA-256 and parts; the
// parts, objects of up to PartSize bytes each, are stored first, so the
// checkpoint appears only when the manifest does. JetStream keeps its own
// digest of each part; Get checks the whole against the caller's Info.
type Object struct {
	obs      jetstream.ObjectStore
	bucket   string
	partSize int64
	minRate  int64
	grace    time.Duration
	log      *slog.Logger
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
	if cfg.PartSize <= 0 {
		cfg.PartSize = 64 << 20
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
	var obs jetstream.ObjectStore
	var err error
	if cfg.Open {
		obs, err = js.ObjectStore(ctx, cfg.Bucket)
	}
	if !cfg.Open || errors.Is(err, jetstream.ErrBucketNotFound) {
		obs, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      cfg.Bucket,
			Description: "asymptote trial checkpoints",
			Replicas:    cfg.Replicas,
			MaxBytes:    cfg.MaxBytes,
			Storage:     jetstream.FileStorage,
		})
	}
	if err != nil {
		return nil, objectErr(ctx, "create checkpoint object store "+cfg.Bucket, err)
	}
	return &Object{
		obs: obs, bucket: cfg.Bucket, partSize: cfg.PartSize, minRate: cfg.MinRate, grace: cfg.StallGrace,
		log: cfg.Logger.With("checkpoint_bucket", cfg.Bucket),
	}, nil
}

// objectErr adds what to do to an error of JetStream.
func objectErr(ctx context.Context, what string, err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.Code == 429:
		return fmt.Errorf("%s: %w; the NATS servers could not write the checkpoint as fast as it was sent: set the store's PartSize well below the servers' max_buffered_size (128 MiB by default), or give JetStream faster disks", what, err)
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

// manifest is the object under a checkpoint's key.
type manifest struct {
	Size   int64    `json:"size"`
	SHA256 string   `json:"sha256"`
	Parts  []string `json:"parts"`
}

// Metadata keys of a manifest object, so List needs no second read.
const (
	metaSize   = "asymptote-size"
	metaSHA256 = "asymptote-sha256"
)

// maxManifest bounds the manifest Get reads into memory.
const maxManifest = 1 << 20

// Put implements Store.
func (o *Object) Put(ctx context.Context, key string, r io.Reader) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	prefix := partsPrefix + key + "/" + hex.EncodeToString(id) + "/"
	hr := newHashingReader(ctx, r)
	br := bufio.NewReaderSize(hr, 64<<10)
	var parts []string
	fail := func(err error) (Info, error) {
		o.deleteParts(ctx, key, parts)
		if hr.err != nil { // the source failed, or ctx ended, not JetStream
			return Info{}, fmt.Errorf("put checkpoint %q: nothing stored: %w", key, hr.err)
		}
		return Info{}, objectErr(ctx, fmt.Sprintf("put checkpoint %q: nothing stored", key), err)
	}
	for {
		if _, err := br.Peek(1); err == io.EOF {
			break
		} else if err != nil {
			return fail(err)
		}
		name := prefix + strconv.Itoa(len(parts))
		parts = append(parts, name)
		pctx, cancel := o.partContext(ctx)
		_, err := o.obs.Put(pctx, jetstream.ObjectMeta{Name: name}, io.LimitReader(br, o.partSize))
		cancel()
		if err != nil {
			return fail(err)
		}
	}
	info := hr.info(key)
	body, err := json.Marshal(manifest{Size: info.Size, SHA256: info.SHA256, Parts: parts})
	if err != nil {
		return fail(err)
	}
	old, _ := o.manifest(ctx, key) // its parts are deleted once the new one is in place
	meta := jetstream.ObjectMeta{Name: key, Metadata: map[string]string{metaSize: strconv.FormatInt(info.Size, 10), metaSHA256: info.SHA256}}
	if _, err := o.obs.Put(ctx, meta, strings.NewReader(string(body))); err != nil {
		return fail(err)
	}
	if old != nil {
		o.deleteParts(ctx, key, old.Parts)
	}
	o.log.Debug("checkpoint stored", "key", key, "bytes", info.Size, "parts", len(parts))
	return info, nil
}

// deleteParts removes parts, best effort: a part left behind takes space
// but is never read. Once ctx has ended it tries for a moment more, so a
// cancelled Put still tidies up and an unreachable server costs little.
func (o *Object) deleteParts(ctx context.Context, key string, parts []string) {
	if len(parts) == 0 {
		return
	}
	limit := o.grace
	if ctx.Err() != nil {
		limit = min(limit, 2*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), limit)
	defer cancel()
	for _, p := range parts {
		if err := o.obs.Delete(ctx, p); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			o.log.Warn("checkpoint part left behind", "key", key, "part", p, "err", err)
		}
	}
}

// manifest reads the manifest under key.
func (o *Object) manifest(ctx context.Context, key string) (*manifest, error) {
	oi, err := o.obs.GetInfo(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("checkpoint %q in object store %s: %w (it was never stored, or was deleted)", key, o.bucket, ErrNotFound)
	}
	if err != nil {
		return nil, objectErr(ctx, fmt.Sprintf("get checkpoint %q", key), err)
	}
	if oi.Size > maxManifest {
		return nil, fmt.Errorf("checkpoint %q: the object under the key is %d bytes, too large for a manifest; it was not written by this store: delete it and write the checkpoint again", key, oi.Size)
	}
	body, err := o.obs.GetBytes(ctx, key)
	if err != nil {
		return nil, objectErr(ctx, fmt.Sprintf("get checkpoint %q", key), err)
	}
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("checkpoint %q: its manifest is unreadable (%w); it was not written by this store, or was damaged: do not resume from it", key, err)
	}
	return &m, nil
}

// Get implements Store.
func (o *Object) Get(ctx context.Context, key string, want Info) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if err := checkWant(key, want); err != nil {
		return nil, err
	}
	m, err := o.manifest(ctx, key)
	if err != nil {
		return nil, err
	}
	return newVerifyingReader(ctx, key, want, &partsReader{o: o, ctx: ctx, key: key, parts: m.Parts}), nil
}

// partsReader streams a checkpoint's parts one after another.
type partsReader struct {
	o      *Object
	ctx    context.Context
	key    string
	parts  []string
	cur    jetstream.ObjectResult
	cancel context.CancelFunc
}

func (r *partsReader) Read(p []byte) (int, error) {
	for {
		if r.cur == nil {
			if len(r.parts) == 0 {
				return 0, io.EOF
			}
			if err := r.open(r.parts[0]); err != nil {
				return 0, err
			}
			r.parts = r.parts[1:]
		}
		n, err := r.cur.Read(p)
		switch {
		case err == io.EOF:
			r.closePart()
			if n > 0 {
				return n, nil
			}
			continue
		case err == nil:
			return n, nil
		case r.ctx.Err() != nil || errors.Is(err, nats.ErrTimeout):
			// A stream cut short by a deadline also fails JetStream's
			// digest check, so the deadline is named first.
			return n, objectErr(r.ctx, "read checkpoint "+r.key, err)
		case errors.Is(err, jetstream.ErrDigestMismatch):
			return n, &CorruptError{Err: err}
		}
		return n, err
	}
}

// partContext gives one part's upload or download a deadline of its own
// when ctx has none: the grace plus a part at MinRate. JetStream would
// otherwise give a read 5 s, and each chunk of a write 5 s to be
// acknowledged, which a server fsyncing a deep queue of chunks on a busy
// disk misses though it is making progress.
func (o *Object) partContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, o.grace+time.Duration(float64(o.partSize)/float64(o.minRate)*float64(time.Second)))
}

// open starts streaming part, with a deadline of its own when the
// caller's context has none (partContext).
func (r *partsReader) open(part string) error {
	ctx, cancel := r.o.partContext(r.ctx)
	res, err := r.o.obs.Get(ctx, part)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		cancel()
		return &CorruptError{Err: fmt.Errorf("part %s is missing", part)}
	}
	if err != nil {
		cancel()
		return objectErr(ctx, "read checkpoint "+r.key, err)
	}
	r.cur, r.cancel = res, cancel
	return nil
}

func (r *partsReader) closePart() error {
	if r.cur == nil {
		return nil
	}
	defer r.cancel()
	err := r.cur.Close()
	r.cur = nil
	return err
}

func (r *partsReader) Close() error { return r.closePart() }

// Delete implements Store. The manifest goes first, so a Delete cut
// short leaves parts no checkpoint refers to, never a checkpoint with
// parts missing.
func (o *Object) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	m, err := o.manifest(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	var parts []string
	if m != nil {
		parts = m.Parts
	}
	// An unreadable manifest is deleted all the same.
	if err := o.obs.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return objectErr(ctx, fmt.Sprintf("delete checkpoint %q", key), err)
	}
	o.deleteParts(ctx, key, parts)
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
		if oi.Deleted || strings.HasPrefix(oi.Name, partsPrefix) || !strings.HasPrefix(oi.Name, prefix) {
			continue
		}
		size, _ := strconv.ParseInt(oi.Metadata[metaSize], 10, 64)
		out = append(out, Info{Key: oi.Name, Size: size, SHA256: oi.Metadata[metaSHA256]})
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}
