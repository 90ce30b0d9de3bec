package bus

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// SubjectCurves is the prefix of curve chunks in the history stream:
// asymptote.curves.<study>.<trial>.<node>, <node> the sender's
// (asymptote.curves.<study>.<trial> before senders were named, still in
// the stream after an upgrade).
const SubjectCurves = "asymptote.curves"

// CurveSubject returns the subject node sends a trial's curve chunks on.
func CurveSubject(study, trial, node string) string {
	return SubjectCurves + "." + study + "." + trial + "." + node
}

// trialCurves are the filters of one trial's curve chunks: the layout
// before senders were named, and every node's.
func trialCurves(study, trial string) []string {
	old := SubjectCurves + "." + study + "." + trial
	return []string{old, old + ".*"}
}

// MaxCurveReports bounds the reports in one curve chunk.
const MaxCurveReports = 4096

// Curve is a chunk of one attempt's reports, stored column by column
// beside the reports themselves: bulk reads of a whole study read one
// message for thousands of reports. An agent writes a chunk every
// MaxCurveReports reports and the last when the attempt ends; reports not
// yet in a chunk are read one by one.
type Curve struct {
	AttemptRef
	// Chunk numbers the attempt's chunks from 0; Last marks its final
	// one, after which no report of the attempt follows.
	Chunk int  `json:"chunk"`
	Last  bool `json:"last,omitempty"`
	// First is the Seq of the chunk's first report; reports are numbered
	// consecutively.
	First int64   `json:"first"`
	Steps []int64 `json:"steps"`
	// Times are Unix microseconds.
	Times []int64 `json:"times"`
	// Values holds each metric's value per report: 0 where the report
	// lacks it (listed in Missing) or it is not finite (in NonFinite).
	Values    map[string][]float64  `json:"values"`
	Missing   map[string][]int      `json:"missing,omitempty"`
	NonFinite map[string][]NonFinAt `json:"non_finite,omitempty"`
	// Checkpoints are the indices of the reports a checkpoint was saved
	// with.
	Checkpoints []int `json:"checkpoints,omitempty"`
}

// NonFinAt is a non-finite value in a curve: the report's index and the
// word (NaN, +Inf, -Inf).
type NonFinAt struct {
	I int    `json:"i"`
	W string `json:"w"`
}

// MsgID is the chunk's JetStream message ID.
func (c *Curve) MsgID() string {
	return "c/" + c.Study + "/" + c.Trial + "/" + strconv.Itoa(c.Attempt) + "/" + strconv.Itoa(c.Chunk)
}

// Len is the number of reports in the chunk.
func (c *Curve) Len() int { return len(c.Steps) }

func (c *Curve) validate() error {
	errs := []error{c.AttemptRef.validate()}
	n := len(c.Steps)
	if n > MaxCurveReports {
		errs = append(errs, fmt.Errorf("steps: %d reports, over the limit of %d", n, MaxCurveReports))
	}
	if len(c.Times) != n {
		errs = append(errs, fmt.Errorf("times: %d, want one a report (%d)", len(c.Times), n))
	}
	if len(c.Values) > MaxMetrics {
		errs = append(errs, fmt.Errorf("values: %d metrics, over the limit of %d", len(c.Values), MaxMetrics))
	}
	for name, col := range c.Values {
		if len(col) != n {
			errs = append(errs, fmt.Errorf("values.%s: %d, want one a report (%d)", name, len(col), n))
		}
		if len(name) == 0 || len(name) > MaxMetricName {
			errs = append(errs, fmt.Errorf("values: a metric name of %d bytes", len(name)))
		}
	}
	for name, idx := range c.Missing {
		if _, ok := c.Values[name]; !ok {
			errs = append(errs, fmt.Errorf("missing.%s: no such metric", name))
		}
		for _, i := range idx {
			if i < 0 || i >= n {
				errs = append(errs, fmt.Errorf("missing.%s: index %d out of range", name, i))
				break
			}
		}
	}
	for name, at := range c.NonFinite {
		if _, ok := c.Values[name]; !ok {
			errs = append(errs, fmt.Errorf("non_finite.%s: no such metric", name))
		}
		for _, a := range at {
			if a.I < 0 || a.I >= n || (a.W != NaN && a.W != PosInf && a.W != NegInf) {
				errs = append(errs, fmt.Errorf("non_finite.%s: bad entry %+v", name, a))
				break
			}
		}
	}
	for _, i := range c.Checkpoints {
		if i < 0 || i >= n {
			errs = append(errs, fmt.Errorf("checkpoints: index %d out of range", i))
			break
		}
	}
	if c.Chunk < 0 || c.First < 0 {
		errs = append(errs, errors.New("chunk, first: negative"))
	}
	return errors.Join(errs...)
}

