package sweep

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CommandMethod is the name of the built-in method that runs any program:
// a study with method: command says which in its command section.
const CommandMethod = "command"

// Command is a study's command section: the program the built-in command
// method runs for each trial, and how parameters reach it and metrics come
// back. It is part of every trial's identity (Grace aside), so changing
// the program or its arguments makes new trials.
type Command struct {
	// Program is the executable or script: an absolute path, a path
	// relative to Workdir, or a name looked up on PATH.
	Program string `json:"program"`
	// Interpreter, when set, runs Program as its first argument (python3,
	// bash); it is resolved the same way. A script without one runs by
	// its #! line.
	Interpreter string `json:"interpreter,omitempty"`
	// Args are the program's arguments; {name} is replaced by the
	// trial's value of a parameter (or seed, trial_id, attempt, study),
	// and {{ and }} stand for literal braces. Nil means --name=value for
	// every parameter, sorted by name; empty means no arguments. The two
	// must survive JSON, so the field is never omitted (null is nil).
	Args []string `json:"args"`
	// Workdir is the program's working directory on the agent's host;
	// empty means the agent's own.
	Workdir string `json:"workdir,omitempty"`
	// Pattern, when set, is a regular expression applied to each line of
	// the program's standard output; its named groups are metrics (a
	// group named step is the step). For programs that cannot change.
	Pattern string `json:"pattern,omitempty"`
	// Grace is how long the program has, after SIGTERM (a cancellation,
	// a timeout), to exit before its processes are killed; 1s by default.
	// It is not part of the trial's identity.
	Grace time.Duration `json:"grace_ns,omitempty"`
}

// DefaultCommandGrace is Command.Grace when the spec gives none: under the
// agent's default kill grace (2s), which bounds it.
const DefaultCommandGrace = time.Second

// MaxCommandBytes bounds a command section as JSON: it travels with every
// dispatch, and a batch of 256 dispatches must stay far below a bus
// message's 1 MB limit.
const MaxCommandBytes = 2 << 10

// commandVars are the names a template may use besides parameters.
var commandVars = []string{"seed", "trial_id", "attempt", "study"}

var commandKeys = []string{"program", "interpreter", "args", "workdir", "pattern", "grace"}

func (d *decoder) command(n *node, s *Spec) {
	m, ok := d.mapping(n, "command", commandKeys...)
	if !ok {
		return
	}
	c := &Command{Grace: DefaultCommandGrace}
	if v, ok := m["program"]; !ok {
		d.errorf(n.line, "command.program", "missing; name the program to run, as in program: train.py (with interpreter: python3) or program: /opt/bin/train")
	} else if p, ok := d.str(v, "command.program"); ok {
		if strings.TrimSpace(p) == "" || strings.ContainsRune(p, 0) {
			d.errorf(v.line, "command.program", "empty program; name the program to run, as in program: train.py")
		}
		c.Program = p
	}
	if v, ok := m["interpreter"]; ok {
		if p, ok := d.str(v, "command.interpreter"); ok {
			if strings.TrimSpace(p) == "" || strings.ContainsAny(p, " \t\x00") {
				d.errorf(v.line, "command.interpreter", "invalid interpreter %q; name one executable, such as python3 or /bin/bash (put its options in args)", p)
			}
			c.Interpreter = p
		}
	}
	if v, ok := m["workdir"]; ok {
		if p, ok := d.str(v, "command.workdir"); ok {
			if !strings.HasPrefix(p, "/") {
				d.errorf(v.line, "command.workdir", "workdir %q is not an absolute path; agents run on other hosts and in other directories, so give the full path, as in /shared/project", p)
			}
			c.Workdir = p
		}
	}
	names := append(s.paramNames(), commandVars...)
	if v, ok := m["args"]; ok {
		if v.kind != seqNode {
			d.errorf(v.line, "command.args", "want a list of arguments, such as [\"--lr={lr}\", \"--epochs={epochs}\"], got %s", describe(v))
		} else {
			c.Args = []string{} // given, even if empty: no default flags
			for i, it := range v.items {
				field := fmt.Sprintf("command.args[%d]", i)
				a, ok := d.str(it, field)
				if !ok {
					continue
				}
				if _, err := parseTemplate(a, names); err != nil {
					d.errorf(it.line, field, "%v", err)
				}
				c.Args = append(c.Args, a)
			}
		}
	}
	if v, ok := m["pattern"]; ok {
		if p, ok := d.str(v, "command.pattern"); ok {
			if re, err := regexp.Compile(p); err != nil {
				d.errorf(v.line, "command.pattern", "not a regular expression: %v", err)
			} else if !slices.ContainsFunc(re.SubexpNames(), func(s string) bool { return s != "" && s != "step" }) {
				d.errorf(v.line, "command.pattern", "the pattern names no metric; name a group after each metric, as in 'val_loss=(?P<val_loss>[0-9.e+-]+)'")
			}
			c.Pattern = p
		}
	}
	if v, ok := m["grace"]; ok {
		if g, ok := d.duration(v, "command.grace"); ok {
			c.Grace = g
		}
	}
	if b, _ := json.Marshal(c); len(b) > MaxCommandBytes {
		d.errorf(n.line, "command", "the command section is %d bytes, over the limit of %d; put long configuration in a file and pass its path as an argument", len(b), MaxCommandBytes)
	}
	s.Command = c
}

