package corpus

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// FashionDir is the directory, under a data directory, holding
// Fashion-MNIST's four IDX files; Debian's dataset-fashion-mnist installs
// it under /usr/share/datasets.
const FashionDir = "fashion-mnist"

// Images is a labelled set of 8-bit grey images.
type Images struct {
	// Rows and Cols give each image's size in pixels.
	Rows, Cols int
	// Pixels holds Len()·Rows·Cols bytes, image after image, row-major.
	Pixels []uint8
	// Labels holds each image's class.
	Labels []uint8
}

// Len returns the number of images.
func (im *Images) Len() int { return len(im.Labels) }

// Size returns the number of pixels per image.
func (im *Images) Size() int { return im.Rows * im.Cols }

// FashionDirs returns the directories searched for fashion-mnist/:
// DefaultDirs and then /usr/share/datasets.
func FashionDirs() []string { return append(DefaultDirs(), "/usr/share/datasets") }

type imagePair struct{ train, test *Images }

var fashionCache cache[imagePair]

// LoadFashionMNIST finds fashion-mnist/ in dirs (nil: FashionDirs) and
// returns its 60,000 training and 10,000 test images. Loads are cached per
// path; the results are shared and must not be modified.
func LoadFashionMNIST(dirs []string) (train, test *Images, err error) {
	if dirs == nil {
		dirs = FashionDirs()
	}
	first, err := Find(dirs, filepath.Join(FashionDir, "train-images-idx3-ubyte.gz"))
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Dir(first)
	p, err := fashionCache.get(dir, func() (imagePair, error) {
		train, err := LoadImages(filepath.Join(dir, "train-images-idx3-ubyte.gz"), filepath.Join(dir, "train-labels-idx1-ubyte.gz"))
		if err != nil {
			return imagePair{}, err
		}
		test, err := LoadImages(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"))
		return imagePair{train, test}, err
	})
	return p.train, p.test, err
}

// LoadImages reads an IDX image file and its IDX label file (either may be
// gzipped, by a .gz suffix).
func LoadImages(imagesPath, labelsPath string) (*Images, error) {
	dims, pixels, err := readIDXFile(imagesPath)
	if err != nil {
		return nil, err
	}
	if len(dims) != 3 {
		return nil, fmt.Errorf("%s: want 3 dimensions, got %v", imagesPath, dims)
	}
	ldims, labels, err := readIDXFile(labelsPath)
	if err != nil {
		return nil, err
	}
	if len(ldims) != 1 || ldims[0] != dims[0] {
		return nil, fmt.Errorf("%s: want %d labels, got dimensions %v", labelsPath, dims[0], ldims)
	}
	return &Images{Rows: dims[1], Cols: dims[2], Pixels: pixels, Labels: labels}, nil
}

func readIDXFile(path string) ([]int, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w: %s: %w; %s", ErrMissing, path, err, InstallHint)
		}
		return nil, nil, err
	}
	defer func() { _ = f.Close() }()
	var r io.Reader = bufio.NewReader(f)
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		r = gz
	}
	dims, data, err := ReadIDX(r)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return dims, data, nil
}

// ReadIDX reads an IDX file of unsigned bytes (type code 0x08): a magic
// number 0x0000 08 D, D big-endian uint32 dimensions, then the data.
func ReadIDX(r io.Reader) (dims []int, data []byte, err error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, nil, fmt.Errorf("read IDX header: %w", err)
	}
	if magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] == 0 {
		return nil, nil, fmt.Errorf("not an unsigned-byte IDX file (magic % x)", magic)
	}
	n := 1
	for range int(magic[3]) {
		var d uint32
		if err := binary.Read(r, binary.BigEndian, &d); err != nil {
			return nil, nil, fmt.Errorf("read IDX dimensions: %w", err)
		}
		if d == 0 || d > 1<<24 || n > (1<<31)/int(d) {
			return nil, nil, fmt.Errorf("IDX dimension %d out of range", d)
		}
		dims = append(dims, int(d))
		n *= int(d)
	}
	data = make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, nil, fmt.Errorf("read IDX data (%d bytes): %w", n, err)
	}
	return dims, data, nil
}
