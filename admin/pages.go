package admin

// The web pages: the admin dashboard and the "your sessions" page, from
// files embedded in the module (ui/), served with a strict
// Content-Security-Policy. The pages are static apart from a few template
// values (where the API and the assets are); they fetch everything else
// from the JSON API.

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

//go:embed ui
var uiFiles embed.FS

// pageCSP lets a page load its own scripts, styles and data and nothing
// else: no inline script or style, no frames, no foreign origin.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// assetTypes are the files of ui/ that are served, by extension.
var assetTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
	".png": "image/png",
}

// securityHeaders go on every page, asset and API answer.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
}

var templates = sync.OnceValues(func() (*template.Template, error) {
	return template.ParseFS(uiFiles, "ui/*.html")
})

// dashboardPage is what dashboard.html is rendered with.
type dashboardPage struct {
	Title, API, Assets string
}

// selfPage is what self.html is rendered with.
type selfPage struct {
	Title, API, Assets, BackURL, BackLabel string
}

// renderPage writes the template name with data as an HTML page.
func renderPage(w http.ResponseWriter, name string, data any) error {
	t, err := templates()
	if err != nil {
		return apiErr(http.StatusInternalServerError, "pages unavailable: %v", err)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		return apiErr(http.StatusInternalServerError, "rendering %s: %v", name, err)
	}
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(buf.Bytes())
	return err
}

// asset is one embedded file, with its validator.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

var assets = sync.OnceValue(func() map[string]asset {
	out := map[string]asset{}
	_ = fs.WalkDir(uiFiles, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := assetTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		b, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[path.Base(p)] = asset{body: b, contentType: ct, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	return out
})

// serveAsset writes the embedded file name (a base name: no directory);
// an unknown name is a 404.
func serveAsset(w http.ResponseWriter, r *http.Request, name string) error {
	a, ok := assets()[name]
	if !ok || strings.ContainsAny(name, "/\\") {
		return apiErr(http.StatusNotFound, "no such file %q", name)
	}
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", a.etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	_, err := w.Write(a.body)
	return err
}

// wantsHTML reports whether r is a browser navigation asking for a page:
// text/html preferred to JSON in Accept. API clients that send no Accept,
// or */*, keep getting JSON.
func wantsHTML(r *http.Request) bool {
	best, bestQ := "", -1.0
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			q = f
		}
		if (mt == "text/html" || mt == "application/json") && q > bestQ {
			best, bestQ = mt, q
		}
	}
	return best == "text/html" && bestQ > 0
}
