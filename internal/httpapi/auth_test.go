package httpapi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/httpapi"
)

func tokenLine(name, role, token string) string {
	sum := sha256.Sum256([]byte(token))
	return fmt.Sprintf("%s %s %s\n", name, role, hex.EncodeToString(sum[:]))
}

// TestTokens serves the API with tokens: no token, a wrong one or a
// malformed header gets 401 with what to do; a viewer reads but may not
// submit; a submitter submits; the dashboard's ?token= becomes a cookie
// the page's own requests carry; a rewritten file revokes a token without
// a restart, and a broken one accepts none.
func TestTokens(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	file := filepath.Join(t.TempDir(), "http-tokens")
	write := func(s string) {
		t.Helper()
		// A new mtime even within the file system's granularity.
		if err := os.WriteFile(file+".new", []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".new", file); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Duration(len(s)) * time.Second)
		if err := os.Chtimes(file, later, later); err != nil {
			t.Fatal(err)
		}
	}
	write("# NAME ROLE SHA256\n" + tokenLine("viewer", "viewer", "v-secret") + tokenLine("submitter", "submitter", "s-secret"))
	tokens, err := httpapi.LoadTokens(file)
	if err != nil {
		t.Fatal(err)
	}
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "page") })
	srv, err := httpapi.New(httpapi.Config{Etcd: cl.Etcd, NATS: cl.Conn("http"), Tokens: tokens, UI: ui})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path, auth string, cookie *http.Cookie) *http.Response {
		t.Helper()
		var body *strings.Reader
		if method == http.MethodPost {
			body = strings.NewReader(spec)
		} else {
			body = strings.NewReader("")
		}
		req, err := http.NewRequest(method, ts.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	want := func(resp *http.Response, status int, says string) {
		t.Helper()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != status {
			t.Fatalf("%s %s: status %d, want %d (%s)", resp.Request.Method, resp.Request.URL, resp.StatusCode, status, body)
		}
		if !strings.Contains(string(body), says) {
			t.Errorf("%s %s: body %q, want it to say %q", resp.Request.Method, resp.Request.URL, body, says)
		}
	}
	want(do("GET", "/api/v1/studies", "", nil), http.StatusUnauthorized, "Bearer")
	want(do("GET", "/api/v1/studies", "Bearer nope", nil), http.StatusUnauthorized, "rotated or revoked")
	want(do("GET", "/api/v1/studies", "Basic dXNlcg==", nil), http.StatusUnauthorized, "Bearer TOKEN")
	want(do("GET", "/", "", nil), http.StatusUnauthorized, "?token=")
	want(do("GET", "/api/v1/studies", "Bearer v-secret", nil), http.StatusOK, "")
	want(do("POST", "/api/v1/studies", "Bearer v-secret", nil), http.StatusForbidden, "viewer")
	want(do("POST", "/api/v1/studies", "Bearer s-secret", nil), http.StatusOK, "")

	// The dashboard: ?token= sets the cookie and reloads without it.
	resp := do("GET", "/study/web?token=v-secret&x=1", "", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/study/web?x=1" {
		t.Fatalf("?token=: status %d location %q, want 303 to /study/web?x=1", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "asymptote_token" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie = %+v, want an HttpOnly, SameSite=Strict asymptote_token", cookie)
	}
	want(do("GET", "/study/web", "", cookie), http.StatusOK, "page")
	want(do("GET", "/api/v1/studies/web", "", cookie), http.StatusOK, "")
	// A wrong ?token= sets nothing.
	want(do("GET", "/?token=nope", "", nil), http.StatusUnauthorized, "")

	// Rewriting the file revokes the viewer's token within a second.
	write(tokenLine("submitter", "submitter", "s-secret"))
	clustertest.WaitFor(t, 5*time.Second, func() error {
		if r := do("GET", "/api/v1/studies", "Bearer v-secret", nil); r.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("revoked token: status %d", r.StatusCode)
		}
		return nil
	})
	want(do("GET", "/api/v1/studies", "Bearer s-secret", nil), http.StatusOK, "")
	// A broken file accepts no token at all.
	write("submitter submitter not-a-hash\n")
	clustertest.WaitFor(t, 5*time.Second, func() error {
		if r := do("GET", "/api/v1/studies", "Bearer s-secret", nil); r.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("broken file: status %d", r.StatusCode)
		}
		return nil
	})
}

// TestTokenFileErrors names the line and the fix of a bad token file.
func TestTokenFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, content, want string }{
		{"fields", "viewer viewer\n", ":1: want NAME ROLE SHA256"},
		{"role", "# x\nroot admin " + strings.Repeat("a", 64) + "\n", ":2: role \"admin\""},
		{"hash", "viewer viewer abc\n", "not a SHA-256"},
		{"missing", "", "no such file"},
	} {
		path := filepath.Join(dir, c.name)
		if c.name != "missing" {
			if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := httpapi.LoadTokens(path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to say %q", c.name, err, c.want)
		}
	}
}

// TestTokenTeams: a team's token sees and reaches only its team's
// studies (another team's is answered as a missing one, on every
// endpoint of a study), a submission through it belongs to its team, and
// the operator's token sees every team's.
func TestTokenTeams(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	file := filepath.Join(t.TempDir(), "http-tokens")
	lines := tokenLine("operator", "operator", "o-secret") +
		strings.TrimSuffix(tokenLine("submitter-a", "submitter", "sa-secret"), "\n") + " a\n" +
		strings.TrimSuffix(tokenLine("viewer-a", "viewer", "va-secret"), "\n") + " a\n" +
		strings.TrimSuffix(tokenLine("viewer-b", "viewer", "vb-secret"), "\n") + " b\n"
	if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := httpapi.LoadTokens(file)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := httpapi.New(httpapi.Config{Etcd: cl.Etcd, NATS: cl.Conn("http"), Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	do := func(method, path, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(spec))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	clustertest.WaitFor(t, 20*time.Second, func() error {
		if code, body := do("POST", "/api/v1/studies", "sa-secret"); code != http.StatusOK {
			return fmt.Errorf("submitter-a submits: %d %s", code, body)
		}
		return nil
	})
	if code, body := do("GET", "/api/v1/studies/web", "operator"); code != http.StatusUnauthorized {
		t.Errorf("a wrong token: %d %s", code, body)
	}
	code, body := do("GET", "/api/v1/studies/web", "o-secret")
	if code != http.StatusOK || !strings.Contains(body, `"team":"a"`) {
		t.Errorf("the operator reads web: %d %s, want it of team a", code, body)
	}
	for _, tt := range []struct {
		token string
		sees  bool
	}{{"va-secret", true}, {"vb-secret", false}, {"o-secret", true}} {
		_, list := do("GET", "/api/v1/studies", tt.token)
		if strings.Contains(list, `"name":"web"`) != tt.sees {
			t.Errorf("%s lists %s; want web listed: %v", tt.token, list, tt.sees)
		}
		for _, path := range []string{"/api/v1/studies/web", "/api/v1/studies/web/trials", "/api/v1/studies/web/history", "/api/v1/studies/web/trials/x", "/api/v1/crossover?study=web&lo=1e6&hi=1e9"} {
			code, body := do("GET", path, tt.token)
			if hidden := code == http.StatusNotFound && strings.Contains(body, `no study \"web\"`); hidden == tt.sees {
				t.Errorf("%s GET %s: %d %s; want web hidden: %v", tt.token, path, code, body, !tt.sees)
			}
		}
	}
}
