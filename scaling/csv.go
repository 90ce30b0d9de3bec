package scaling

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Columns names the CSV columns that fill each Obs field; an empty name
// leaves the field unread.
type Columns struct {
	X, N, D, U, Loss, Group string
	// C names a compute column: when the tokens column is absent, tokens
	// are derived as D = C/(6N), as Besiroglu et al. do for Chinchilla's
	// data.
	C string
}

// DefaultColumns are the CLI's defaults: params, tokens, unique_tokens,
// compute and loss, with X read from params.
var DefaultColumns = Columns{X: "params", N: "params", D: "tokens", U: "unique_tokens", C: "compute", Loss: "loss"}

// CSVError reports a bad cell or a missing column. Line is the 1-based line
// in the file (the header is line 1), zero for a missing column.
type CSVError struct {
	Line   int
	Column string
	Msg    string
}

// Error names the line and column.
func (e *CSVError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("column %q: %s", e.Column, e.Msg)
	}
	return fmt.Sprintf("line %d, column %q: %s", e.Line, e.Column, e.Msg)
}

// ReadCSV reads the observations law needs from r. Tokens come from the
// compute column (D = C/(6N)) when the file has no tokens column. Every
// error names its
// line and column: a missing column, an unparsable number, a NaN, a
// non-positive size or loss. Errors are joined so all bad cells are
// reported at once (up to 20).
func ReadCSV(r io.Reader, law Law, cols Columns) ([]Obs, error) {
	return ReadCSVInputs(r, law.Inputs(), cols)
}

// ReadCSVInputs is ReadCSV for an explicit list of inputs ("X", "N", "D",
// "U"), for analyses that need more than one law's, such as
// NestedAsymptote (X and N).
func ReadCSVInputs(r io.Reader, inputs []string, cols Columns) ([]Obs, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("empty CSV: want a header line")
		}
		return nil, fmt.Errorf("header: %w", err)
	}
	idx := map[string]int{}
	for i, h := range header {
		idx[strings.TrimSpace(h)] = i
	}
	type field struct {
		col  string
		dst  func(*Obs, float64)
		name string
	}
	var fields []field
	add := func(col, name string, dst func(*Obs, float64)) {
		fields = append(fields, field{col, dst, name})
	}
	_, haveD := idx[cols.D]
	_, haveC := idx[cols.C]
	fromCompute := cols.C != "" && !haveD && haveC
	for _, in := range inputs {
		switch in {
		case "X":
			add(cols.X, "x", func(o *Obs, v float64) { o.X = v })
		case "N":
			add(cols.N, "params", func(o *Obs, v float64) { o.N = v })
		case "D":
			if fromCompute {
				// Stored in D for now; divided by 6N below.
				add(cols.C, "compute", func(o *Obs, v float64) { o.D = v })
				break
			}
			add(cols.D, "tokens", func(o *Obs, v float64) { o.D = v })
		case "U":
			add(cols.U, "unique tokens", func(o *Obs, v float64) { o.U = v })
		}
	}
	add(cols.Loss, "loss", func(o *Obs, v float64) { o.Loss = v })
	var errs []error
	pos := make([]int, len(fields))
	for k, f := range fields {
		if f.col == "" {
			errs = append(errs, fmt.Errorf("no column given for %s", f.name))
			continue
		}
		i, ok := idx[f.col]
		if !ok {
			errs = append(errs, &CSVError{Column: f.col, Msg: fmt.Sprintf("missing (the header has %s)", strings.Join(header, ", "))})
		}
		pos[k] = i
	}
	group := -1
	if cols.Group != "" {
		i, ok := idx[cols.Group]
		if !ok {
			errs = append(errs, &CSVError{Column: cols.Group, Msg: "missing"})
		}
		group = i
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var obs []Obs
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", line, err))
			break
		}
		var o Obs
		for k, f := range fields {
			cell := strings.TrimSpace(rec[pos[k]])
			v, err := strconv.ParseFloat(cell, 64)
			switch {
			case err != nil:
				errs = append(errs, &CSVError{line, f.col, fmt.Sprintf("%q is not a number", cell)})
			case math.IsNaN(v):
				errs = append(errs, &CSVError{line, f.col, "is NaN"})
			case math.IsInf(v, 0):
				errs = append(errs, &CSVError{line, f.col, "is infinite"})
			case v <= 0:
				errs = append(errs, &CSVError{line, f.col, fmt.Sprintf("must be positive, got %s", cell)})
			}
			f.dst(&o, v)
		}
		if group >= 0 {
			o.Group = rec[group]
		}
		if fromCompute && o.N > 0 {
			o.D /= 6 * o.N
		}
		obs = append(obs, o)
		if len(errs) >= 20 {
			errs = append(errs, errors.New("(stopped after 20 errors)"))
			break
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return obs, nil
}
