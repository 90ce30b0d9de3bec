package checkpoint

import (
	"flag"
	"io"
	"path/filepath"
	"testing"

	"asymptote.dev/asymptote/internal/checkpoint/diskspeed"
)

var big = flag.Bool("ckpt.big", false, "also benchmark 1 GiB checkpoints")

type benchSize struct {
	name string
	n    int64
}

func benchSizes() []benchSize {
	sizes := []benchSize{{"10MiB", 10 << 20}, {"100MiB", 100 << 20}}
	if *big {
		sizes = append(sizes, benchSize{"1GiB", 1 << 30})
	}
	return sizes
}

func benchFixtures(b *testing.B) []fixture {
	return []fixture{dirFixture(b), objectFixture(b, 0)}
}

func BenchmarkPut(b *testing.B) {
	for _, f := range benchFixtures(b) {
		for _, sz := range benchSizes() {
			b.Run(f.name+"/"+sz.name, func(b *testing.B) {
				b.SetBytes(sz.n)
				for b.Loop() {
					if _, err := f.store.Put(b.Context(), "bench/put/"+sz.name, diskspeed.Data(sz.n)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkGet(b *testing.B) {
	for _, f := range benchFixtures(b) {
		for _, sz := range benchSizes() {
			b.Run(f.name+"/"+sz.name, func(b *testing.B) {
				key := "bench/get/" + sz.name
				want, err := f.store.Put(b.Context(), key, diskspeed.Data(sz.n))
				if err != nil {
					b.Fatal(err)
				}
				buf := make([]byte, copyBuf)
				b.SetBytes(sz.n)
				for b.Loop() {
					rc, err := f.store.Get(b.Context(), key, want)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.CopyBuffer(io.Discard, rc, buf); err != nil {
						b.Fatal(err)
					}
					rc.Close()
				}
			})
		}
	}
}

// BenchmarkDisk is the floor the stores stand on: the same sizes written
// and fsynced, then read back, with plain files in the same temporary
// directory as the Dir store's.
func BenchmarkDisk(b *testing.B) {
	dir := b.TempDir()
	for _, sz := range benchSizes() {
		path := filepath.Join(dir, "disk-"+sz.name)
		b.Run("write/"+sz.name, func(b *testing.B) {
			b.SetBytes(sz.n)
			for b.Loop() {
				if _, err := diskspeed.Write(path, sz.n); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("read/"+sz.name, func(b *testing.B) {
			b.SetBytes(sz.n)
			for b.Loop() {
				if _, err := diskspeed.Read(path, sz.n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
