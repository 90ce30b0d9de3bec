package sweep

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"asymptote.dev/asymptote/internal/resource"
)

// Spec is a parsed and validated study: what to run, over which parameter
// space, how often and with what resources. Parse is the only way to get a
// valid Spec; the space fields are exported so that tools can show them.
type Spec struct {
	// Name identifies the study; it matches [a-z0-9][a-z0-9_-]{0,62}.
	Name string
	// Method is the name of the method plugin that runs each trial.
	Method string
	// MethodVersion is an optional version constraint on the plugin,
	// such as ">=1.0"; "" if none.
	MethodVersion string
	// Objective is the metric the study optimises.
	Objective Objective
	// Seeds are the seeds every configuration runs with; [0] by default.
	Seeds []int64
	// Resources is what one trial needs.
	Resources Resources
	// Retries is how many failed attempts a trial may retry; 2 by default.
	// Attempts lost with their agent (stale) do not count.
	Retries int
	// Timeout bounds one attempt; 1h by default.
	Timeout time.Duration
	// Priority orders studies: higher runs first; 0 by default.
	Priority int
	// Source is the raw YAML as given to Parse.
	Source []byte

	// Axes are the grid dimensions, sorted by name; the grid is their
	// cartesian product.
	Axes []Axis
	// Random describes random draws combined with every grid point; nil
	// when the spec has none.
	Random *Random
	// Fixed are parameters with one value in every trial.
	Fixed map[string]any
	// Derived are computed parameters, in evaluation order (each after
	// the parameters it uses).
	Derived []Derived

	// Analysis is the study's analysis plan; nil when it has none.
	Analysis *Analysis
	// Search is the study's adaptive strategy; nil for a fixed grid.
	Search *Search
	// Budget bounds the study's compute; nil for none.
	Budget *Budget
	// Command is the program the built-in command method runs; set
	// exactly when Method is CommandMethod.
	Command *Command
	// Checkpoints is the spec's checkpoints section; nil when it has
	// none. Use CheckpointPolicy for the settings with their defaults.
	Checkpoints *Checkpoints
}

// Checkpoints says how many of a study's checkpoints are kept, and for how
// long.
type Checkpoints struct {
	// Keep is how many of each trial's latest checkpoints are kept (at
	// least 1; 2 by default, so a corrupt latest one leaves another).
	Keep int `json:"keep"`
	// KeepOnSuccess keeps a trial's checkpoints after it succeeds;
	// otherwise they are deleted when its result is recorded.
	KeepOnSuccess bool `json:"keep_on_success,omitempty"`
	// Quota bounds the bytes of all the study's kept checkpoints; 0 sets
	// no bound. A checkpoint that would pass it is not kept, and the
	// trial's history says so.
	Quota int64 `json:"quota,omitempty"`
}

// DefaultCheckpointKeep is how many checkpoints per trial a spec without
// checkpoints.keep keeps.
const DefaultCheckpointKeep = 2

// CheckpointPolicy returns the spec's checkpoint settings, defaults filled
// in.
func (s *Spec) CheckpointPolicy() Checkpoints {
	if s.Checkpoints == nil {
		return Checkpoints{Keep: DefaultCheckpointKeep}
	}
	return *s.Checkpoints
}

// Direction says whether the objective is minimised or maximised.
type Direction string

// The objective directions.
const (
	// Minimize means lower metric values are better.
	Minimize Direction = "minimize"
	// Maximize means higher metric values are better.
	Maximize Direction = "maximize"
)

// Objective is the metric a study optimises and in which direction.
type Objective struct {
	// Metric is the name of the reported metric; "val_loss" by default.
	Metric string
	// Direction is Minimize by default.
	Direction Direction
}

// Resources is what a single trial needs from an agent.
type Resources struct {
	// CPU is the number of cores, possibly fractional; 1 by default.
	CPU float64
	// GPU is the number of whole GPUs; 0 by default.
	GPU int
	// Memory is in bytes; 256MiB by default.
	Memory int64
}

// Needs returns what one trial of the spec reserves on a node, in the
// form the leader and agents place and admit trials by.
func (r Resources) Needs() resource.Resources {
	return resource.Resources{CPU: r.CPU, Memory: r.Memory, GPUCount: r.GPU}
}

