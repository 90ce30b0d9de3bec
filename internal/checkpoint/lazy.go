package checkpoint

import (
	"context"
	"io"
	"sync"
)

// Lazy returns a Store that opens the real one on first use, and tries
// again on the next use after a failed open, so a process that starts
// before its store is reachable (an agent whose NATS servers are still
// electing a leader) works as soon as it is.
func Lazy(open func(context.Context) (Store, error)) Store {
	return &lazy{open: open}
}

type lazy struct {
	open func(context.Context) (Store, error)
	mu   sync.Mutex
	s    Store
}

func (l *lazy) get(ctx context.Context) (Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s != nil {
		return l.s, nil
	}
	s, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	l.s = s
	return s, nil
}

func (l *lazy) Put(ctx context.Context, key string, r io.Reader) (Info, error) {
	s, err := l.get(ctx)
	if err != nil {
		return Info{}, err
	}
	return s.Put(ctx, key, r)
}

func (l *lazy) Get(ctx context.Context, key string, want Info) (io.ReadCloser, error) {
	s, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, key, want)
}

func (l *lazy) Delete(ctx context.Context, key string) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.Delete(ctx, key)
}

func (l *lazy) List(ctx context.Context, prefix string) ([]Info, error) {
	s, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return s.List(ctx, prefix)
}
