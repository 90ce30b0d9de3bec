// Package httpapi is the HTTP API over a deployment's studies, served by
// every coordinator, leader or standby: reads come from etcd and the
// metric history stream, so they need no leader; a submission is relayed
// to the leader over the bus. JSON throughout, JSON lines for bulk reads,
// server-sent events for live updates; openapi.json documents it and a
// test checks the document against the routes.
package httpapi

import (
	"bufio"
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/export"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/scaling"
	"asymptote.dev/asymptote/sweep"
)

//go:embed openapi.json
var openapi []byte

// Config configures a Server.
type Config struct {
	// Etcd is read for studies and trials.
	Etcd *clientv3.Client
	// NATS carries submissions to the leader and reads the history.
	NATS *nats.Conn
	// Logger receives request errors; default: discard.
	Logger *slog.Logger
	// RequestTimeout bounds a submission's wait for the leader (default
	// 30s).
	RequestTimeout time.Duration
	// UI, when set, serves every path outside /api/ (the dashboard).
	UI http.Handler
	// Tokens, when set, are the bearer tokens every request needs
	// (auth.go); nil serves anyone who reaches the address.
	Tokens *Tokens
	// TableIdle is how long a study's table stays in the cache after it
	// was last read or written, once the study is no longer running
	// (default 10 minutes).
	TableIdle time.Duration
}

// Server serves the API.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	js    jetstream.JetStream
	mux   *http.ServeMux
	cache *trialCache
}

// route is one endpoint; routes is the table openapi.json must match.
type route struct {
	method, path string
	handle       func(*Server, http.ResponseWriter, *http.Request) error
}

var routes = []route{
	{"GET", "/api/v1/openapi.json", (*Server).openAPI},
	{"GET", "/api/v1/studies", (*Server).studies},
	{"POST", "/api/v1/studies", (*Server).submit},
	{"GET", "/api/v1/studies/{study}", (*Server).study},
	{"GET", "/api/v1/studies/{study}/trials", (*Server).trials},
	{"GET", "/api/v1/studies/{study}/trials/{trial}", (*Server).trial},
	{"GET", "/api/v1/studies/{study}/history", (*Server).history},
	{"GET", "/api/v1/studies/{study}/fit", (*Server).fit},
	{"GET", "/api/v1/studies/{study}/epochs", (*Server).epochs},
	{"GET", "/api/v1/studies/{study}/events", (*Server).events},
	{"GET", "/api/v1/crossover", (*Server).crossover},
	{"GET", "/api/v1/agents", (*Server).agents},
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	js, err := jetstream.New(cfg.NATS)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, store: store.New(cfg.Etcd), js: js, mux: http.NewServeMux(), cache: newTrialCache(cfg.Etcd, cfg.Logger)}
	if cfg.TableIdle > 0 {
		s.cache.idle = cfg.TableIdle
	}
	for _, r := range routes {
		s.mux.HandleFunc(r.method+" "+r.path, func(w http.ResponseWriter, req *http.Request) {
			if err := r.handle(s, w, req); err != nil {
				s.fail(w, req, err)
			}
		})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		if cfg.UI != nil && !strings.HasPrefix(req.URL.Path, "/api/") {
			cfg.UI.ServeHTTP(w, req)
			return
		}
		s.fail(w, req, &Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("no endpoint %s %s; the API's endpoints are listed at /api/v1/openapi.json", req.Method, req.URL.Path)})
	})
	return s, nil
}

// Handler returns the server's handler.
func (s *Server) Handler() http.Handler {
	if s.cfg.Tokens != nil {
		return s.authenticate(s.mux)
	}
	return s.mux
}

// leader returns a client of the leader's API that acts as the request's
// caller: the leader records a submission as the caller's team's and
// shows it only that team's studies and attempts.
func (s *Server) leader(ctx context.Context, timeout time.Duration) (*bus.Client, error) {
	c := bus.NewClient(s.cfg.NATS, timeout)
	if who := callerOf(ctx); who.Identity != "" {
		return c.As(who.Team, who.Identity)
	}
	return c, nil
}

// Error is an API error: its status, what is wrong and, for a bad input,
// the field at fault. It is written as {"error": ..., "field": ...}.
type Error struct {
	Status int    `json:"-"`
	Msg    string `json:"error"`
	Field  string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Msg }

