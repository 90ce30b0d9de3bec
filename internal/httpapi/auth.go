package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
)

// Tokens are the bearer tokens a coordinator's HTTP API accepts, loaded
// from a file of lines "NAME ROLE SHA256 [TEAM]" (the SHA-256 of the
// token in hex; '#' starts a comment) that 'asymptote secure init' writes
// as http-tokens. The file holds no secret: each identity's token is in
// its own NAME.http-token file. A role of viewer may read; submitter and
// operator may also submit. A viewer or submitter sees and submits only
// its team's studies (the default team when TEAM is left out); the
// operator sees every team's. The file is read again when it changes, so a
// rotated or revoked token stops working within a second, without a
// restart.
type Tokens struct {
	path string

	mu      sync.Mutex
	checked time.Time
	mod     time.Time
	size    int64
	byHash  map[[sha256.Size]byte]tokenEntry
	loadErr error
}

type tokenEntry struct{ name, role, team string }

// The roles a token may have.
const (
	roleViewer    = "viewer"
	roleSubmitter = "submitter"
	roleOperator  = "operator"
)

// LoadTokens reads the token file at path.
func LoadTokens(path string) (*Tokens, error) {
	t := &Tokens{path: path}
	if err := t.reload(time.Now()); err != nil {
		return nil, err
	}
	return t, nil
}

// parseTokens parses a token file.
func parseTokens(path string, data []byte) (map[[sha256.Size]byte]tokenEntry, error) {
	out := map[[sha256.Size]byte]tokenEntry{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 && len(f) != 4 {
			return nil, fmt.Errorf("%s:%d: want NAME ROLE SHA256 [TEAM] (the SHA-256 of the token in hex), got %d fields", path, n, len(f))
		}
		switch f[1] {
		case roleViewer, roleSubmitter, roleOperator:
		default:
			return nil, fmt.Errorf("%s:%d: role %q, want viewer, submitter or operator", path, n, f[1])
		}
		b, err := hex.DecodeString(f[2])
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("%s:%d: %q is not a SHA-256 in hex (64 characters)", path, n, f[2])
		}
		team := bus.DefaultTeam
		if f[1] == roleOperator {
			team = bus.AllTeams
		}
		if len(f) == 4 {
			switch {
			case f[1] == roleOperator && f[3] != bus.AllTeams:
				return nil, fmt.Errorf("%s:%d: team %q: the operator sees every team; leave the team out or write %s", path, n, f[3], bus.AllTeams)
			case f[1] != roleOperator:
				if err := bus.ValidTeam(f[3]); err != nil {
					return nil, fmt.Errorf("%s:%d: team: %w", path, n, err)
				}
			}
			team = f[3]
		}
		if err := bus.ValidToken(f[0]); err != nil {
			return nil, fmt.Errorf("%s:%d: name: %w", path, n, err)
		}
		out[[sha256.Size]byte(b)] = tokenEntry{name: f[0], role: f[1], team: team}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// reload reads the file again when it changed since the last look, at
// most once a second. While the file is missing or does not parse, no
// token is accepted, and lookups report why.
func (t *Tokens) reload(now time.Time) error {
	if t.byHash != nil && now.Sub(t.checked) < time.Second {
		return t.loadErr
	}
	t.checked = now
	fi, err := os.Stat(t.path)
	if err == nil && t.byHash != nil && t.loadErr == nil && fi.ModTime().Equal(t.mod) && fi.Size() == t.size {
		return t.loadErr
	}
	var data []byte
	if err == nil {
		data, err = os.ReadFile(t.path)
	}
	var m map[[sha256.Size]byte]tokenEntry
	if err == nil {
		m, err = parseTokens(t.path, data)
	}
	if err != nil {
		// Fail closed: a token revoked by rewriting the file must not
		// outlive a bad edit of it.
		t.byHash, t.loadErr = map[[sha256.Size]byte]tokenEntry{}, fmt.Errorf("HTTP tokens: %w", err)
		return t.loadErr
	}
	t.byHash, t.mod, t.size, t.loadErr = m, fi.ModTime(), fi.Size(), nil
	return nil
}

// lookup returns the entry of token, if the file lists it.
func (t *Tokens) lookup(token string, now time.Time) (tokenEntry, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.reload(now)
	e, ok := t.byHash[sha256.Sum256([]byte(token))]
	return e, ok, err
}

// tokenCookie carries the dashboard's token: the page's own requests
// (fetch, server-sent events) send it without any code of the page.
const tokenCookie = "asymptote_token"

// authenticate wraps h: a request without a listed token gets 401, a
// viewer's write 403, each with what to do. Opening a dashboard page with
// ?token=TOKEN stores the token in a cookie and reloads the page without
// it, so the token does not stay in the address bar or the history.
func (s *Server) authenticate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query().Get("token"); q != "" && r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api/") {
			if _, ok, _ := s.cfg.Tokens.lookup(q, time.Now()); ok {
				http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: q, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
				u := *r.URL
				v := u.Query()
				v.Del("token")
				u.RawQuery = v.Encode()
				http.Redirect(w, r, (&url.URL{Path: u.Path, RawQuery: u.RawQuery}).String(), http.StatusSeeOther)
				return
			}
		}
		token := ""
		if a := r.Header.Get("Authorization"); a != "" {
			scheme, rest, _ := strings.Cut(a, " ")
			if !strings.EqualFold(scheme, "Bearer") {
				s.fail(w, r, &Error{Status: http.StatusUnauthorized, Field: "authorization", Msg: "the Authorization header must be 'Bearer TOKEN'"})
				return
			}
			token = strings.TrimSpace(rest)
		} else if c, err := r.Cookie(tokenCookie); err == nil {
			token = c.Value
		}
		e, ok, err := s.cfg.Tokens.lookup(token, time.Now())
		if err != nil {
			s.log.Error("the HTTP token file does not load; no token is accepted until it does", "error", err)
		}
		if token == "" || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="asymptote"`)
			msg := "this coordinator's HTTP API needs a token: send 'Authorization: Bearer TOKEN' with the contents of a NAME.http-token file that 'asymptote secure init' wrote (the Python client reads $ASYMPTOTE_TOKEN), or open the dashboard once at /?token=TOKEN"
			if token != "" {
				msg = "the token is not one this coordinator accepts (rotated or revoked?); " + msg
			}
			s.fail(w, r, &Error{Status: http.StatusUnauthorized, Field: "authorization", Msg: msg})
			return
		}
		if e.role == roleViewer && r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.fail(w, r, &Error{Status: http.StatusForbidden, Field: "authorization", Msg: fmt.Sprintf("%s is a viewer: it may read, not %s; use a submitter's token", e.name, r.Method)})
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, bus.Caller{Team: e.team, Identity: e.name})))
	})
}

// callerKey is the context key of the request's caller, which
// authenticate sets from its token.
type callerKey struct{}

// callerOf returns the caller of a request: its token's team and name,
// or no team (every study) on a coordinator without tokens.
func callerOf(ctx context.Context) bus.Caller {
	c, _ := ctx.Value(callerKey{}).(bus.Caller)
	return c
}

// canSee reports whether c may see study st: the operator and an open
// API see every team's, a team's identity its team's only (a study
// recorded before teams is the default team's).
func canSee(c bus.Caller, st api.Study) bool {
	if !c.Scoped() {
		return true
	}
	team := st.Team
	if team == "" {
		team = bus.DefaultTeam
	}
	return team == c.Team
}