// identity is the canonical text of c that trial IDs hash: everything but
// Grace, which changes how a trial is stopped, not what it computes.
func (c *Command) identity() string {
	if c == nil {
		return ""
	}
	id := *c
	id.Grace = 0
	b, _ := json.Marshal(id)
	return string(b)
}

// MethodConfig returns the method's configuration as the JSON object that
// travels with each dispatch ({"command": {...}}), or nil when the spec
// has none.
func (s *Spec) MethodConfig() []byte {
	if s.Command == nil {
		return nil
	}
	b, _ := json.Marshal(MethodConfig{Command: s.Command})
	return b
}

// MethodConfig is the JSON document Spec.MethodConfig encodes.
type MethodConfig struct {
	Command *Command `json:"command,omitempty"`
}

// Argv returns the program's arguments for one trial: Args with every
// {name} replaced by its value in vars (the trial's parameters, and seed,
// trial_id, attempt and study), or --name=value for every parameter in
// params when Args is nil.
func (c *Command) Argv(params map[string]any, vars map[string]any) ([]string, error) {
	if c.Args == nil {
		out := make([]string, 0, len(params))
		for _, k := range slices.Sorted(maps.Keys(params)) {
			out = append(out, "--"+k+"="+FormatValue(params[k]))
		}
		return out, nil
	}
	all := make(map[string]any, len(params)+len(vars))
	maps.Copy(all, vars)
	maps.Copy(all, params)
	names := slices.Collect(maps.Keys(all))
	out := make([]string, 0, len(c.Args))
	for i, a := range c.Args {
		parts, err := parseTemplate(a, names)
		if err != nil {
			return nil, fmt.Errorf("command.args[%d]: %w", i, err)
		}
		var b strings.Builder
		for _, p := range parts {
			if p.name == "" {
				b.WriteString(p.text)
			} else {
				b.WriteString(FormatValue(all[p.name]))
			}
		}
		out = append(out, b.String())
	}
	return out, nil
}

// FormatValue writes a parameter value as a program reads it: a whole
// number without a fraction or exponent (8, 1000000: argparse's int takes
// them), other numbers in Go's shortest form (0.0003, 1.5e-08), strings
// as they are and bools as true or false.
func FormatValue(v any) string {
	switch v := v.(type) {
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return strconv.FormatInt(int64(v), 10)
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// templatePart is literal text, or a reference to the value of name.
type templatePart struct{ text, name string }

// parseTemplate splits an argument into literal text and {name}
// references, checking every name against names.
func parseTemplate(s string, names []string) ([]templatePart, error) {
	var parts []templatePart
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			lit.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexByte(s[i+1:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed { in %q; write {name} for a parameter's value, or {{ for a literal brace", s)
			}
			name := strings.TrimSpace(s[i+1 : i+1+end])
			if !slices.Contains(names, name) {
				return nil, fmt.Errorf("{%s} names no parameter%s; the spec defines: %s", name, suggest(name, names), strings.Join(names, ", "))
			}
			if lit.Len() > 0 {
				parts = append(parts, templatePart{text: lit.String()})
				lit.Reset()
			}
			parts = append(parts, templatePart{name: name})
			i += end + 1
		case c == '}':
			return nil, fmt.Errorf("unmatched } in %q; write }} for a literal brace", s)
		default:
			lit.WriteByte(c)
		}
	}
	if lit.Len() > 0 {
		parts = append(parts, templatePart{text: lit.String()})
	}
	return parts, nil
}