func badField(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Msg: err.Error()}
		s.log.Warn("http api request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	writeJSON(w, e.Status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openapi)
	return err
}

// loadStudy reads one study's record.
func (s *Server) loadStudy(ctx context.Context, name string) (api.Study, error) {
	st, _, err := s.loadStudyRev(ctx, name)
	return st, err
}

// loadStudyRev reads one study's record and etcd's revision at the read.
// It is where a team's token is kept to its team's studies: every
// endpoint of a study loads it first, and another team's is answered as a
// missing one.
func (s *Server) loadStudyRev(ctx context.Context, name string) (api.Study, int64, error) {
	var st api.Study
	found, rev, err := s.getJSONRev(ctx, store.StudyKey(name), &st)
	if err == nil && (!found || !canSee(callerOf(ctx), st)) {
		err = &Error{Status: http.StatusNotFound, Field: "study", Msg: fmt.Sprintf("no study %q", name)}
	}
	return st, rev, err
}

// getJSON reads the document at key into v, reporting whether it exists.
func (s *Server) getJSON(ctx context.Context, key string, v any) (bool, error) {
	found, _, err := s.getJSONRev(ctx, key, v)
	return found, err
}

// getJSONRev is getJSON that also returns etcd's revision at the read.
func (s *Server) getJSONRev(ctx context.Context, key string, v any) (bool, int64, error) {
	resp, err := s.cfg.Etcd.Get(ctx, key)
	if err != nil {
		return false, 0, err
	}
	if len(resp.Kvs) == 0 {
		return false, resp.Header.Revision, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return false, 0, fmt.Errorf("%s: %w", key, err)
	}
	return true, resp.Header.Revision, nil
}

func (s *Server) loadTrials(ctx context.Context, study string) ([]api.Trial, error) {
	// A trial record is a large value: gathered in chunks that are never
	// regrown and copied once into place, 100,000 of them cost a copy, not
	// the many of a doubling slice.
	var chunks [][]api.Trial
	cur, n := make([]api.Trial, 0, 256), 0
	err := s.store.StudyTrials(ctx, study, func(v store.Versioned[api.Trial]) error {
		if len(cur) == cap(cur) {
			chunks = append(chunks, cur)
			cur = make([]api.Trial, 0, 2*cap(cur))
		}
		cur = append(cur, v.Value)
		n++
		return nil
	})
	out := make([]api.Trial, 0, n)
	for _, c := range append(chunks, cur) {
		out = append(out, c...)
	}
	slices.SortFunc(out, func(a, b api.Trial) int { return cmp.Compare(a.Index, b.Index) })
	return out, err
}

// StudySummary is a study in the list: its record without the spec text,
// with its trials counted by state.
type StudySummary struct {
	api.Study
	Counts map[sweep.State]int `json:"counts"`
	// FitLaw is the law of the study's analysis plan, empty when it has
	// none; only the single study's endpoint fills it.
	FitLaw string `json:"fit_law,omitempty"`
	// Paused counts the succeeded trials that wait for a promotion that
	// may still continue them (counted under succeeded too): the
	// leader's count, which the studies list and the study endpoint's
	// paused=1 fill when it answers. A record does not say it.
	Paused int `json:"paused,omitempty"`
}