// The defaults Parse fills in for keys a spec leaves out.
const (
	DefaultMetric  = "val_loss"
	DefaultRetries = 2
	DefaultTimeout = time.Hour
	DefaultMemory  = 256 << 20
	// MaxTrials bounds the expansion of one spec.
	MaxTrials = 1_000_000
	// MaxParams bounds the parameters of one trial.
	MaxParams = 1000
	// MaxSpecBytes bounds the source of one spec, so that no input makes
	// Parse's time and memory (a few hundred bytes a list item) grow
	// without bound. Real specs are a few KiB; it is a backstop for any
	// caller, above the coordinator's own, configurable, limit.
	MaxSpecBytes = 4 << 20
)

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	methodRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	paramRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	// versionRE matches one clause of a version constraint.
	versionRE = regexp.MustCompile(`^(>=|<=|!=|==|=|>|<|~|\^)?\s*v?\d+(\.\d+){0,2}([-+][0-9A-Za-z.-]+)?$`)
)

var topKeys = []string{"name", "method", "objective", "space", "random", "fixed", "derived", "seeds", "replicates", "resources", "retries", "timeout", "priority", "analysis", "search", "budget", "command", "checkpoints"}

// ParseFile reads the spec at path and parses it with Parse.
func ParseFile(path string) (*Spec, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	return Parse(path, src)
}

// Parse parses and validates the spec in src; filename is used in error
// messages only. It returns either a fully valid Spec or every problem
// found (the first 100, for a spec with more), each a *SpecError, joined
// with errors.Join. A spec may be at most MaxSpecBytes long, and its
// numbers must be finite.
func Parse(filename string, src []byte) (*Spec, error) {
	if len(src) > MaxSpecBytes {
		return nil, &SpecError{File: filename, Msg: fmt.Sprintf("the spec is %d bytes, over the limit of %d (4 MiB) for any spec; put large configuration in a file and pass its path as a parameter", len(src), MaxSpecBytes)}
	}
	d := &decoder{file: filename}
	root, err := parseYAML(src)
	if err != nil {
		var ye *yamlError
		if errors.As(err, &ye) {
			return nil, &SpecError{File: filename, Line: ye.line, Msg: shorten(ye.msg, maxMsgBytes)}
		}
		return nil, err
	}
	s := &Spec{Source: append([]byte(nil), src...)}
	d.spec(root, s)
	if len(d.errs) > 0 {
		// Report in file order; errors without a line (missing keys) first.
		slices.SortStableFunc(d.errs, func(a, b error) int {
			return cmp.Compare(a.(*SpecError).Line, b.(*SpecError).Line)
		})
		if d.stopped {
			d.errs = append(d.errs, &SpecError{File: filename, Msg: fmt.Sprintf("stopped after %d problems; fix these and parse again to see the rest", maxErrors)})
		}
		return nil, errors.Join(d.errs...)
	}
	return s, nil
}

func (d *decoder) spec(root *node, s *Spec) {
	m, ok := d.mapping(root, "", topKeys...)
	if !ok {
		return
	}
	if n, ok := m["name"]; !ok {
		d.errorf(0, "name", "missing; every study needs a name, as in name: lr-sweep")
	} else if v, ok := d.str(n, "name"); ok {
		if !nameRE.MatchString(v) {
			d.errorf(n.line, "name", "invalid name %q; use 1 to 63 lower-case letters, digits, '-' or '_', starting with a letter or digit", v)
		}
		s.Name = v
	}
	if n, ok := m["method"]; !ok {
		d.errorf(0, "method", `missing; name the method plugin, as in method: synthetic or method: {name: charlm, version: ">=1.0"}`)
	} else {
		d.method(n, s)
	}
	s.Objective = Objective{Metric: DefaultMetric, Direction: Minimize}
	if n, ok := m["objective"]; ok {
		d.objective(n, &s.Objective)
	}
	s.Resources = Resources{CPU: 1, Memory: DefaultMemory}
	if n, ok := m["resources"]; ok {
		d.resources(n, &s.Resources)
	}
	d.seeds(m, s)
	s.Retries = DefaultRetries
	if n, ok := m["retries"]; ok {
		s.Retries, _ = d.intAtLeast(n, "retries", 0)
	}
	s.Timeout = DefaultTimeout
	if n, ok := m["timeout"]; ok {
		s.Timeout, _ = d.duration(n, "timeout")
	}
	if n, ok := m["priority"]; ok {
		if p, ok := d.integer(n, "priority"); ok {
			if p < math.MinInt32 || p > math.MaxInt32 {
				d.errorf(n.line, "priority", "priority %d is out of range; use a number between %d and %d", p, math.MinInt32, math.MaxInt32)
			}
			s.Priority = int(p)
		}
	}
	if count := paramCount(m); count > MaxParams {
		// Checked on the YAML, before any parameter is decoded, so that a
		// spec with 100,000 parameters costs no more than reading it.
		// The analysis plan and search name parameters, so they are
		// skipped too rather than reported against a space left empty.
		d.errorf(root.line, "", "the spec defines %d parameters, over the limit of %d; pass large configuration as one parameter naming a file", count, MaxParams)
		return
	}
	d.space(m, s)
	if n, ok := m["command"]; ok {
		d.command(n, s)
		if s.Method != "" && s.Method != CommandMethod {
			d.errorf(n.line, "command", "only method: command reads a command section, and this study runs method %q; set method: command, or remove the section", s.Method)
		}
	} else if s.Method == CommandMethod {
		d.errorf(0, "command", "missing; method: command runs the program the command section names, as in command: {program: train.py, interpreter: python3, args: [\"--lr={lr}\"]}")
	}
	if n, ok := m["analysis"]; ok {
		d.analysis(n, s)
	}
	if n, ok := m["search"]; ok {
		d.search(n, s)
	}
	if n, ok := m["budget"]; ok {
		d.budget(n, s)
	}
	if n, ok := m["checkpoints"]; ok {
		d.checkpoints(n, s)
	}
	d.checkSize(root, m, s)
}

