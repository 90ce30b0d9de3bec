package sweep

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The sizes a number without a unit may stand for in ParseSize. The call
// site names one, as the spec and the command line differ: a plain number
// is MiB in a spec and bytes in a flag.
const (
	// UnitRequired refuses a number without a unit.
	UnitRequired = 0
	// PlainBytes reads a number without a unit as bytes.
	PlainBytes = 1
	// PlainMiB reads a number without a unit as MiB.
	PlainMiB = 1 << 20
)

// sizeUnits are the units a size may carry and their sizes in bytes.
var sizeUnits = map[string]float64{
	"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
}

// SizeError says why ParseSize refused a size.
type SizeError struct {
	// Input is the size as given.
	Input string
	// Unit is the unit as written, "" for none; UnitOK says whether it
	// is one ParseSize knows (or, for none, whether a plain number was
	// allowed).
	Unit   string
	UnitOK bool
	// NumberOK says whether the number before the unit is a decimal
	// number.
	NumberOK bool
	// Range, when set, says the number is out of float64's range.
	Range string
}

func (e *SizeError) Error() string {
	switch {
	case e.Range != "":
		return fmt.Sprintf("size %q: %s", e.Input, e.Range)
	case !e.UnitOK && e.Unit != "":
		return fmt.Sprintf("size %q: unknown unit %q; allowed: %s", e.Input, e.Unit, allowedList(SizeUnits()))
	case !e.UnitOK:
		return fmt.Sprintf("size %q: no unit; write one of %s", e.Input, allowedList(SizeUnits()))
	}
	return fmt.Sprintf("size %q: want a number such as 512MiB or 2GiB", e.Input)
}

// SizeUnits returns the units ParseSize accepts, sorted.
func SizeUnits() []string { return slices.Sorted(maps.Keys(sizeUnits)) }

// ParseSize parses a size such as "512MiB", "2GiB", "1.5GB" or "100 KiB"
// into bytes: a decimal number (as in a spec, so 1e3 and 1_000 are
// numbers, hex is not) and a unit, the trailing letters, with or without
// a space between. A number without a unit counts plain bytes each
// (PlainBytes, PlainMiB, or UnitRequired to refuse it). The result is not
// rounded nor bounded: callers hold sizes to their own ranges. The whole
// of s must parse, with no space after it: "16 gigs" is an error, not 16
// bytes. Errors are *SizeError.
func ParseSize(s string, plain float64) (float64, error) {
	// The unit is the trailing letters, so that the number may have an
	// exponent, as in 1e3GiB.
	i := len(s)
	for i > 0 && (s[i-1]|0x20 >= 'a' && s[i-1]|0x20 <= 'z') {
		i--
	}
	num, unit := strings.TrimSpace(s[:i]), s[i:]
	if msg := outOfRange(num); msg != "" {
		return 0, &SizeError{Input: s, Unit: unit, Range: msg}
	}
	f, okNum := parseNumber(num)
	size, okUnit := sizeUnits[unit]
	if unit == "" {
		size, okUnit = plain, plain > 0
	}
	if !okNum || !okUnit {
		return 0, &SizeError{Input: s, Unit: unit, UnitOK: okUnit, NumberOK: okNum}
	}
	return f * size, nil
}
