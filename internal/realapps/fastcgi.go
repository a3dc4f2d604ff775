package realapps

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A minimal FastCGI client, enough to check that a PHP app served by
// php-fpm answers (startup readiness) and to let tests talk HTTP to it
// without Caddy: fcgiHandler maps requests to scripts the way Caddy's
// php_fastcgi does (split at ".php", index.php for directories, front
// controller fallback, static files served directly).

const (
	fcgiVersion      = 1
	fcgiBeginRequest = 1
	fcgiEndRequest   = 3
	fcgiParams       = 4
	fcgiStdin        = 5
	fcgiStdout       = 6
	fcgiStderr       = 7
	fcgiResponder    = 1
	fcgiMaxContent   = 65535
)

func fcgiWriteRecord(w io.Writer, typ uint8, content []byte) error {
	for {
		n := len(content)
		if n > fcgiMaxContent {
			n = fcgiMaxContent
		}
		pad := (8 - n%8) % 8
		hdr := [8]byte{fcgiVersion, typ, 0, 1, byte(n >> 8), byte(n), byte(pad), 0}
		if _, err := w.Write(hdr[:]); err != nil {
			return err
		}
		if _, err := w.Write(content[:n]); err != nil {
			return err
		}
		if pad > 0 {
			if _, err := w.Write(make([]byte, pad)); err != nil {
				return err
			}
		}
		content = content[n:]
		if len(content) == 0 {
			return nil
		}
	}
}

func fcgiPairLen(b *bytes.Buffer, n int) {
	if n < 128 {
		b.WriteByte(byte(n))
		return
	}
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(n)|1<<31)
	b.Write(l[:])
}

// fcgiDo sends one request to the FastCGI responder at addr and returns the
// raw CGI answer (headers and body) and what the script wrote to stderr.
func fcgiDo(ctx context.Context, addr string, params map[string]string, body []byte) (stdout, stderr []byte, err error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	w := bufio.NewWriter(conn)
	begin := []byte{0, fcgiResponder, 0, 0, 0, 0, 0, 0} // role, flags=0: close after
	if err := fcgiWriteRecord(w, fcgiBeginRequest, begin); err != nil {
		return nil, nil, err
	}
	var pb bytes.Buffer
	for k, v := range params {
		fcgiPairLen(&pb, len(k))
		fcgiPairLen(&pb, len(v))
		pb.WriteString(k)
		pb.WriteString(v)
	}
	if pb.Len() > 0 {
		if err := fcgiWriteRecord(w, fcgiParams, pb.Bytes()); err != nil {
			return nil, nil, err
		}
	}
	if err := fcgiWriteRecord(w, fcgiParams, nil); err != nil {
		return nil, nil, err
	}
	if len(body) > 0 {
		if err := fcgiWriteRecord(w, fcgiStdin, body); err != nil {
			return nil, nil, err
		}
	}
	if err := fcgiWriteRecord(w, fcgiStdin, nil); err != nil {
		return nil, nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, nil, err
	}

	r := bufio.NewReader(conn)
	var out, errOut bytes.Buffer
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return out.Bytes(), errOut.Bytes(), fmt.Errorf("reading FastCGI record: %w", err)
		}
		n := int(binary.BigEndian.Uint16(hdr[4:6]))
		content := make([]byte, n+int(hdr[6]))
		if _, err := io.ReadFull(r, content); err != nil {
			return out.Bytes(), errOut.Bytes(), fmt.Errorf("reading FastCGI record: %w", err)
		}
		switch hdr[1] {
		case fcgiStdout:
			out.Write(content[:n])
		case fcgiStderr:
			errOut.Write(content[:n])
		case fcgiEndRequest:
			return out.Bytes(), errOut.Bytes(), nil
		}
	}
}

// parseCGI turns a CGI answer into status, header and body.
func parseCGI(raw []byte) (int, http.Header, []byte, error) {
	br := bufio.NewReader(bytes.NewReader(raw))
	mh, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, nil, nil, fmt.Errorf("parsing CGI headers: %w", err)
	}
	h := http.Header(mh)
	status := http.StatusOK
	if s := h.Get("Status"); s != "" {
		code, _, _ := strings.Cut(s, " ")
		if status, err = strconv.Atoi(code); err != nil {
			return 0, nil, nil, fmt.Errorf("bad CGI Status %q", s)
		}
		h.Del("Status")
	} else if h.Get("Location") != "" {
		status = http.StatusFound
	}
	body, _ := io.ReadAll(br)
	return status, h, body, nil
}

