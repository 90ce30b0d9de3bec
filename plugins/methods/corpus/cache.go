package corpus

import "sync"

// cache keeps loaded data sets by path for the life of the process: a
// plugin process serves many trials and each data set takes tens to
// hundreds of milliseconds to decode. Failed loads are not kept.
type cache[T any] struct {
	mu      sync.Mutex
	entries map[string]*entry[T]
}

type entry[T any] struct {
	once sync.Once
	v    T
	err  error
}

// get returns the value for key, loading it once.
func (c *cache[T]) get(key string, load func() (T, error)) (T, error) {
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]*entry[T]{}
	}
	e, ok := c.entries[key]
	if !ok {
		e = &entry[T]{}
		c.entries[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.v, e.err = load() })
	if e.err != nil {
		c.mu.Lock()
		if c.entries[key] == e {
			delete(c.entries, key)
		}
		c.mu.Unlock()
	}
	return e.v, e.err
}