func (d *decoder) method(n *node, s *Spec) {
	nameNode, verNode := n, (*node)(nil)
	if n.kind == mapNode {
		m, ok := d.mapping(n, "method", "name", "version")
		if !ok {
			return
		}
		if nameNode, ok = m["name"]; !ok {
			d.errorf(n.line, "method.name", "missing; name the method plugin, as in {name: charlm}")
			return
		}
		verNode = m["version"]
	}
	field := "method"
	if n.kind == mapNode {
		field = "method.name"
	}
	if v, ok := d.str(nameNode, field); ok {
		if !methodRE.MatchString(v) {
			d.errorf(nameNode.line, field, "invalid method name %q; use lower-case letters, digits, '.', '-' or '_'", v)
		}
		s.Method = v
	}
	if verNode == nil {
		return
	}
	v, ok := d.str(verNode, "method.version")
	if !ok {
		return
	}
	for _, clause := range strings.Split(v, ",") {
		if !versionRE.MatchString(strings.TrimSpace(clause)) {
			d.errorf(verNode.line, "method.version", "invalid version constraint %q; write versions such as \"1.2\", \">=1.0\" or \">=1.0, <2\" (quoted, since > starts a YAML block)", v)
			return
		}
	}
	s.MethodVersion = v
}

func (d *decoder) objective(n *node, o *Objective) {
	if n.kind == scalarNode {
		o.Metric, _ = d.str(n, "objective") // shorthand: objective: val_loss
		return
	}
	m, ok := d.mapping(n, "objective", "metric", "direction")
	if !ok {
		return
	}
	if v, ok := m["metric"]; ok {
		o.Metric, _ = d.str(v, "objective.metric")
	}
	if v, ok := m["direction"]; ok {
		if dir, ok := d.oneOf(v, "objective.direction", "direction", string(Minimize), string(Maximize)); ok {
			o.Direction = Direction(dir)
		}
	}
}

func (d *decoder) resources(n *node, r *Resources) {
	m, ok := d.mapping(n, "resources", "cpu", "gpu", "memory")
	if !ok {
		return
	}
	if v, ok := m["cpu"]; ok {
		if c, ok := d.number(v, "resources.cpu"); ok {
			if c <= 0 || c > maxCPU {
				d.errorf(v.line, "resources.cpu", "want a positive number of cores, at most %d, such as 0.5 or 4, got %s", maxCPU, v.value)
			}
			r.CPU = c
		}
	}
	if v, ok := m["gpu"]; ok {
		r.GPU, _ = d.intAtLeast(v, "resources.gpu", 0)
	}
	if v, ok := m["memory"]; ok {
		r.Memory, _ = d.memory(v, "resources.memory")
	}
}

func (d *decoder) checkpoints(n *node, s *Spec) {
	m, ok := d.mapping(n, "checkpoints", "keep", "keep_on_success", "quota")
	if !ok {
		return
	}
	c := Checkpoints{Keep: DefaultCheckpointKeep}
	if v, ok := m["keep"]; ok {
		if k, ok := d.intAtLeast(v, "checkpoints.keep", 1); ok {
			if k > MaxCheckpointKeep {
				d.errorf(v.line, "checkpoints.keep", "keep %d is over the limit of %d checkpoints per trial; a trial resumes from its latest, so a few are enough", k, MaxCheckpointKeep)
			}
			c.Keep = k
		}
	}
	if v, ok := m["keep_on_success"]; ok {
		if b, ok := d.scalar(v, "checkpoints.keep_on_success"); ok {
			if bv, isBool := b.(bool); isBool {
				c.KeepOnSuccess = bv
			} else {
				d.errorf(v.line, "checkpoints.keep_on_success", "want true or false, got %s", describe(v))
			}
		}
	}
	if v, ok := m["quota"]; ok {
		c.Quota, _ = d.memory(v, "checkpoints.quota")
	}
	s.Checkpoints = &c
}

