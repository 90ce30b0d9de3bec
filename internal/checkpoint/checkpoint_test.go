package checkpoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/devcluster"
)

// fixture is a store under test and a way to replace the bytes stored
// under a key behind the store's back, as a failing disk or a careless
// user would.
type fixture struct {
	name      string
	store     Store
	overwrite func(t *testing.T, key string, data []byte)
}

func dirFixture(t testing.TB) fixture {
	d, err := NewDir(filepath.Join(t.TempDir(), "ckpt"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{name: "dir", store: d, overwrite: func(t *testing.T, key string, data []byte) {
		if err := os.WriteFile(d.path(key), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}}
}

// startJetStream starts the project's embedded test servers and returns
// them with a JetStream client.
func startJetStream(t testing.TB) (*devcluster.Cluster, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	cl, err := devcluster.Start(context.Background(), devcluster.Config{DataDir: t.TempDir(), NATSPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	nc, err := nats.Connect(cl.NATSURL, nats.Name("checkpoint"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return cl, nc, js
}

// objectFixture returns an Object store with parts of partSize bytes (0:
// the default).
func objectFixture(t testing.TB, partSize int64) fixture {
	_, _, js := startJetStream(t)
	o, err := NewObject(context.Background(), js, ObjectConfig{Bucket: "ckpt-test", PartSize: partSize})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{name: "object", store: o, overwrite: func(t *testing.T, key string, data []byte) {
		m, err := o.manifest(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Parts) != 1 {
			t.Fatalf("%s has %d parts; overwrite replaces one", key, len(m.Parts))
		}
		if _, err := o.obs.PutBytes(t.Context(), m.Parts[0], data); err != nil {
			t.Fatal(err)
		}
	}}
}

func fixtures(t *testing.T) []fixture {
	// Small parts, so the conformance test's larger checkpoints span
	// several.
	return []fixture{dirFixture(t), objectFixture(t, 512<<10)}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(b)
	return b
}

func infoOf(key string, b []byte) Info {
	s := sha256.Sum256(b)
	return Info{Key: key, Size: int64(len(b)), SHA256: hex.EncodeToString(s[:])}
}

func put(t *testing.T, s Store, key string, data []byte) Info {
	t.Helper()
	info, err := s.Put(t.Context(), key, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// readAll reads the checkpoint under key to its end.
func readAll(t *testing.T, s Store, key string, want Info) ([]byte, error) {
	t.Helper()
	rc, err := s.Get(t.Context(), key, want)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestConformance runs the same checks through every store.
func TestConformance(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			s := f.store
			sizes := []struct {
				key  string
				size int
			}{
				{"s/t1/1-0", 0},
				{"s/t1/1-10", 1},
				{"s/t2/2-100", 1<<20 + 1},
				{"s/t3/1-1", 1 << 20}, // a whole number of the object store's parts
			}
			for _, tc := range sizes {
				data := randomBytes(tc.size)
				info := put(t, s, tc.key, data)
				if info != infoOf(tc.key, data) {
					t.Fatalf("Put(%s) = %+v, want %+v", tc.key, info, infoOf(tc.key, data))
				}
				got, err := readAll(t, s, tc.key, info)
				if err != nil {
					t.Fatalf("read %s: %v", tc.key, err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("read %s: %d bytes differ from the %d put", tc.key, len(got), len(data))
				}
			}
			// Overwriting replaces.
			replaced := put(t, s, "s/t1/1-10", []byte("second"))
			if got, err := readAll(t, s, "s/t1/1-10", replaced); err != nil || string(got) != "second" {
				t.Fatalf("read replaced checkpoint: %q, %v", got, err)
			}

			lists := []struct {
				prefix string
				want   []string
			}{
				{"", []string{"s/t1/1-0", "s/t1/1-10", "s/t2/2-100", "s/t3/1-1"}},
				{"s/t1/", []string{"s/t1/1-0", "s/t1/1-10"}},
				{"s/t1/1-1", []string{"s/t1/1-10"}},
				{"s/t", []string{"s/t1/1-0", "s/t1/1-10", "s/t2/2-100", "s/t3/1-1"}},
				{"other/", nil},
			}
			for _, tc := range lists {
				infos, err := s.List(t.Context(), tc.prefix)
				if err != nil {
					t.Fatalf("List(%q): %v", tc.prefix, err)
				}
				var keys []string
				for _, in := range infos {
					keys = append(keys, in.Key)
				}
				if strings.Join(keys, " ") != strings.Join(tc.want, " ") {
					t.Errorf("List(%q) = %v, want %v", tc.prefix, keys, tc.want)
				}
				for _, in := range infos {
					if in.Key == "s/t1/1-10" && in != replaced {
						t.Errorf("List(%q) has %+v, want %+v", tc.prefix, in, replaced)
					}
				}
			}

			if err := s.Delete(t.Context(), "s/t1/1-10"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(t.Context(), "s/t1/1-10"); err != nil {
				t.Fatalf("deleting a deleted checkpoint: %v, want nil", err)
			}
			if _, err := s.Get(t.Context(), "s/t1/1-10", replaced); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
			}
			if _, err := s.Get(t.Context(), "s/t2", Info{Size: replaced.Size, SHA256: replaced.SHA256}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get of a key that only prefixes checkpoints: %v, want ErrNotFound", err)
			}
			if infos, err := s.List(t.Context(), "s/t1/"); err != nil || len(infos) != 1 {
				t.Fatalf("List after Delete = %v, %v; want one checkpoint", infos, err)
			}

			if _, err := s.Put(t.Context(), "../escape", strings.NewReader("x")); err == nil || !strings.Contains(err.Error(), `"../escape"`) {
				t.Fatalf("Put(../escape) = %v, want an error naming the key", err)
			}
			if _, err := s.Get(t.Context(), "s/t2/2-100", Info{}); err == nil || !strings.Contains(err.Error(), "Info that Put returned") {
				t.Fatalf("Get without a want = %v, want an error saying to pass Put's Info", err)
			}
		})
	}
}

func TestValidateKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key  string
		want string // a part of the error, or "" for a valid key
	}{
		{"study/trial-1/2-300", ""},
		{"s_1/t.2/a=b@c,d+e", ""},
		{"", "empty"},
		{"/abs/key", "absolute"},
		{"a/../b", `".." segment`},
		{"..", `".." segment`},
		{"a/./b", `"." segment`},
		{"a//b", "empty segment"},
		{"a/b/", "empty segment"},
		{"a/.tmp-b", "reserve for temporary files"},
		{"a/b c", "' '"},
		{"a/b\x00", `'\x00'`},
		{"a\\b", `'\\'`},
		{"a/é", "use only letters"},
		{strings.Repeat("k", maxKeyLen+1), "under 512 bytes"},
	}
	for _, tt := range tests {
		err := ValidateKey(tt.key)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("ValidateKey(%q) = %v, want nil", tt.key, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("ValidateKey(%q) = %v, want an error containing %q", tt.key, err, tt.want)
		}
	}
	if k, err := KeyFor("s", "t", 2, 300); err != nil || k != "s/t/2-300" {
		t.Errorf("KeyFor = %q, %v", k, err)
	}
	for _, p := range []string{"", "s", "s/", "s/t", "s/t/1-"} {
		if err := validatePrefix(p); err != nil {
			t.Errorf("validatePrefix(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"/s", "../", "s/../t", "s/.tmp"} {
		if err := validatePrefix(p); err == nil {
			t.Errorf("validatePrefix(%q) = nil, want an error", p)
		}
	}
}

// TestCorruption alters the stored bytes behind the store's back; the
// reader of Get must fail with a *CorruptError once it reaches the end.
func TestCorruption(t *testing.T) {
	data := randomBytes(300 << 10)
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 0x10
	tests := []struct {
		name   string
		stored []byte
	}{
		{"bit flip", flipped},
		{"truncated", data[:len(data)-1]},
		{"truncated to nothing", nil},
		{"extended", append(bytes.Clone(data), 0)},
	}
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			for i, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					key := "s/t/1-" + string(rune('a'+i))
					want := put(t, f.store, key, data)
					f.overwrite(t, key, tc.stored)
					_, err := readAll(t, f.store, key, want)
					var ce *CorruptError
					if !errors.As(err, &ce) {
						t.Fatalf("read %s: %v, want a *CorruptError", tc.name, err)
					}
					if ce.Key != key || ce.Want != want {
						t.Errorf("CorruptError names %q, want %+v; got %+v", ce.Key, ce.Want, want)
					}
					t.Log(err)
					if msg := err.Error(); !strings.Contains(msg, key) || !strings.Contains(msg, want.SHA256) || !strings.Contains(msg, "earlier checkpoint") {
						t.Errorf("error %q should name the key, the wanted SHA-256 and what to do", msg)
					}
				})
			}
		})
	}
}

// TestObjectBadManifest: an object under a key that this store did not
// write is refused with an error that says not to resume from it.
func TestObjectBadManifest(t *testing.T) {
	f := objectFixture(t, 0)
	o := f.store.(*Object)
	want := put(t, o, "s/t/1-1", []byte("checkpoint"))
	if _, err := o.obs.PutString(t.Context(), "s/t/1-1", "not a manifest"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Get(t.Context(), "s/t/1-1", want); err == nil || !strings.Contains(err.Error(), "do not resume from it") {
		t.Fatalf("Get = %v, want an error saying not to resume from it", err)
	}
	if err := o.Delete(t.Context(), "s/t/1-1"); err != nil {
		t.Fatalf("Delete of a checkpoint with a bad manifest: %v", err)
	}
	if infos, err := o.List(t.Context(), ""); err != nil || len(infos) != 0 {
		t.Fatalf("List after Delete = %v, %v", infos, err)
	}
}

// failingReader yields n bytes, then fails.
type failingReader struct {
	r io.Reader
}

var errSource = errors.New("training process died")

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errSource
	}
	return n, err
}

// TestInterruptedPut stops an upload half way, by a failing source or an
// ended context: nothing appears under a new key, and an existing
// checkpoint under the key stays as it was.
func TestInterruptedPut(t *testing.T) {
	data := randomBytes(1 << 20)
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			old := put(t, f.store, "s/t/1-old", []byte("earlier checkpoint"))
			tests := []struct {
				name string
				ctx  func() context.Context
				want error
			}{
				{"source fails", t.Context, errSource},
				{"context ends", func() context.Context {
					ctx, cancel := context.WithCancel(t.Context())
					cancel()
					return ctx
				}, context.Canceled},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					for _, key := range []string{"s/t/1-new", "s/t/1-old"} {
						_, err := f.store.Put(tc.ctx(), key, &failingReader{r: bytes.NewReader(data[:len(data)/2])})
						if !errors.Is(err, tc.want) {
							t.Fatalf("Put(%s) = %v, want %v", key, err, tc.want)
						}
					}
					if _, err := f.store.Get(t.Context(), "s/t/1-new", infoOf("s/t/1-new", data)); !errors.Is(err, ErrNotFound) {
						t.Fatalf("Get of an interrupted upload: %v, want ErrNotFound", err)
					}
					if got, err := readAll(t, f.store, "s/t/1-old", old); err != nil || string(got) != "earlier checkpoint" {
						t.Fatalf("the checkpoint an interrupted upload would replace reads %q, %v", got, err)
					}
					infos, err := f.store.List(t.Context(), "")
					if err != nil || len(infos) != 1 || infos[0] != old {
						t.Fatalf("List = %+v, %v; want only %+v", infos, err, old)
					}
				})
			}
			if d, ok := f.store.(*Dir); ok {
				entries, err := os.ReadDir(filepath.Join(d.Root(), "s", "t"))
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), ".tmp-") {
						t.Errorf("an interrupted upload left %s", e.Name())
					}
				}
			}
		})
	}
}

