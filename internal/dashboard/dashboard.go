// Package dashboard is the web dashboard: static files (index.html,
// app.js, app.css and the vendored Plotly and Tabulator in static/vendor)
// embedded in the binary and served beside the HTTP API, which they read.
// There is no build step: app.js is plain JavaScript, and vendor.sh copies
// the libraries at the versions package-lock.json pins.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the dashboard: index.html at /, the rest under /static/.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	files := http.FileServer(http.FS(sub))
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, sub, "index.html")
	})
	return mux
}
