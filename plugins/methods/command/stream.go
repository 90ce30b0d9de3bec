package command

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"asymptote.dev/asymptote/plugins/sdk"
)

// output receives the program's standard output and error: the plugin's
// real standard error, which the agent logs line by line and bounds (its
// flood limit covers the program too).
var output io.Writer = os.NewFile(2, "stderr")

// readMetrics relays the JSON lines the program writes to its metrics
// descriptor.
func (r *run) readMetrics(f io.Reader, fail func(error)) {
	br := bufio.NewReaderSize(f, maxLine)
	var total int64
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		total += int64(len(line))
		if errors.Is(err, bufio.ErrBufferFull) {
			fail(fmt.Errorf("command: metrics line %d is longer than %d KiB; write one small JSON object a line", n, maxLine>>10))
			return
		}
		if total > maxMetricsBytes {
			fail(fmt.Errorf("command: the program wrote more than %d MiB of metrics; report every few steps, not every step of a long run", maxMetricsBytes>>20))
			return
		}
		if len(bytes.TrimSpace(line)) > 0 {
			rep, perr := parseLine(line)
			if perr != nil {
				fail(fmt.Errorf("command: metrics line %d: %w", n, perr))
				return
			}
			if err := r.emit(rep); err != nil {
				fail(fmt.Errorf("command: metrics line %d: %w", n, err))
				return
			}
		}
		if err != nil { // io.EOF, or the pipe closed under us
			return
		}
	}
}

// readStdout passes the program's standard output on and, with a pattern,
// reads metrics from the lines that match it.
func (r *run) readStdout(f io.Reader, fail func(error)) {
	var re *regexp.Regexp
	if r.cmd.Pattern != "" {
		re = regexp.MustCompile(r.cmd.Pattern) // checked when the spec was parsed
	}
	br := bufio.NewReaderSize(f, maxLine)
	whole := true // line starts a line (the previous read ended one)
	for n := 1; ; {
		line, err := br.ReadSlice('\n')
		_, _ = output.Write(line)
		if re != nil && whole && len(line) > 0 {
			if m := re.FindSubmatch(line); m != nil {
				rep, perr := matchValues(re, m)
				if perr == nil {
					perr = r.emit(rep)
				}
				if perr != nil {
					fail(fmt.Errorf("command.pattern: output line %d: %w", n, perr))
					return
				}
			}
		}
		whole = !errors.Is(err, bufio.ErrBufferFull)
		if whole {
			n++
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// readStderr passes the program's standard error on and keeps its tail.
func (r *run) readStderr(f io.Reader) {
	_, _ = io.Copy(io.MultiWriter(output, &r.stderr), f)
}

// report is what one metrics line or matched output line says.
type report struct {
	step    int64
	hasStep bool
	values  map[string]float64
	// checkpoint is the directory the line announces a checkpoint in, as
	// the program wrote it; empty for none.
	checkpoint string
}

// emit reports one set of metrics, with the checkpoint it announces, and
// remembers each value as the latest.
func (r *run) emit(rep report) error {
	if len(rep.values) == 0 && rep.checkpoint == "" {
		return nil
	}
	r.mu.Lock()
	r.reports++
	if !rep.hasStep {
		rep.step = r.reports
	}
	maps.Copy(r.last, rep.values)
	r.mu.Unlock()
	r.reportMu.Lock()
	defer r.reportMu.Unlock()
	m := sdk.Metrics{Step: rep.step, Values: rep.values}
	if rep.checkpoint != "" {
		dir, err := r.checkpoints.take(rep.step, rep.checkpoint)
		if err != nil {
			return err
		}
		m.Checkpoint = dir
	}
	return r.report(m)
}

// parseLine reads one metrics line: a JSON object whose "step", if any, is
// a whole number, whose "checkpoint", if any, is a string naming a
// checkpoint's directory, and whose other values are numbers. NaN,
// Infinity and -Infinity, which Python's json module writes bare, are
// accepted bare or quoted.
func parseLine(line []byte) (report, error) {
	dec := json.NewDecoder(bytes.NewReader(quoteNonFinite(bytes.TrimSpace(line))))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil || dec.More() {
		return report{}, fmt.Errorf("not a JSON object: %q; write one object a line, such as {\"step\": 100, \"val_loss\": 2.31}", clip(line))
	}
	rep := report{values: make(map[string]float64, len(obj))}
	for k, v := range obj {
		switch k {
		case "step":
			n, ok := v.(json.Number)
			s, perr := strconv.ParseInt(string(n), 10, 64)
			if !ok || perr != nil {
				f, ferr := strconv.ParseFloat(string(n), 64)
				if !ok || ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
					return report{}, fmt.Errorf("step is %v; want a whole number", v)
				}
				s = int64(f)
			}
			rep.step, rep.hasStep = s, true
			continue
		case checkpointKey:
			dir, ok := v.(string)
			if !ok || dir == "" {
				return report{}, fmt.Errorf("checkpoint is %s; want the name of the directory under $%s that holds it", describe(v), EnvCheckpointDir)
			}
			rep.checkpoint = dir
			continue
		}
		f, ok := number(v)
		if !ok {
			return report{}, fmt.Errorf("metric %q is %s; a metric is a number (or NaN, Infinity, -Infinity)", k, describe(v))
		}
		rep.values[k] = f
	}
	return rep, nil
}

// number reads a JSON value as a metric.
func number(v any) (float64, bool) {
	switch v := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		return f, err == nil || errors.Is(err, strconv.ErrRange)
	case string:
		return nonFinite(v)
	}
	return 0, false
}

// nonFinite reads the spellings of NaN and the infinities.
func nonFinite(s string) (float64, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "nan":
		return math.NaN(), true
	case "inf", "+inf", "infinity", "+infinity":
		return math.Inf(1), true
	case "-inf", "-infinity":
		return math.Inf(-1), true
	}
	return 0, false
}

