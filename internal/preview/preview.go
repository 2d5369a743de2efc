// Package preview serves the preview sites that edit containers publish.
//
// The worker publishes a thread's built site into
// {root}/{clientId}/{projectId}/{threadId}/ (root is
// $HERMES_DATA_DIR/previews), and Hermes serves it at
// /preview/{clientId}/{projectId}/{threadId}/, the link hermes.PreviewURL
// gives when the project has no preview template of its own.
//
// The route is public: the thread id (128 random bits) is the unguessable
// part of the URL, like the token of an approval page. Files are opened
// through an os.Root on the thread's directory, so that no request path, and
// no symbolic link inside a published site, reaches a file outside it.
package preview

import (
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/webordinary/hermes"
)

// Messages of the 404 answers. An invalid id gets the same answer as a
// thread without a preview, so that the answer never tells which part of
// the URL was wrong.
const (
	msgNoPreview = "no preview has been published for this thread yet"
	msgNoFile    = "no such file in this preview"
)

// ContentSecurityPolicy is sent with every preview response.
//
// Previews are user content (whatever the agent built) served from the
// Hermes origin. The sandbox directive gives each preview document an
// opaque origin of its own: its scripts cannot read or set the Hermes
// origin's cookies or storage, cannot call the Hermes API as the Hermes
// origin with the visitor's credentials, and cannot script other Hermes
// pages (approval pages, other previews) in other windows or frames. The
// site still works as a site: scripts, forms and popups (target=_blank
// links) are allowed. allow-same-origin is deliberately absent (it would
// undo the sandbox), as are top navigation and modals.
const ContentSecurityPolicy = "sandbox allow-scripts allow-forms allow-popups"

// Dir serves published previews from Root, one directory per thread. It is
// an http.Handler for two mux patterns, whose path values it reads:
//
//	GET /preview/{clientId}/{projectId}/{threadId}           → 301 to the form with a slash
//	GET /preview/{clientId}/{projectId}/{threadId}/{path...} → the file (a directory: its index.html)
//
// HEAD is served like GET. Every 404 is an RFC 9457 problem
// (application/problem+json).
type Dir struct {
	Root string       // the previews directory; it need not exist yet
	Log  *slog.Logger // failures to read a preview (nil: not logged)
}

// New returns a Dir serving the previews under root.
func New(root string, log *slog.Logger) *Dir { return &Dir{Root: root, Log: log} }

// ServeHTTP serves one file of a thread's preview.
func (d *Dir) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	clientID, projectID, threadID := r.PathValue("clientId"), r.PathValue("projectId"), r.PathValue("threadId")
	if !hermes.ValidSlug(clientID) || !hermes.ValidSlug(projectID) || !hermes.ValidTokenID(threadID) {
		writeProblem(w, r, http.StatusNotFound, msgNoPreview)
		return
	}
	root, err := d.openThread(clientID, projectID, threadID)
	if err != nil {
		d.fail(w, r, err, msgNoPreview)
		return
	}
	defer root.Close()

	rest := r.PathValue("path")
	if rest == "" && !strings.HasSuffix(r.URL.Path, "/") {
		// /preview/c/p/t: relative links of the site resolve against the
		// directory only with the slash. The Location is relative so that
		// it holds under any base path.
		redirect(w, r, threadID)
		return
	}
	name, isDir, ok := fileName(rest)
	if !ok {
		writeProblem(w, r, http.StatusNotFound, msgNoFile)
		return
	}
	fi, err := root.Stat(name)
	if err != nil {
		d.fail(w, r, err, msgNoFile)
		return
	}
	switch {
	case fi.IsDir() && !isDir:
		redirect(w, r, path.Base(name))
		return
	case fi.IsDir():
		// A directory is served as its index.html, never as a listing.
		name = path.Join(name, "index.html")
		if fi, err = root.Stat(name); err != nil {
			d.fail(w, r, err, msgNoFile)
			return
		}
	case isDir:
		// A file named with a trailing slash (style.css/).
		writeProblem(w, r, http.StatusNotFound, msgNoFile)
		return
	}
	// Only regular files: opening a FIFO or a device would block or worse
	// (the Stat above followed any symbolic link, within the root).
	if !fi.Mode().IsRegular() {
		writeProblem(w, r, http.StatusNotFound, msgNoFile)
		return
	}
	f, err := root.Open(name)
	if err != nil {
		d.fail(w, r, err, msgNoFile)
		return
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil || !fi.Mode().IsRegular() {
		// Replaced between the Stat and the Open (a new publish).
		d.fail(w, r, errOr(err, fs.ErrNotExist), msgNoFile)
		return
	}

	h.Set("Content-Type", ContentType(name))
	// Previews change with every commit: browsers may keep a copy but must
	// revalidate it (cheap, with the ETag and Last-Modified below).
	h.Set("Cache-Control", "no-cache")
	// A sandboxed document has an opaque origin, so its module scripts,
	// web fonts and fetch() calls for the site's own files are cross-origin
	// requests, which fail without this header. It reveals nothing: a
	// preview is public to whoever has its URL, and is sent without
	// credentials.
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("ETag", etag(fi))
	http.ServeContent(w, r, name, fi.ModTime(), f) // Range, conditional requests, HEAD
}

