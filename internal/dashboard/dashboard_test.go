package dashboard_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"asymptote.dev/asymptote/internal/dashboard"
)

// TestRevalidate checks that every file the dashboard serves carries an
// ETag and asks to be checked on each use, and that a browser holding the
// file gets a 304 without the body, while one holding another version
// gets the file.
func TestRevalidate(t *testing.T) {
	ts := httptest.NewServer(dashboard.Handler())
	t.Cleanup(ts.Close)
	get := func(path, tag string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		if tag != "" {
			req.Header.Set("If-None-Match", tag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	tags := map[string]bool{}
	for _, path := range []string{"/", "/static/app.js", "/static/vendor/plotly.min.js", "/static/vendor/tabulator.min.js"} {
		first := get(path, "")
		tag := first.Header.Get("ETag")
		if first.StatusCode != 200 || tag == "" || first.Header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("%s: status %d, ETag %q, Cache-Control %q; want 200, a tag and no-cache", path, first.StatusCode, tag, first.Header.Get("Cache-Control"))
		}
		if tags[tag] {
			t.Errorf("%s: ETag %s shared with another file", path, tag)
		}
		tags[tag] = true
		if again := get(path, tag); again.StatusCode != http.StatusNotModified {
			t.Errorf("%s with If-None-Match its ETag: status %d, want 304", path, again.StatusCode)
		}
		if other := get(path, `"another-version"`); other.StatusCode != 200 {
			t.Errorf("%s with another ETag: status %d, want 200", path, other.StatusCode)
		}
	}
}
