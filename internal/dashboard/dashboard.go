// Package dashboard is the web dashboard: static files (index.html,
// app.js, app.css and the vendored Plotly and Tabulator in static/vendor)
// embedded in the binary and served beside the HTTP API, which they read.
// There is no build step: app.js is plain JavaScript, and vendor.sh copies
// the libraries at the versions package-lock.json pins.
package dashboard

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Handler serves the dashboard: index.html at /, the rest under /static/.
// Every file carries an ETag, the hash of its content, and asks to be
// checked again on each use (no-cache): a browser that holds the file
// gets a 304 and keeps the scripts it compiled, instead of fetching and
// compiling 5 MB again, and a new binary's files are never mixed with an
// old one's.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	tags := etags(sub)
	files := http.FileServer(http.FS(sub))
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		validate(w, tags[strings.TrimPrefix(r.URL.Path, "/")])
		files.ServeHTTP(w, r)
	})))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		validate(w, tags["index.html"])
		http.ServeFileFS(w, r, sub, "index.html")
	})
	return mux
}

// validate sets the headers that let a browser keep a file and check it.
// http.ServeContent answers If-None-Match from the ETag.
func validate(w http.ResponseWriter, tag string) {
	w.Header().Set("Cache-Control", "no-cache")
	if tag != "" {
		w.Header().Set("ETag", tag)
	}
}

// etags returns each file's ETag by its path: the start of the SHA-256 of
// its content.
func etags(fsys fs.FS) map[string]string {
	tags := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		tags[path] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	if err != nil {
		panic(err) // the embedded tree is readable
	}
	return tags
}