// openThread opens the thread's directory as a root. It is opened through
// a root on the previews directory, so that the thread directory may be a
// relative symbolic link (a publisher swapping builds atomically) but only
// to a place inside the previews directory.
func (d *Dir) openThread(clientID, projectID, threadID string) (*os.Root, error) {
	previews, err := os.OpenRoot(d.Root)
	if err != nil {
		return nil, err
	}
	defer previews.Close()
	return previews.OpenRoot(filepath.Join(clientID, projectID, threadID))
}

// fileName turns the path below the thread's directory into a name for
// os.Root. isDir reports a trailing slash (and the empty path, the thread's
// own directory, named "."). ok is false unless the path is a plain
// relative path: no "." or ".." element, no empty element, not absolute,
// no NUL and no backslash. The mux has cleaned literal dot segments
// already; these come percent-encoded (%2e%2e, ..%2f).
func fileName(p string) (name string, isDir, ok bool) {
	if p == "" {
		return ".", true, true
	}
	if strings.ContainsAny(p, "\x00\\") {
		return "", false, false
	}
	name, isDir = strings.CutSuffix(p, "/")
	if name == "." || !fs.ValidPath(name) {
		return "", false, false
	}
	return name, isDir, true
}

// redirect answers 301 to the directory elem (the last element of the
// request's path) with a slash. The Location is relative to the request's
// URL, so that it holds under any base path, and starts with ./ so that an
// element such as "javascript:x" is never read as a scheme.
func redirect(w http.ResponseWriter, r *http.Request, elem string) {
	loc := "./" + url.PathEscape(elem) + "/"
	if r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	w.Header().Set("Location", loc)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusMovedPermanently)
}

// fail answers a failure to open or stat a file: 404 with msg when the
// name leads nowhere (missing, not a directory, a symbolic link leaving the
// root, a loop), 500 when the file is there but cannot be read.
func (d *Dir) fail(w http.ResponseWriter, r *http.Request, err error, msg string) {
	if errors.Is(err, fs.ErrPermission) {
		if d.Log != nil {
			d.Log.ErrorContext(r.Context(), "reading a preview", "path", r.URL.Path, "err", err)
		}
		writeProblem(w, r, http.StatusInternalServerError, "the preview could not be read")
		return
	}
	if d.Log != nil {
		d.Log.DebugContext(r.Context(), "preview file not served", "path", r.URL.Path, "err", err)
	}
	writeProblem(w, r, http.StatusNotFound, msg)
}

func errOr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// etag is a strong validator from the file's modification time and size
// (as nginx does): a new build rewrites the files it changes.
func etag(fi fs.FileInfo) string {
	return `"` + strconv.FormatInt(fi.ModTime().UnixNano(), 36) + "-" + strconv.FormatInt(fi.Size(), 36) + `"`
}

// contentTypes are the types of the files of a web site. They are fixed
// here rather than left to mime.TypeByExtension, whose answers depend on the
// host's MIME tables (a distroless image has none), so that a preview is
// served the same everywhere.
var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".webmanifest": "application/manifest+json",
	".xml":         "text/xml; charset=utf-8",
	".txt":         "text/plain; charset=utf-8",
	".md":          "text/markdown; charset=utf-8",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".webp":        "image/webp",
	".avif":        "image/avif",
	".ico":         "image/x-icon",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".ttf":         "font/ttf",
	".otf":         "font/otf",
	".wasm":        "application/wasm",
	".pdf":         "application/pdf",
	".mp4":         "video/mp4",
	".webm":        "video/webm",
	".mp3":         "audio/mpeg",
}

// ContentType is the type a preview file is served with: by its extension
// (case-insensitive), else application/octet-stream. Content is never
// sniffed (the server sends X-Content-Type-Options: nosniff).
func ContentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// problem is an RFC 9457 problem document, as the rest of the HTTP API
// writes them.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"requestId,omitempty"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{
		Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail,
		Instance: r.URL.Path, RequestID: h.Get("X-Request-Id"),
	})
}
