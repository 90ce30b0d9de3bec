package methodmgr

import "sync"

// tailSize is how much of a plugin's stderr a MethodError carries.
const tailSize = 2 << 10

// tail keeps the last tailSize bytes written to it and counts the rest, so
// that an attempt's error can carry what the plugin wrote since the attempt
// began, and so that an attempt writing without bound can be stopped.
type tail struct {
	mu    sync.Mutex
	buf   [tailSize]byte
	total int64 // bytes ever written

	floodAt int64         // total at which flood closes; 0 when not armed
	flood   chan struct{} // closed once total passes floodAt
}

// Write implements io.Writer; it never fails.
func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) > tailSize {
		// Only the last tailSize bytes can survive; count the rest as
		// written before them so positions stay aligned.
		t.total += int64(len(p) - tailSize)
		p = p[len(p)-tailSize:]
	}
	for len(p) > 0 {
		off := int(t.total % tailSize)
		c := copy(t.buf[off:], p)
		p = p[c:]
		t.total += int64(c)
	}
	if t.floodAt > 0 && t.total > t.floodAt {
		close(t.flood)
		t.floodAt = 0
	}
	return n, nil
}

// begin marks the start of an attempt: it returns the mark to pass to since
// and a channel closed if more than limit bytes arrive from now on (never,
// for limit <= 0).
func (t *tail) begin(limit int64) (mark int64, flood <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.flood = make(chan struct{})
	t.floodAt = 0
	if limit > 0 {
		t.floodAt = t.total + limit
	}
	return t.total, t.flood
}

// since returns the bytes written after mark, at most the last tailSize.
func (t *tail) since(mark int64) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := min(t.total-mark, tailSize)
	out := make([]byte, 0, n)
	for i := t.total - n; i < t.total; i++ {
		out = append(out, t.buf[i%tailSize])
	}
	return string(out)
}
