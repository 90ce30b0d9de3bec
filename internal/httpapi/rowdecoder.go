package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"unicode/utf8"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// rowDecoder reads the table's fields (row) out of trial records without
// reflection: it walks the record once, skipping attempts, checkpoints
// and the rest, and shares the strings that repeat from one record to the
// next (parameter and metric names, states) instead of keeping a copy a
// trial. Whatever it is not sure to read exactly as encoding/json would
// (escapes, duplicate or differently cased names, numbers out of range,
// null where a value is expected) it hands to decodeRow, so that the two
// always agree. One decoder serves one goroutine.
type rowDecoder struct {
	names map[string]string
}

// maxNames bounds the strings a decoder shares.
const maxNames = 4096

// errSlow is a record the decoder leaves to encoding/json.
var errSlow = errors.New("row decoder: not a plain record")

func (d *rowDecoder) decode(b []byte) (api.Trial, error) {
	if !valid(b) {
		return decodeRow(b) // says what is wrong
	}
	t, err := d.record(b)
	if err != nil {
		return decodeRow(b)
	}
	return t, nil
}

// intern returns s as a string shared with the decoder's earlier ones.
func (d *rowDecoder) intern(s []byte) string {
	if v, ok := d.names[string(s)]; ok {
		return v
	}
	v := string(s)
	if d.names == nil {
		d.names = map[string]string{}
	}
	if len(d.names) < maxNames {
		d.names[v] = v
	}
	return v
}

// record reads a valid JSON document as a row.
func (d *rowDecoder) record(b []byte) (api.Trial, error) {
	var t api.Trial
	s := scanner{b: b}
	var seen uint
	err := s.object(d, func(key []byte) error {
		if !once(&seen, rowFields, key) {
			return errSlow
		}
		switch string(key) {
		case "id":
			return s.str(&t.ID, nil)
		case "index":
			return s.integer(func(n int64) { t.Index = int(n) }, strconv.IntSize)
		case "params":
			return s.params(d, &t.Params)
		case "seed":
			return s.integer(func(n int64) { t.Seed = n }, 64)
		case "state":
			var st string
			err := s.str(&st, d)
			t.State = sweep.State(st)
			return err
		case "attempt":
			return s.integer(func(n int64) { t.Attempt = int(n) }, strconv.IntSize)
		case "result":
			return s.result(d, &t.Result)
		case "error":
			return s.str(&t.Error, nil)
		case "updated":
			v, err := s.value()
			if err != nil {
				return err
			}
			return t.Updated.UnmarshalJSON(v)
		}
		return s.skipField(key, rowFields)
	})
	return t, err
}

// rowFields and resultFields are the names row reads at each level.
var (
	rowFields    = []string{"id", "index", "params", "seed", "state", "attempt", "result", "error", "updated"}
	resultFields = []string{"objective", "metrics", "non_finite"}
)

// once reports whether key, if one of names, is met for the first time,
// marking it in seen: a field named twice is encoding/json's to merge.
func once(seen *uint, names []string, key []byte) bool {
	i := slices.Index(names, string(key))
	if i < 0 {
		return true
	}
	if *seen&(1<<i) != 0 {
		return false
	}
	*seen |= 1 << i
	return true
}

// scanner walks a valid JSON document.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() { s.i = skipSpace(s.b, s.i) }

// peek returns the next byte after white space.
func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// object calls field for each member of the object at the cursor, with
// the cursor on its value.
func (s *scanner) object(d *rowDecoder, field func(key []byte) error) error {
	if s.peek() != '{' {
		return errSlow
	}
	s.i++
	for {
		switch s.peek() {
		case '}':
			s.i++
			return nil
		case ',':
			s.i++
			continue
		}
		key, ok := s.plain()
		if !ok || !utf8.Valid(key) {
			return errSlow
		}
		s.ws()
		s.i++ // the colon
		s.ws()
		if err := field(key); err != nil {
			return err
		}
	}
}

// plain returns the string at the cursor if it has no escapes, and moves
// past it.
func (s *scanner) plain() ([]byte, bool) {
	if s.peek() != '"' {
		return nil, false
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		switch s.b[j] {
		case '\\':
			return nil, false
		case '"':
			s.i = j + 1
			return s.b[start:j], true
		}
	}
	return nil, false
}