func describe(v any) string {
	switch v := v.(type) {
	case string:
		return "the string " + strconv.Quote(clip([]byte(v)))
	case bool:
		return "the bool " + strconv.FormatBool(v)
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%v", v)
}

// quoteNonFinite quotes the bare NaN, Infinity and -Infinity tokens
// outside strings, so encoding/json reads them as strings.
func quoteNonFinite(b []byte) []byte {
	if !bytes.Contains(b, []byte("NaN")) && !bytes.Contains(b, []byte("Infinity")) {
		return b
	}
	var out []byte
	inString, escaped := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if c == '"' {
			inString = true
			out = append(out, c)
			continue
		}
		matched := false
		for _, tok := range []string{"-Infinity", "Infinity", "NaN"} {
			if bytes.HasPrefix(b[i:], []byte(tok)) {
				out = append(out, '"')
				out = append(out, tok...)
				out = append(out, '"')
				i += len(tok) - 1
				matched = true
				break
			}
		}
		if !matched {
			out = append(out, c)
		}
	}
	return out
}

// matchValues reads the named groups of a pattern match: step, checkpoint
// (a directory, as in a metrics line) and metrics.
func matchValues(re *regexp.Regexp, m [][]byte) (report, error) {
	rep := report{values: map[string]float64{}}
	for i, name := range re.SubexpNames() {
		if name == "" || m[i] == nil {
			continue
		}
		text := strings.TrimSpace(string(m[i]))
		switch name {
		case "step":
			f, err := strconv.ParseFloat(text, 64)
			if err != nil || f != math.Trunc(f) {
				return report{}, fmt.Errorf("step %q is not a whole number", text)
			}
			rep.step, rep.hasStep = int64(f), true
			continue
		case checkpointKey:
			rep.checkpoint = text
			continue
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			var ok bool
			if f, ok = nonFinite(text); !ok {
				return report{}, fmt.Errorf("%s %q is not a number; make the group match only the number", name, text)
			}
		}
		rep.values[name] = f
	}
	return rep, nil
}

func clip(b []byte) string {
	const n = 200
	s := string(bytes.TrimSpace(b))
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// tail keeps the last tailBytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*tailBytes {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailBytes:]...)
	}
	return len(p), nil
}

// quote returns "; its stderr ended with:\n..." for an error, or "".
func (t *tail) quote() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	return "; its stderr ended with:\n" + s
}