// TestObjectUnavailable: with the NATS server gone, every call fails
// within its context's deadline and says to check the servers.
func TestObjectUnavailable(t *testing.T) {
	cl, nc, js := startJetStream(t)
	o, err := NewObject(t.Context(), js, ObjectConfig{})
	if err != nil {
		t.Fatal(err)
	}
	want := put(t, o, "s/t/1-1", []byte("checkpoint"))
	cl.NATS.Shutdown()
	cl.NATS.WaitForShutdown()

	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"put", func(ctx context.Context) error {
			_, err := o.Put(ctx, "s/t/1-2", bytes.NewReader(randomBytes(1<<20)))
			return err
		}},
		{"get", func(ctx context.Context) error {
			rc, err := o.Get(ctx, "s/t/1-1", want)
			if err == nil {
				_, err = io.ReadAll(rc)
				rc.Close()
			}
			return err
		}},
		{"list", func(ctx context.Context) error { _, err := o.List(ctx, ""); return err }},
		{"delete", func(ctx context.Context) error { return o.Delete(ctx, "s/t/1-1") }},
		{"new", func(ctx context.Context) error {
			_, err := NewObject(ctx, js, ObjectConfig{Bucket: "other"})
			return err
		}},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start := time.Now()
			err := tc.call(ctx)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %s with a 1s deadline", took)
			}
			if err == nil || !strings.Contains(err.Error(), "NATS") {
				t.Errorf("err = %v, want one that says to check the NATS servers", err)
			}
			t.Log(err)
		})
	}
	nc.Close()
	if _, err := NewObject(context.Background(), js, ObjectConfig{}); err == nil || !strings.Contains(err.Error(), "NATS") {
		t.Errorf("NewObject on a closed connection = %v, want one that says to check the NATS servers", err)
	}
}

// TestObjectPartDeadline: with no deadline from the caller, each part of
// a Put gets the store's own (StallGrace plus a part at MinRate) in place
// of JetStream's 5 s per acknowledgement, so a tiny one fails the Put,
// says to check the servers, and stores nothing.
func TestObjectPartDeadline(t *testing.T) {
	_, _, js := startJetStream(t)
	o, err := NewObject(t.Context(), js, ObjectConfig{StallGrace: time.Nanosecond, MinRate: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.Put(context.Background(), "s/t/1-1", bytes.NewReader(randomBytes(1<<20)))
	if err == nil || !strings.Contains(err.Error(), "NATS JetStream did not answer") {
		t.Fatalf("Put past its part's deadline = %v, want one that says JetStream did not answer", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a List without one would get the 1 ns grace
	defer cancel()
	if got, err := o.List(ctx, ""); err != nil || len(got) != 0 {
		t.Errorf("after the failed Put, List = %v, %v; want nothing", got, err)
	}
}
