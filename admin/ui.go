package admin

import (
	"embed"
	"io/fs"
	"net/http"
)

// /ui: a page that draws the federation from /api/v1/mesh (admin/ui/:
// plain HTML, CSS and JavaScript in the binary, no build step, nothing
// loaded from elsewhere). The page's files carry no data and are served
// without the token; the page sends the token of its URL (?token=) as
// a bearer token on its requests to /api/v1/mesh (docs/ADMIN.md).

//go:embed ui
var uiFiles embed.FS

// uiPolicy keeps the page to its own files and the API.
const uiPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// uiHandler serves /ui/ (index.html, mesh.js, mesh.css); /ui redirects
// there so that the page's relative URLs resolve.
func uiHandler() http.Handler {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil { // cannot happen: the embedded tree is fixed at build time
		return http.NotFoundHandler()
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ui" {
			u := *r.URL
			u.Path = "/ui/"
			http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", uiPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer") // the page's URL may hold the token
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// isUIPath reports whether path is one of the page's files (served
// without the token).
func isUIPath(path string) bool {
	return path == "/ui" || path == "/ui/" || path == "/ui/index.html" || path == "/ui/mesh.js" || path == "/ui/mesh.css"
}
