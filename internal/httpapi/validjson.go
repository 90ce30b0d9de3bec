package httpapi

import "encoding/json"

// valid reports whether b is one JSON value, as json.Valid does, in one
// pass without its state machine: half of reading a trial's row went to
// checking it. Deep nesting, which encoding/json bounds, is left to it.
func valid(b []byte) bool {
	v := validator{b: b}
	v.ws()
	if !v.value(0) {
		return v.deep && json.Valid(b)
	}
	v.ws()
	return v.i == len(v.b)
}

// maxDepth is how deep valid goes before it hands b to json.Valid.
const maxDepth = 1000

type validator struct {
	b    []byte
	i    int
	deep bool // nesting went past maxDepth
}

func (v *validator) ws() { v.i = skipSpace(v.b, v.i) }

// skipSpace returns where the JSON white space from b[i] on ends.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// next returns the byte at the cursor, 0 at the end.
func (v *validator) next() byte {
	if v.i < len(v.b) {
		return v.b[v.i]
	}
	return 0
}

func (v *validator) value(depth int) bool {
	switch c := v.next(); {
	case c == '"':
		return v.str()
	case c == '{':
		return v.object(depth + 1)
	case c == '[':
		return v.array(depth + 1)
	case c == '-' || c >= '0' && c <= '9':
		return v.number()
	case c == 't':
		return v.literal("true")
	case c == 'f':
		return v.literal("false")
	case c == 'n':
		return v.literal("null")
	}
	return false
}

func (v *validator) literal(word string) bool {
	if len(v.b)-v.i < len(word) || string(v.b[v.i:v.i+len(word)]) != word {
		return false
	}
	v.i += len(word)
	return true
}

func (v *validator) str() bool {
	v.i++ // the opening quote
	for v.i < len(v.b) {
		c := v.b[v.i]
		switch {
		case c == '"':
			v.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			v.i++
			switch v.next() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				v.i++
			case 'u':
				v.i++
				for range 4 {
					if !isHex(v.next()) {
						return false
					}
					v.i++
				}
			default:
				return false
			}
		default:
			v.i++
		}
	}
	return false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func (v *validator) digits() bool {
	start := v.i
	for c := v.next(); c >= '0' && c <= '9'; c = v.next() {
		v.i++
	}
	return v.i > start
}

func (v *validator) number() bool {
	if v.next() == '-' {
		v.i++
	}
	switch c := v.next(); {
	case c == '0':
		v.i++
	case c >= '1' && c <= '9':
		v.digits()
	default:
		return false
	}
	if v.next() == '.' {
		v.i++
		if !v.digits() {
			return false
		}
	}
	if c := v.next(); c == 'e' || c == 'E' {
		v.i++
		if c := v.next(); c == '+' || c == '-' {
			v.i++
		}
		if !v.digits() {
			return false
		}
	}
	return true
}

func (v *validator) array(depth int) bool {
	return v.members(depth, ']', func() bool { return v.value(depth) })
}

func (v *validator) object(depth int) bool {
	return v.members(depth, '}', func() bool {
		if v.next() != '"' || !v.str() {
			return false
		}
		v.ws()
		if v.next() != ':' {
			return false
		}
		v.i++
		v.ws()
		return v.value(depth)
	})
}

// members reads the members of the array or object at the cursor, up to
// its closing byte, each with member.
func (v *validator) members(depth int, closing byte, member func() bool) bool {
	if depth > maxDepth {
		v.deep = true
		return false
	}
	v.i++
	v.ws()
	if v.next() == closing {
		v.i++
		return true
	}
	for {
		if !member() {
			return false
		}
		v.ws()
		switch v.next() {
		case ',':
			v.i++
			v.ws()
		case closing:
			v.i++
			return true
		default:
			return false
		}
	}
}