// value returns the JSON value at the cursor and moves past it.
func (s *scanner) value() ([]byte, error) {
	s.ws()
	start, depth := s.i, 0
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch c {
		case '"':
			for s.i++; s.i < len(s.b) && s.b[s.i] != '"'; s.i++ {
				if s.b[s.i] == '\\' {
					s.i++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return s.b[start:s.i], nil
			}
			depth--
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return s.b[start:s.i], nil
			}
		}
		s.i++
		if depth == 0 && (c == '"' || c == '}' || c == ']') {
			return s.b[start:s.i], nil
		}
	}
	if depth != 0 {
		return nil, errSlow
	}
	return s.b[start:s.i], nil
}

// skipField skips the value of a field row does not read. A name that
// encoding/json would take for one it reads (it ignores case) is left to
// it.
func (s *scanner) skipField(key []byte, known []string) error {
	for _, k := range known {
		if bytes.EqualFold(key, []byte(k)) {
			return errSlow
		}
	}
	_, err := s.value()
	return err
}

// str reads a string into *dst, shared through d when d is not nil (and
// it has no escapes); null leaves *dst as it is.
func (s *scanner) str(dst *string, d *rowDecoder) error {
	if s.peek() == 'n' {
		_, err := s.value()
		return err
	}
	at := s.i
	v, ok := s.plain()
	if !ok || !utf8.Valid(v) {
		// Escapes (as <, > and & always are) and bad UTF-8 are
		// encoding/json's to read.
		s.i = at
		raw, err := s.value()
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, dst)
	}
	if d != nil {
		*dst = d.intern(v)
	} else {
		*dst = string(v)
	}
	return nil
}

// integer reads a whole number that fits bits.
func (s *scanner) integer(set func(int64), bits int) error {
	v, err := s.value()
	if err != nil {
		return err
	}
	if bytes.Equal(v, []byte("null")) {
		return nil
	}
	n, err := strconv.ParseInt(string(v), 10, bits)
	if err != nil {
		return errSlow
	}
	set(n)
	return nil
}

// number reads a JSON number as encoding/json does into a float64.
func (s *scanner) number() (float64, error) {
	v, err := s.value()
	if err != nil {
		return 0, err
	}
	if len(v) == 0 || !(v[0] == '-' || v[0] >= '0' && v[0] <= '9') {
		return 0, errSlow
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return 0, errSlow
	}
	return f, nil
}

// params reads the parameters: numbers, strings, booleans and null as
// encoding/json does into any, objects and arrays through it.
func (s *scanner) params(d *rowDecoder, dst *map[string]any) error {
	if s.peek() == 'n' {
		_, err := s.value()
		*dst = nil
		return err
	}
	m := map[string]any{}
	*dst = m
	return s.object(d, func(key []byte) error {
		name := d.intern(key)
		switch c := s.peek(); {
		case c == '"':
			var v string
			if err := s.str(&v, nil); err != nil {
				return err
			}
			m[name] = v
		case c == '{' || c == '[':
			raw, err := s.value()
			if err != nil {
				return err
			}
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			m[name] = v
		case c == 't' || c == 'f' || c == 'n':
			raw, err := s.value()
			if err != nil {
				return err
			}
			switch string(raw) {
			case "true":
				m[name] = true
			case "false":
				m[name] = false
			default:
				m[name] = nil
			}
		default:
			f, err := s.number()
			if err != nil {
				return err
			}
			m[name] = f
		}
		return nil
	})
}

// result reads the result's objective, metrics and non-finite values.
func (s *scanner) result(d *rowDecoder, dst **api.Result) error {
	if s.peek() == 'n' {
		_, err := s.value()
		*dst = nil
		return err
	}
	r := &api.Result{}
	*dst = r
	var seen uint
	return s.object(d, func(key []byte) error {
		if !once(&seen, resultFields, key) {
			return errSlow
		}
		switch string(key) {
		case "objective":
			if s.peek() == 'n' {
				_, err := s.value()
				r.Objective = nil
				return err
			}
			f, err := s.number()
			r.Objective = &f
			return err
		case "metrics":
			if s.peek() != '{' {
				return errSlow
			}
			r.Metrics = map[string]float64{}
			return s.object(d, func(key []byte) error {
				f, err := s.number()
				r.Metrics[d.intern(key)] = f
				return err
			})
		case "non_finite":
			if s.peek() != '{' {
				return errSlow
			}
			r.NonFinite = map[string]string{}
			return s.object(d, func(key []byte) error {
				var v string
				if s.peek() != '"' {
					return errSlow
				}
				err := s.str(&v, d)
				r.NonFinite[d.intern(key)] = v
				return err
			})
		}
		return s.skipField(key, resultFields)
	})
}