func (s *Server) studies(w http.ResponseWriter, r *http.Request) error {
	list := []StudySummary{} // [] when there are none, not null
	err := s.store.Studies(r.Context(), func(v store.Versioned[api.Study]) error {
		st := v.Value
		if !canSee(callerOf(r.Context()), st) {
			return nil
		}
		st.Spec = ""
		list = append(list, StudySummary{Study: st, Counts: map[sweep.State]int{}})
		return nil
	})
	if err != nil {
		return err
	}
	counts := map[string]map[sweep.State]int{}
	paused := map[string]*int{}
	for i := range list {
		counts[list[i].Name] = list[i].Counts
		paused[list[i].Name] = &list[i].Paused
	}
	// The leader keeps the counts; reading every trial of every study is
	// the fallback when no leader answers (the list is polled).
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	c, err := s.leader(r.Context(), 2*time.Second)
	if err != nil {
		cancel()
		return err
	}
	status, serr := c.Status(ctx, "")
	cancel()
	if serr == nil {
		for _, st := range status.Studies {
			if c := counts[st.Name]; c != nil {
				for state, n := range st.Counts {
					c[sweep.State(state)] = n
				}
				*paused[st.Name] = st.Paused
			}
		}
	} else {
		err = s.store.Trials(r.Context(), func(v store.Versioned[api.Trial]) error {
			if c := counts[v.Value.Study]; c != nil {
				c[v.Value.State]++
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	slices.SortFunc(list, func(a, b StudySummary) int { return cmp.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, map[string]any{"studies": list})
	return nil
}

// study returns one study with its trials counted by state; counts=0
// leaves them out, for a client that reads every trial anyway (a large
// study's page), which spares the server reading them twice.
func (s *Server) study(w http.ResponseWriter, r *http.Request) error {
	st, err := s.loadStudy(r.Context(), r.PathValue("study"))
	if err != nil {
		return err
	}
	sum := StudySummary{Study: st, Counts: map[sweep.State]int{}}
	if spec, err := sweep.Parse(st.SpecFile, []byte(st.Spec)); err == nil && spec.Analysis != nil && spec.Analysis.Fit != nil {
		sum.FitLaw = spec.Analysis.Fit.Law
	}
	switch c := r.URL.Query().Get("counts"); c {
	case "0":
	case "", "1":
		trials, err := s.loadTrials(r.Context(), st.Name)
		if err != nil {
			return err
		}
		for _, t := range trials {
			sum.Counts[t.State]++
		}
	default:
		return badField("counts", "counts=%q: want 0 (leave the counts out) or 1 (the default)", c)
	}
	switch p := r.URL.Query().Get("paused"); p {
	case "", "0":
	case "1":
		sum.Paused = s.paused(r.Context(), st.Name)
	default:
		return badField("paused", "paused=%q: want 1 (ask the leader how many trials wait for a promotion) or 0 (the default)", p)
	}
	writeJSON(w, http.StatusOK, sum)
	return nil
}

// paused asks the leader how many of study's trials are paused; 0 when
// it does not answer within 2 s (reads need no leader).
func (s *Server) paused(ctx context.Context, study string) int {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := s.leader(ctx, 2*time.Second)
	if err != nil {
		s.log.Debug("paused: no leader client", "study", study, "error", err)
		return 0
	}
	status, err := c.Status(ctx, study)
	if err != nil || len(status.Studies) != 1 {
		s.log.Debug("paused: the leader's status", "study", study, "error", err)
		return 0
	}
	return status.Studies[0].Paused
}

// submit relays a spec to the leader. The body is the YAML spec itself,
// or JSON {"spec": "...", "spec_file": "..."}.
func (s *Server) submit(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, sweep.MaxSpecBytes+1))
	if err != nil {
		return badField("body", "read the request: %v", err)
	}
	req := api.SubmitRequest{SpecFile: "api", Spec: string(body)}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var in struct {
			Spec     string `json:"spec"`
			SpecFile string `json:"spec_file"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			return badField("body", "not a JSON object with a spec: %v", err)
		}
		req.Spec, req.SpecFile = in.Spec, cmp.Or(in.SpecFile, "api")
	}
	// Parse here first, so a bad spec gets its field back without a trip
	// to the leader.
	if _, err := sweep.Parse(req.SpecFile, []byte(req.Spec)); err != nil {
		var se *sweep.SpecError
		field := "spec"
		if errors.As(err, &se) && se.Field != "" {
			field = "spec." + se.Field
		}
		return badField(field, "%v", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	// The leader records the study as the token's team's, and who
	// submitted it.
	c, err := s.leader(r.Context(), s.cfg.RequestTimeout)
	if err != nil {
		return err
	}
	reply, err := c.Submit(ctx, req)
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Msg: err.Error()}
	}
	writeJSON(w, http.StatusOK, reply)
	return nil
}

func (s *Server) trial(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.loadStudy(r.Context(), r.PathValue("study")); err != nil {
		return err
	}
	var t api.Trial
	found, err := s.getJSON(r.Context(), store.TrialKey(r.PathValue("study"), r.PathValue("trial")), &t)
	if err != nil {
		return err
	}
	if !found {
		return &Error{Status: http.StatusNotFound, Field: "trial", Msg: fmt.Sprintf("no trial %q in study %q", r.PathValue("trial"), r.PathValue("study"))}
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// trials lists a study's trials, filtered, sorted and paged on the
// server: state=STATE (repeatable), sort=FIELD or -FIELD (index,
// objective, seed, updated, or a parameter's name), offset, limit;
// format=jsonl streams one trial a line instead of one JSON document, and
// format=columns is one document of columns (TrialColumns), the compact
// form a large study's table loads, with only the metrics metric= names
// when it is given (metric= alone: none).
func (s *Server) trials(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	study := r.PathValue("study")
	_, rev, err := s.loadStudyRev(r.Context(), study)
	if err != nil {
		return err
	}
	if f := q.Get("format"); (f == "" || f == "json") && len(q["state"]) == 0 && q.Get("sort") == "" {
		return s.rawTrials(w, r, study)
	}
	var trials []api.Trial
	if f := q.Get("format"); f == "columns" || f == "csv" || f == "parquet" {
		// What the table formats carry is cached, current to rev at
		// least. Columns of it in index order are written from the
		// cache's own form; the rest work on records made from it.
		var view tableView
		view, err = s.cache.trials(r.Context(), study, rev)
		switch {
		case err != nil && r.Context().Err() == nil:
			s.log.Debug("trials: reading etcd, not the cache", "study", study, "error", err)
			trials, err = s.loadTrials(r.Context(), study)
		case err == nil && f == "columns" && len(q["state"]) == 0 && q.Get("sort") == "":
			offset, lo, hi, err := pageOf(q, len(view.rows))
			if err != nil {
				return err
			}
			if err := writeColumns(w, r, view.columns(lo, hi, offset, onlyMetrics(q))); err != nil {
				s.log.Debug("trials response cut short", "error", err)
			}
			return nil
		case err == nil:
			trials = view.trials()
		}
	} else {
		trials, err = s.loadTrials(r.Context(), study)
	}
	if err != nil {
		return err
	}
	if states := q["state"]; len(states) > 0 {
		for _, st := range states {
			if !slices.Contains(sweep.States, sweep.State(st)) {
				return badField("state", "unknown state %q; want one of %v", st, sweep.States)
			}
		}
		trials = slices.DeleteFunc(trials, func(t api.Trial) bool { return !slices.Contains(states, string(t.State)) })
	}
	if key := q.Get("sort"); key != "" {
		desc := strings.HasPrefix(key, "-")
		key = strings.TrimPrefix(key, "-")
		less, err := sorter(key)
		if err != nil {
			return err
		}
		slices.SortStableFunc(trials, func(a, b api.Trial) int {
			if desc {
				return less(b, a)
			}
			return less(a, b)
		})
	}
	total := len(trials)
	offset, lo, hi, err := pageOf(q, total)
	if err != nil {
		return err
	}
	trials = trials[lo:hi]
	switch f := q.Get("format"); f {
	case "", "json":
		writeJSON(w, http.StatusOK, map[string]any{"total": total, "offset": offset, "trials": trials})
	case "columns":
		if err := writeColumns(w, r, trialColumns(trials, total, offset, onlyMetrics(q))); err != nil {
			s.log.Debug("trials response cut short", "error", err)
		}
	default:
		write, ok := trialWriters[f]
		if !ok {
			return badField("format", "unknown format %q; want json, columns, jsonl, csv or parquet", f)
		}
		w.Header().Set("Content-Type", contentTypes[f])
		// Which columns are parameters and which metrics, for a client
		// that groups seeds of a configuration.
		params, metrics := export.Columns(trials)
		w.Header().Set("X-Asymptote-Params", strings.Join(params, ","))
		w.Header().Set("X-Asymptote-Metrics", strings.Join(metrics, ","))
		bw := bufio.NewWriterSize(w, 1<<16)
		if err := write(bw, trials); err != nil {
			s.log.Debug("trials response cut short", "error", err)
			return nil // the client went away, or the response is cut
		}
		_ = bw.Flush()
	}
	return nil
}

// rawTrials answers format=json without a filter or a sort: the records
// as etcd holds them (records.go), the same document byte for byte.
func (s *Server) rawTrials(w http.ResponseWriter, r *http.Request, study string) error {
	q := r.URL.Query()
	trials, err := s.loadRawTrials(r.Context(), study)
	if err != nil {
		return err
	}
	total := len(trials)
	offset, lo, hi, err := pageOf(q, total)
	if err != nil {
		return err
	}
	trials = trials[lo:hi]
	w.Header().Set("Content-Type", "application/json")
	if err := writeRawTrials(w, trials, total, offset); err != nil {
		s.log.Debug("trials response cut short", "error", err)
	}
	return nil
}

// onlyMetrics is the metrics metric= names (metric= alone: none), nil
// for every metric.
func onlyMetrics(q map[string][]string) []string {
	if m, ok := q["metric"]; ok {
		return m
	}
	return nil
}

// pageOf returns the offset= asked for and the range [lo, hi) of n
// trials that it and limit= select.
func pageOf(q map[string][]string, n int) (offset, lo, hi int, err error) {
	if offset, err = intParam(q, "offset", 0); err != nil {
		return 0, 0, 0, err
	}
	limit, err := intParam(q, "limit", n)
	if err != nil {
		return 0, 0, 0, err
	}
	lo = min(offset, n)
	return offset, lo, lo + min(limit, n-lo), nil
}

func intParam(q map[string][]string, name string, def int) (int, error) {
	v := ""
	if vs := q[name]; len(vs) > 0 {
		v = vs[0]
	}
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, badField(name, "%s=%q: want a whole number of at least 0", name, v)
	}
	return n, nil
}

// sorter orders trials by key; trials without a value sort last.
func sorter(key string) (func(a, b api.Trial) int, error) {
	num := func(f func(api.Trial) (float64, bool)) func(a, b api.Trial) int {
		return func(a, b api.Trial) int {
			x, xok := f(a)
			y, yok := f(b)
			switch {
			case !xok && !yok:
				return 0
			case !xok:
				return 1
			case !yok:
				return -1
			}
			return cmp.Compare(x, y)
		}
	}
	switch key {
	case "index":
		return func(a, b api.Trial) int { return cmp.Compare(a.Index, b.Index) }, nil
	case "seed":
		return func(a, b api.Trial) int { return cmp.Compare(a.Seed, b.Seed) }, nil
	case "updated":
		return func(a, b api.Trial) int { return a.Updated.Compare(b.Updated) }, nil
	case "state":
		return func(a, b api.Trial) int { return cmp.Compare(a.State, b.State) }, nil
	case "objective":
		return num(func(t api.Trial) (float64, bool) {
			if t.Result == nil || t.Result.Objective == nil {
				return 0, false
			}
			return *t.Result.Objective, true
		}), nil
	}
	if !paramName.MatchString(key) {
		return nil, badField("sort", "cannot sort by %q; sort by index, objective, seed, state, updated, a parameter or a metric, with - for descending", key)
	}
	return num(func(t api.Trial) (float64, bool) { return analysis.Lookup(t, key) }), nil
}

// The bulk formats, shared with the CLI's results command.
var (
	trialWriters = map[string]func(io.Writer, []api.Trial) error{
		"jsonl": export.TrialsJSONL, "csv": export.TrialsCSV, "parquet": export.TrialsParquet,
	}
	historyWriters = map[string]func(io.Writer, []HistoryRow) error{
		"jsonl": export.HistoryJSONL, "csv": export.HistoryCSV, "parquet": export.HistoryParquet,
	}
	contentTypes = map[string]string{
		"jsonl": "application/x-ndjson", "csv": "text/csv", "parquet": "application/vnd.apache.parquet",
	}
)

var paramName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// HistoryRow is one metrics report as the API returns it.
type HistoryRow = export.Report

// history returns the metric history of a study (or of trial=ID, which
// may repeat), as JSON lines by default. points=N keeps at most N reports
// per trial and attempt, evenly spread and always the last, so a long
// curve can be drawn without reading every step; the store keeps all.
func (s *Server) history(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	study := r.PathValue("study")
	if _, err := s.loadStudy(r.Context(), study); err != nil {
		return err
	}
	points, err := intParam(q, "points", 0)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, id := range q["trial"] {
		want[id] = true
	}
	trial := ""
	if len(want) == 1 {
		for id := range want {
			trial = id
		}
	}
	format := cmp.Or(q.Get("format"), "jsonl")
	write, ok := historyWriters[format]
	if !ok && format != "json" && format != "columns" {
		return badField("format", "unknown format %q; want jsonl, json, csv, parquet or columns", format)
	}
	if format == "columns" && points == 0 {
		// The stored chunks as they are, one a line: the bulk path.
		w.Header().Set("Content-Type", "application/x-ndjson")
		bw := bufio.NewWriterSize(w, 1<<20)
		err := bus.HistoryChunks(r.Context(), s.js, study, trial, func(c *bus.Curve, raw []byte) error {
			if len(want) > 0 && !want[c.Trial] {
				return nil
			}
			if raw == nil {
				raw = bus.Encode(c)
			}
			_, _ = bw.Write(raw)
			return bw.WriteByte('\n')
		})
		if err != nil {
			s.log.Debug("history response cut short", "error", err)
			return nil
		}
		_ = bw.Flush()
		return nil
	}
	var rows []HistoryRow
	err = bus.History(r.Context(), s.js, study, trial, func(m *bus.MetricsReport) error {
		if len(want) > 0 && !want[m.Trial] {
			return nil
		}
		rows = append(rows, export.ReportOf(m))
		return nil
	})
	if err != nil {
		return err
	}
	if points > 0 {
		rows = downsample(rows, points)
	}
	if format == "json" {
		writeJSON(w, http.StatusOK, map[string]any{"history": rows})
		return nil
	}
	if format == "columns" { // downsampled: one chunk an attempt
		w.Header().Set("Content-Type", "application/x-ndjson")
		bw := bufio.NewWriterSize(w, 1<<16)
		for _, c := range chunks(study, rows) {
			_, _ = bw.Write(bus.Encode(c))
			_ = bw.WriteByte('\n')
		}
		_ = bw.Flush()
		return nil
	}
	w.Header().Set("Content-Type", contentTypes[format])
	bw := bufio.NewWriterSize(w, 1<<16)
	if err := write(bw, rows); err != nil {
		s.log.Debug("history response cut short", "error", err)
		return nil
	}
	_ = bw.Flush()
	return nil
}

// downsample keeps at most n rows of each (trial, attempt), evenly spaced,
// the first and the last always among them.
func downsample(rows []HistoryRow, n int) []HistoryRow {
	type key struct {
		trial   string
		attempt int
	}
	groups := map[key][]int{}
	var order []key
	for i, r := range rows {
		k := key{r.Trial, r.Attempt}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	var out []HistoryRow
	for _, k := range order {
		idx := groups[k]
		if len(idx) <= n {
			for _, i := range idx {
				out = append(out, rows[i])
			}
			continue
		}
		last := -1
		for j := range n {
			p := 0
			if n > 1 {
				p = int(math.Round(float64(j) * float64(len(idx)-1) / float64(n-1)))
			}
			if p != last {
				out = append(out, rows[idx[p]])
				last = p
			}
		}
	}
	return out
}

// AgentsReply lists the agents: with Live set, the leader's view (what
// runs and waits on each, what is free); without, the records in etcd,
// because no leader answered.
type AgentsReply struct {
	Live   bool             `json:"live"`
	Leader string           `json:"leader,omitempty"`
	Agents []api.NodeStatus `json:"agents"`
	Note   string           `json:"note,omitempty"`
}

// agents returns the agents and their slots.
func (s *Server) agents(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if c, err := s.leader(r.Context(), 2*time.Second); err != nil {
		return err
	} else if st, err := c.Status(ctx, ""); err == nil {
		reply := AgentsReply{Live: true, Leader: st.Leader, Agents: st.Nodes}
		if reply.Agents == nil {
			reply.Agents = []api.NodeStatus{}
		}
		writeJSON(w, http.StatusOK, reply)
		return nil
	}
	reply := AgentsReply{Agents: []api.NodeStatus{}, Note: "no leader answered; these are the agents' records in etcd, without what runs on them"}
	err := s.store.Nodes(r.Context(), func(v store.Versioned[api.Node]) error {
		reply.Agents = append(reply.Agents, api.NodeStatus{Node: v.Value})
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, reply)
	return nil
}

// chunks groups rows by (trial, attempt), in order, as curve chunks.
func chunks(study string, rows []HistoryRow) []*bus.Curve {
	var out []*bus.Curve
	var b *bus.CurveBuilder
	var cur bus.AttemptRef
	for i, r := range rows {
		ref := bus.AttemptRef{Study: study, Trial: r.Trial, Attempt: r.Attempt}
		if b == nil || ref != cur {
			if b != nil {
				out = append(out, b.Finish())
			}
			b, cur = bus.NewCurveBuilder(ref), ref
		}
		if c := b.Add(&bus.MetricsReport{AttemptRef: ref, Seq: int64(i + 1), Step: r.Step, Time: r.Time, Values: r.Values, NonFinite: r.NonFinite}); c != nil {
			out = append(out, c)
		}
	}
	if b != nil {
		if c := b.Finish(); c.Len() > 0 {
			out = append(out, c)
		}
	}
	return out
}

// fit fits the study's analysis plan to its results now; law=, x= and
// group= override or stand in for the plan.
func (s *Server) fit(w http.ResponseWriter, r *http.Request) error {
	st, err := s.loadStudy(r.Context(), r.PathValue("study"))
	if err != nil {
		return err
	}
	spec, err := sweep.Parse(st.SpecFile, []byte(st.Spec))
	if err != nil {
		return fmt.Errorf("the study's stored spec no longer parses: %w", err)
	}
	q := r.URL.Query()
	if spec.Analysis == nil || spec.Analysis.Fit == nil {
		if q.Get("law") == "" {
			return badField("law", "study %q has no analysis plan; pass law= (power, chinchilla, datablations, ensemble) and x=", st.Name)
		}
		spec.Analysis = &sweep.Analysis{Fit: &sweep.FitPlan{Law: "power", X: "params", Bootstrap: 200}}
	}
	plan := *spec.Analysis.Fit
	if v := q.Get("law"); v != "" {
		plan.Law = v
	}
	if v := q.Get("x"); v != "" {
		plan.X = v
	}
	if v := q.Get("group"); v != "" {
		plan.Group = v
	}
	if b := q.Get("bootstrap"); b != "" {
		n, err := intParam(q, "bootstrap", 0)
		if err != nil {
			return err
		}
		plan.Bootstrap = n
	}
	spec.Analysis = &sweep.Analysis{Fit: &plan}
	trials, err := s.loadTrials(r.Context(), st.Name)
	if err != nil {
		return err
	}
	curve := q.Get("curve") == "1"
	if curve && plan.Law != "power" && plan.Law != "ensemble" {
		return badField("curve", "curves are drawn for one-dimensional laws (power, ensemble), not %s", plan.Law)
	}
	groups, err := analysis.RunGroups(r.Context(), spec, trials, st.Direction, analysis.Options{})
	if err != nil {
		return badField("law", "%v", err)
	}
	fits := make([]api.FitSummary, len(groups))
	for i, g := range groups {
		fits[i] = g.Summary
	}
	reply := map[string]any{"study": st.Name, "law": plan.Law, "x": plan.X, "group": plan.Group, "fits": fits}
	if curve {
		reply["curves"] = fitCurves(groups)
	}
	writeJSON(w, http.StatusOK, reply)
	return nil
}

// FitCurve is what a plot of one group's fit draws: the points fitted,
// and the fitted curve with its bootstrap band on a grid that extends
// past the data.
type FitCurve struct {
	Group  string    `json:"group"`
	PointX []float64 `json:"point_x"`
	PointY []float64 `json:"point_y"`
	Trials []string  `json:"trials"`
	X      []float64 `json:"x"`
	Y      []float64 `json:"y"`
	Lo     []float64 `json:"lo,omitempty"`
	Hi     []float64 `json:"hi,omitempty"`
	Error  string    `json:"error,omitempty"`
}

// fitCurves samples each group's fitted law (the fits the summaries came
// from) on a grid from half the smallest point to four times the largest.
func fitCurves(groups []analysis.Group) []FitCurve {
	out := make([]FitCurve, 0, len(groups))
	for _, g := range groups {
		c := FitCurve{Group: g.Summary.Group}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, p := range g.Points {
			c.PointX = append(c.PointX, p.Obs.X)
			c.PointY = append(c.PointY, p.Obs.Loss)
			c.Trials = append(c.Trials, p.Trial.ID)
			lo, hi = min(lo, p.Obs.X), max(hi, p.Obs.X)
		}
		switch {
		case g.Fit == nil:
			c.Error = cmp.Or(g.Summary.Error, "no fit")
		case !(lo > 0):
			c.Error = "no positive points to draw"
		default:
			const n = 60
			a, b := math.Log(lo/2), math.Log(hi*4)
			band := g.Fit.Bootstrap != nil && !g.Fit.Bootstrap.NotIdentified
			for i := range n {
				x := math.Exp(a + (b-a)*float64(i)/(n-1))
				pr := g.Fit.PredictInterval(scaling.Obs{X: x})
				c.X, c.Y = append(c.X, x), append(c.Y, finiteOr(pr.Value))
				if band {
					c.Lo, c.Hi = append(c.Lo, finiteOr(pr.Mean.Lo)), append(c.Hi, finiteOr(pr.Mean.Hi))
				}
			}
		}
		out = append(out, c)
	}
	return out
}

func finiteOr(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// events streams the study as server-sent events: "study" with the study
// record and "trial" with each trial record as the leader writes it,
// starting with every current one (snapshot=0 skips those), until the
// client goes away.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	study := r.PathValue("study")
	if _, err := s.loadStudy(r.Context(), study); err != nil {
		return err
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		return errors.New("streaming unsupported by this connection")
	}
	ctx := r.Context()
	var rev int64
	noSnapshot := r.URL.Query().Get("snapshot") == "0"
	if noSnapshot {
		// The client loads the records in bulk itself (a large study):
		// only changes from now on. The starting point is fixed before
		// the response begins, so a client that loads once the stream is
		// open misses nothing.
		resp, err := s.cfg.Etcd.Get(ctx, store.StudyKey(study))
		if err != nil {
			return err
		}
		rev = resp.Header.Revision
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(kind string, v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", kind, b)
	}
	var err error
	if noSnapshot {
		fmt.Fprint(w, ": no snapshot\n\n")
	} else {
		rev, err = s.snapshot(ctx, study, send)
	}
	if err != nil {
		return nil // headers are out; the client sees the stream end
	}
	flusher.Flush()
	watch := s.cfg.Etcd.Watch(clientv3.WithRequireLeader(ctx), store.TrialPrefix+study+"/", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	studyWatch := s.cfg.Etcd.Watch(clientv3.WithRequireLeader(ctx), store.StudyKey(study), clientv3.WithRev(rev+1))
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		case resp, ok := <-watch:
			if !ok {
				return nil
			}
			for _, ev := range resp.Events {
				var t api.Trial
				if ev.Type == clientv3.EventTypePut && json.Unmarshal(ev.Kv.Value, &t) == nil {
					send("trial", t)
				}
			}
		case resp, ok := <-studyWatch:
			if !ok {
				return nil
			}
			for _, ev := range resp.Events {
				var st api.Study
				if ev.Type == clientv3.EventTypePut && json.Unmarshal(ev.Kv.Value, &st) == nil {
					st.Spec = ""
					send("study", st)
				}
			}
		}
		flusher.Flush()
	}
}

// snapshot sends the study and its trials as they are at one etcd
// revision, and returns it.
func (s *Server) snapshot(ctx context.Context, study string, send func(string, any)) (int64, error) {
	resp, err := s.cfg.Etcd.Get(ctx, store.StudyKey(study))
	if err != nil {
		return 0, err
	}
	rev := resp.Header.Revision
	if len(resp.Kvs) > 0 {
		var st api.Study
		if json.Unmarshal(resp.Kvs[0].Value, &st) == nil {
			st.Spec = ""
			send("study", st)
		}
	}
	trials, err := s.cfg.Etcd.Get(ctx, store.TrialPrefix+study+"/", clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return 0, err
	}
	for _, kv := range trials.Kvs {
		var t api.Trial
		if json.Unmarshal(kv.Value, &t) == nil {
			send("trial", t)
		}
	}
	return rev, nil
}

// OpenAPI returns the API's OpenAPI document.
func OpenAPI() []byte { return slices.Clone(openapi) }

// Routes returns the served (method, path) pairs, for checking the
// OpenAPI document.
func Routes() [][2]string {
	out := make([][2]string, len(routes))
	for i, r := range routes {
		out[i] = [2]string{r.method, r.path}
	}
	return out
}