// MaxCheckpointKeep bounds checkpoints.keep, so a trial's record, which
// lists its kept checkpoints, stays small.
const MaxCheckpointKeep = 16

// maxCPU bounds resources.cpu: no agent has more cores, and a bound keeps
// sums of requests finite.
const maxCPU = 1 << 20

// memory parses "512MiB", "2GiB", "1.5GB" or a plain number of MiB.
func (d *decoder) memory(n *node, field string) (int64, bool) {
	if !d.finite(n, field, false) {
		return 0, false
	}
	v, ok := d.scalar(n, field)
	if !ok {
		return 0, false
	}
	var bytes float64
	switch v := v.(type) {
	case float64:
		bytes = v * PlainMiB
	case string:
		// A string needs its unit: a plain number is a YAML number.
		var err error
		bytes, err = ParseSize(v, UnitRequired)
		var se *SizeError
		switch {
		case errors.As(err, &se) && se.Range != "":
			d.errorf(n.line, field, "%s", se.Range)
			return 0, false
		case errors.As(err, &se):
			units := SizeUnits()
			d.errorf(n.line, field, "invalid memory size %q%s; write a number and a unit (%s), such as 512MiB or 2GiB, or a plain number of MiB", v, suggestUnit(se.NumberOK, se.Unit, units), allowedList(units))
			return 0, false
		}
	default:
		d.errorf(n.line, field, "want a memory size such as 512MiB, got %s", describe(n))
		return 0, false
	}
	if bytes < 1 || bytes > math.MaxInt64/2 {
		d.errorf(n.line, field, "memory size %s is out of range; want at least 1 byte and at most 4EiB", n.value)
		return 0, false
	}
	return int64(math.Round(bytes)), true
}

// suggestUnit suggests a unit for a well-formed number with a misspelt one.
func suggestUnit(numOK bool, unit string, units []string) string {
	if !numOK || unit == "" {
		return ""
	}
	return ": unknown unit " + strconv.Quote(unit) + suggest(unit, units)
}

func (d *decoder) duration(n *node, field string) (time.Duration, bool) {
	v, ok := d.scalar(n, field)
	if !ok {
		return 0, false
	}
	s, isStr := v.(string)
	if !isStr {
		d.errorf(n.line, field, "want a duration with a unit such as 90s, 10m or 1h30m, got %s", describe(n))
		return 0, false
	}
	t, err := time.ParseDuration(s)
	if err != nil || t <= 0 {
		d.errorf(n.line, field, "invalid duration %q; want a positive duration with a unit such as 90s, 10m or 1h30m, of at most %dh (about 292 years)", s, int64(math.MaxInt64/time.Hour))
		return 0, false
	}
	return t, true
}

func (d *decoder) seeds(m map[string]*node, s *Spec) {
	seedsNode, hasSeeds := m["seeds"]
	repNode, hasRep := m["replicates"]
	switch {
	case hasSeeds && hasRep:
		d.errorf(repNode.line, "replicates", "set either seeds or replicates, not both; replicates: N means seeds 0 to N-1")
	case hasRep:
		if r, ok := d.intAtLeast(repNode, "replicates", 1); ok {
			if r > MaxTrials {
				d.errorf(repNode.line, "replicates", "%d replicates exceed the limit of %d trials", r, MaxTrials)
				return
			}
			for i := range r {
				s.Seeds = append(s.Seeds, int64(i))
			}
		}
		return
	case hasSeeds:
		items, ok := d.list(seedsNode, "seeds", "of whole numbers such as [0, 1, 2]")
		if !ok {
			return
		}
		seen := map[int64]bool{}
		for _, it := range items {
			if d.full() {
				break
			}
			v, ok := d.integer(it, "seeds")
			if !ok {
				continue
			}
			if seen[v] {
				d.errorf(it.line, "seeds", "seed %d is listed twice; each seed runs once per configuration", v)
				continue
			}
			seen[v] = true
			s.Seeds = append(s.Seeds, v)
		}
		return
	}
	s.Seeds = []int64{0}
}