// fcgiHandler serves HTTP by forwarding to php-fpm at Addr with document
// root Root, like Caddy's `root * Root` + `php_fastcgi Addr`.
type fcgiHandler struct {
	Addr string
	Root string
}

func (f *fcgiHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	upath := r.URL.Path
	if !strings.HasPrefix(upath, "/") {
		upath = "/" + upath
	}
	upath = path.Clean(upath)
	if strings.HasSuffix(r.URL.Path, "/") && upath != "/" {
		upath += "/"
	}
	script, pathInfo := "", ""
	if i := strings.Index(strings.ToLower(upath), ".php"); i >= 0 {
		script, pathInfo = upath[:i+4], upath[i+4:]
	} else {
		fsPath := filepath.Join(f.Root, filepath.FromSlash(upath))
		fi, err := os.Stat(fsPath)
		switch {
		case err == nil && fi.IsDir():
			if _, err := os.Stat(filepath.Join(fsPath, "index.php")); err == nil {
				if !strings.HasSuffix(upath, "/") { // Caddy's canonical redirect
					target := upath + "/"
					if r.URL.RawQuery != "" {
						target += "?" + r.URL.RawQuery
					}
					http.Redirect(w, r, target, http.StatusPermanentRedirect)
					return
				}
				script = strings.TrimSuffix(upath, "/") + "/index.php"
			}
		case err == nil:
			http.ServeFile(w, r, fsPath)
			return
		}
		if script == "" {
			script = "/index.php" // front controller, like try_files ... index.php
		}
	}
	if _, err := os.Stat(filepath.Join(f.Root, filepath.FromSlash(script))); err != nil {
		http.NotFound(w, r)
		return
	}
	var body []byte
	var err error
	if r.Body != nil {
		body, err = io.ReadAll(r.Body)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, "80"
	}
	remoteIP, remotePort, _ := net.SplitHostPort(r.RemoteAddr)
	reqURI := r.RequestURI
	if reqURI == "" {
		reqURI = r.URL.RequestURI()
	}
	p := map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1",
		"SERVER_SOFTWARE":   "realapps-fcgi",
		"SERVER_PROTOCOL":   r.Proto,
		"REQUEST_METHOD":    r.Method,
		"REQUEST_SCHEME":    "http",
		"REQUEST_URI":       reqURI,
		"QUERY_STRING":      r.URL.RawQuery,
		"DOCUMENT_ROOT":     f.Root,
		"DOCUMENT_URI":      script,
		"SCRIPT_NAME":       script,
		"SCRIPT_FILENAME":   filepath.Join(f.Root, filepath.FromSlash(script)),
		"PATH_INFO":         pathInfo,
		"SERVER_NAME":       host,
		"SERVER_PORT":       port,
		"REMOTE_ADDR":       remoteIP,
		"REMOTE_PORT":       remotePort,
		"CONTENT_TYPE":      r.Header.Get("Content-Type"),
		"CONTENT_LENGTH":    strconv.Itoa(len(body)),
		"HTTP_HOST":         r.Host,
	}
	if r.TLS != nil {
		p["HTTPS"] = "on"
		p["REQUEST_SCHEME"] = "https"
	}
	for k, vs := range r.Header {
		if k == "Proxy" { // httpoxy
			continue
		}
		p["HTTP_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_"))] = strings.Join(vs, ", ")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	raw, stderr, err := fcgiDo(ctx, f.Addr, p, body)
	if err != nil {
		http.Error(w, fmt.Sprintf("FastCGI: %v\n%s", err, stderr), http.StatusBadGateway)
		return
	}
	status, h, respBody, err := parseCGI(raw)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, vs := range h {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(respBody)))
	w.WriteHeader(status)
	_, _ = w.Write(respBody)
}

// fcgiGet performs GET target (path?query) against the PHP app with the
// given Host and returns status, header and body. Used for readiness.
func fcgiGet(addr, root, host, target string) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+host+target, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	req.RemoteAddr = "127.0.0.1:1"
	rec := &recorder{header: http.Header{}}
	(&fcgiHandler{Addr: addr, Root: root}).ServeHTTP(rec, req)
	return rec.status, rec.header, rec.body.Bytes(), nil
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