// CurveBuilder gathers an attempt's reports into chunks.
type CurveBuilder struct {
	ref   AttemptRef
	chunk int
	first int64
	rows  []*MetricsReport
}

// NewCurveBuilder returns a builder of ref's chunks.
func NewCurveBuilder(ref AttemptRef) *CurveBuilder { return &CurveBuilder{ref: ref} }

// Add appends r (whose Seq follows the previous one) and returns a full
// chunk to publish, or nil.
func (b *CurveBuilder) Add(r *MetricsReport) *Curve {
	if len(b.rows) == 0 {
		b.first = r.Seq
	}
	b.rows = append(b.rows, r)
	if len(b.rows) < MaxCurveReports {
		return nil
	}
	return b.flush(false)
}

// Finish returns the attempt's last chunk (possibly empty, so readers
// know the attempt is complete).
func (b *CurveBuilder) Finish() *Curve { return b.flush(true) }

// flush returns the pending reports as a chunk (nil when none and not
// last).
func (b *CurveBuilder) flush(last bool) *Curve {
	if len(b.rows) == 0 && !last {
		return nil
	}
	c := &Curve{AttemptRef: b.ref, Chunk: b.chunk, Last: last, First: b.first, Values: map[string][]float64{}}
	n := len(b.rows)
	c.Steps, c.Times = make([]int64, n), make([]int64, n)
	names := map[string]bool{}
	for _, r := range b.rows {
		for k := range r.Values {
			names[k] = true
		}
		for k := range r.NonFinite {
			names[k] = true
		}
	}
	for name := range names {
		c.Values[name] = make([]float64, n)
	}
	for i, r := range b.rows {
		c.Steps[i] = r.Step
		if r.Checkpoint {
			c.Checkpoints = append(c.Checkpoints, i)
		}
		if !r.Time.IsZero() {
			c.Times[i] = r.Time.UnixMicro()
		}
		for name := range names {
			if v, ok := r.Values[name]; ok {
				c.Values[name][i] = v
			} else if w, ok := r.NonFinite[name]; ok {
				if c.NonFinite == nil {
					c.NonFinite = map[string][]NonFinAt{}
				}
				c.NonFinite[name] = append(c.NonFinite[name], NonFinAt{I: i, W: w})
			} else {
				if c.Missing == nil {
					c.Missing = map[string][]int{}
				}
				c.Missing[name] = append(c.Missing[name], i)
			}
		}
	}
	b.chunk++
	b.rows = b.rows[:0]
	return c
}

// Reports returns the chunk's reports.
func (c *Curve) Reports() []MetricsReport {
	n := c.Len()
	out := make([]MetricsReport, n)
	missing := map[string]map[int]bool{}
	for name, idx := range c.Missing {
		m := make(map[int]bool, len(idx))
		for _, i := range idx {
			m[i] = true
		}
		missing[name] = m
	}
	nonFinite := map[string]map[int]string{}
	for name, at := range c.NonFinite {
		m := make(map[int]string, len(at))
		for _, a := range at {
			m[a.I] = a.W
		}
		nonFinite[name] = m
	}
	for _, i := range c.Checkpoints {
		out[i].Checkpoint = true
	}
	names := slices.Sorted(maps.Keys(c.Values))
	for i := range out {
		r := &out[i]
		r.AttemptRef = c.AttemptRef
		r.Seq = c.First + int64(i)
		r.Step = c.Steps[i]
		if c.Times[i] != 0 {
			r.Time = time.UnixMicro(c.Times[i]).UTC()
		}
		r.Values = make(map[string]float64, len(names))
		for _, name := range names {
			switch {
			case missing[name][i]:
			case nonFinite[name][i] != "":
				if r.NonFinite == nil {
					r.NonFinite = map[string]string{}
				}
				r.NonFinite[name] = nonFinite[name][i]
			default:
				r.Values[name] = c.Values[name][i]
			}
		}
	}
	return out
}