// checkSize rejects specs that expand to more than MaxTrials trials, before
// anything tries to expand them.
func (d *decoder) checkSize(root *node, m map[string]*node, s *Spec) {
	if len(d.errs) > 0 {
		return
	}
	n, parts := s.size()
	if n <= MaxTrials {
		return
	}
	line, field := root.line, ""
	if v, ok := m["space"]; ok {
		line, field = v.line, "space"
	}
	d.errorf(line, field, "the spec expands to %s, over the limit of %d; shrink the grid or split the study", parts, MaxTrials)
}

// paramCount counts the parameters the spec's YAML defines, whether or not
// each definition is valid.
func paramCount(m map[string]*node) int {
	count := 0
	for _, key := range []string{"space", "fixed", "derived"} {
		if n, ok := m[key]; ok {
			count += len(n.pairs)
		}
	}
	if n, ok := m["random"]; ok {
		for _, p := range n.pairs {
			if p.key == "space" {
				count += len(p.val.pairs)
			}
		}
	}
	return count
}

// maxFactors bounds the factors size describes: past a dozen the list
// says nothing more, and a spec may have a thousand axes.
const maxFactors = 12

// size returns the number of trials before deduplication, capped just
// above MaxTrials, and the factors that make it up, such as
// "4 lr × 3 seeds". The product is taken in float64, which cannot wrap
// around as an int would (64 axes of 2 values are 2^64 trials); it is 0
// when any factor is 0 or less, as in a hand-built Spec with an empty axis.
func (s *Spec) size() (int, string) {
	total := 1.0
	var parts []string
	mul := func(k int, what string) {
		parts = append(parts, fmt.Sprintf("%d %s", k, what))
		total *= float64(max(k, 0))
	}
	for _, a := range s.Axes {
		mul(len(a.Values), a.Name)
	}
	if s.Random != nil {
		mul(s.Random.Count, "random draws")
	}
	mul(len(s.Seeds), "seeds")
	if len(parts) > maxFactors {
		more := len(parts) - maxFactors + 1
		parts = append(parts[:maxFactors-2], fmt.Sprintf("%d more factors", more), parts[len(parts)-1])
	}
	count := fmt.Sprintf("%.0f", total)
	switch {
	case math.IsInf(total, 0):
		count = fmt.Sprintf("more than %g", math.MaxFloat64)
	case total >= 1e15:
		count = fmt.Sprintf("%.3g", total)
	}
	desc := fmt.Sprintf("%s trials (%s)", count, strings.Join(parts, " × "))
	if total > MaxTrials {
		return MaxTrials + 1, desc
	}
	return int(total), desc
}

// Hash returns the hex SHA-256 of the canonical form of the spec: every
// resolved field except Source, so comments, key order and number spelling
// (1e6 against 1000000) do not change it but any change in meaning does.
func (s *Spec) Hash() string {
	type axis struct {
		Name   string `json:"name"`
		Values []any  `json:"values"`
	}
	type derived struct {
		Name string `json:"name"`
		Expr string `json:"expr"`
	}
	c := struct {
		Name          string         `json:"name"`
		Method        string         `json:"method"`
		MethodVersion string         `json:"method_version"`
		Objective     Objective      `json:"objective"`
		Seeds         []int64        `json:"seeds"`
		Resources     Resources      `json:"resources"`
		Retries       int            `json:"retries"`
		Timeout       int64          `json:"timeout_ns"`
		Priority      int            `json:"priority"`
		Axes          []axis         `json:"axes"`
		Random        *Random        `json:"random"`
		Fixed         map[string]any `json:"fixed"`
		Derived       []derived      `json:"derived"`
		Command       *Command       `json:"command,omitempty"`
		Checkpoints   *Checkpoints   `json:"checkpoints,omitempty"`
	}{
		Name: s.Name, Method: s.Method, MethodVersion: s.MethodVersion, Objective: s.Objective,
		Seeds: s.Seeds, Resources: s.Resources, Retries: s.Retries, Timeout: int64(s.Timeout),
		Priority: s.Priority, Random: s.Random, Fixed: s.Fixed, Command: s.Command,
		Checkpoints: s.Checkpoints,
	}
	for _, a := range s.Axes {
		c.Axes = append(c.Axes, axis{a.Name, a.Values})
	}
	for _, dv := range s.Derived {
		e := dv.Expr
		if ast, err := parseExpr(dv.Expr); err == nil {
			e = ast.String()
		}
		c.Derived = append(c.Derived, derived{dv.Name, e})
	}
	b, err := json.Marshal(c)
	if err != nil {
		// Only non-finite floats fail to encode; Parse rejects them, but a
		// hand-built Spec may hold one. fmt prints maps sorted, so this is
		// still deterministic.
		b = fmt.Appendf(nil, "%+v", c)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
