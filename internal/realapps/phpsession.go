package realapps

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

//go:embed phpapp/*.php
var phpApp embed.FS

// PHPSessionApp starts the PHP app in phpapp/ on a private php-fpm pool.
// Every request calls session_start() (strict mode, cookie PHPSESSID,
// path /, HttpOnly, SameSite=Lax), so an anonymous request already gets a
// session cookie. Pages:
//
//   - GET /: "logged in as X" or "anonymous", 200 either way; header
//     X-App-User: X when logged in (absent when anonymous) and
//     X-App-Session: the current session id;
//   - POST /login.php (form username, password): success =
//     session_regenerate_id(true) and 302 to /; failure = 200 with the form,
//     same session id;
//   - GET /logout.php: session_destroy, cookie expired, 302 to /;
//   - GET /elevate.php: logged in = session_regenerate_id(true) and 200
//     ("rotation on privilege change"); anonymous = 403.
//
// Users: alice/alice, bob/bob, carol/carol. Caddy serves it with
// `root * app.Root` and `php_fastcgi app.Upstream`.
func PHPSessionApp(t testing.TB) *App {
	t.Helper()
	start := time.Now()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	sub, err := fs.Sub(phpApp, "phpapp")
	if err != nil {
		t.Fatalf("realapps: %v", err)
	}
	if err := os.CopyFS(root, sub); err != nil {
		t.Fatalf("realapps: writing the PHP app: %v", err)
	}
	pool, err := startFPM(t, "phpsession", dir, nil, nil)
	if err != nil {
		fatalf(t, pool.logs, "PHP session app: starting php-fpm: %v", err)
	}
	var status int
	var body []byte
	err = pool.proc.waitReady(15*time.Second, func() error {
		status, _, body, err = fcgiGet(pool.Addr, root, "127.0.0.1", "/")
		if err != nil {
			return err
		}
		if status != 200 {
			return fmt.Errorf("GET /: %d", status)
		}
		return nil
	})
	if err != nil {
		fatalf(t, pool.logs, "PHP session app not ready: %v\nlast answer body:\n%.2000s", err, body)
	}
	t.Logf("realapps: PHP session app ready in %v: php-fpm %s, root %s", time.Since(start).Round(time.Millisecond), pool.Addr, root)
	return &App{
		Name:     "phpsession",
		Upstream: pool.Addr,
		FastCGI:  true,
		Root:     root,
		Users:    map[string]string{"alice": "alice", "bob": "bob", "carol": "carol"},
	}
}
