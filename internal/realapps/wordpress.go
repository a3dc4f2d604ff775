package realapps

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

//go:embed wpfiles/wp-config.php
var wpConfigPHP string

//go:embed wpfiles/install.php
var wpInstallPHP string

const wpSource = "/usr/share/wordpress"

// wpUsers are created by the installer: login -> password, role.
var wpUsers = []struct{ login, password, role string }{
	{"alice", "alice-password", "administrator"},
	{"bob", "bob-password", "editor"},
	{"carol", "carol-password", "subscriber"},
}

// WordPress starts Debian's WordPress on a private php-fpm pool and a
// private MariaDB, with the site installed and the users alice
// (administrator), bob (editor) and carol (subscriber). Caddy serves it with
// `root * app.Root` and `php_fastcgi app.Upstream`. Home and site URL
// follow the request's Host header, so the cookie names' hash is
// md5("http://" + Host) (see the tests for the exact cookies).
func WordPress(t testing.TB) *App {
	t.Helper()
	start := time.Now()
	for _, f := range []string{wpSource + "/wp-login.php", wpSource + "/wp-includes/version.php"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("realapps: WordPress: %v; %s", err, installHint)
		}
	}
	mariadbd, err := lookBin("/usr/sbin/mariadbd", "/usr/sbin/mysqld")
	if err != nil {
		t.Fatalf("realapps: WordPress: %v", err)
	}
	usersJSON := wpUsersJSON()
	key := cacheKey([]string{wpSource + "/wp-includes/version.php", mariadbd},
		wpConfigPHP, wpInstallPHP, usersJSON, strings.Join(mariadbArgs(), " "))
	var buildLogs []string
	cache, hit, err := cached("wordpress", key, func(dir string) error {
		buildLogs = []string{filepath.Join(dir, "build.log"), filepath.Join(dir, "mariadb.log")}
		return buildWordPress(t, dir, usersJSON)
	})
	if err != nil {
		fatalf(t, buildLogs, "WordPress: preparing the cached site: %v", err)
	}
	cachedAt := time.Since(start)

	dir := t.TempDir()
	datadir := filepath.Join(dir, "db")
	if err := copyDatadir(filepath.Join(cache, "db"), datadir); err != nil {
		t.Fatalf("realapps: WordPress: %v", err)
	}
	db, err := startMariaDB(t, datadir, dir)
	if err != nil {
		fatalf(t, []string{filepath.Join(dir, "mariadb.log")}, "WordPress: starting MariaDB: %v", err)
	}
	root := filepath.Join(cache, "root")
	pool, err := startFPM(t, "wordpress", dir, map[string]string{"REALAPPS_WP_DB_HOST": db.Addr}, nil)
	if err != nil {
		fatalf(t, append(pool.logs, db.logPath), "WordPress: starting php-fpm: %v", err)
	}
	// Ready when the login page renders (PHP, WordPress and the database).
	var status int
	var body []byte
	err = pool.proc.waitReady(30*time.Second, func() error {
		status, _, body, err = fcgiGet(pool.Addr, root, "127.0.0.1", "/wp-login.php")
		if err != nil {
			return err
		}
		if status != 200 || !bytes.Contains(body, []byte(`id="loginform"`)) {
			return fmt.Errorf("GET /wp-login.php: %d", status)
		}
		return nil
	})
	if err != nil {
		fatalf(t, append(pool.logs, db.logPath), "WordPress not ready: %v\nlast answer body:\n%.2000s", err, body)
	}
	users := map[string]string{}
	for _, u := range wpUsers {
		users[u.login] = u.password
	}
	t.Logf("realapps: WordPress ready in %v (cache %s in %v): php-fpm %s, root %s, MariaDB %s",
		time.Since(start).Round(time.Millisecond), hitWord(hit), cachedAt.Round(time.Millisecond), pool.Addr, root, db.Addr)
	return &App{Name: "wordpress", Upstream: pool.Addr, FastCGI: true, Root: root, Users: users}
}

func wpUsersJSON() string {
	m := map[string]map[string]string{}
	for _, u := range wpUsers {
		m[u.login] = map[string]string{"password": u.password, "role": u.role}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func hitWord(hit bool) string {
	if hit {
		return "hit"
	}
	return "built"
}

// buildWordPress prepares dir/root (a copy of /usr/share/wordpress with our
// wp-config.php) and dir/db (a shut-down MariaDB datadir with the installed
// site and users).
func buildWordPress(tb testing.TB, dir, usersJSON string) error {
	buildLog := filepath.Join(dir, "build.log")
	root := filepath.Join(dir, "root")
	// A copy, not symlinks: WordPress finds wp-config.php next to the real
	// path of wp-load.php, and Debian's own one reads /etc/wordpress.
	if err := copyTree(wpSource, root); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(root, ".htaccess")) // -> /etc/wordpress/htaccess; Apache only
	var salts strings.Builder
	for _, k := range []string{"AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
		"AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"} {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		fmt.Fprintf(&salts, "define('%s', '%s');\n", k, hex.EncodeToString(b))
	}
	cfg := strings.Replace(wpConfigPHP, "@@SALTS@@", salts.String(), 1)
	if err := os.WriteFile(filepath.Join(root, "wp-config.php"), []byte(cfg), 0o644); err != nil {
		return err
	}
	installer := filepath.Join(dir, "install.php")
	if err := os.WriteFile(installer, []byte(wpInstallPHP), 0o644); err != nil {
		return err
	}

	datadir := filepath.Join(dir, "db")
	if err := initMariaDB(datadir, buildLog); err != nil {
		return fmt.Errorf("mariadb-install-db: %w", err)
	}
	db, err := startMariaDB(tb, datadir, dir)
	if err != nil {
		return fmt.Errorf("starting MariaDB: %w", err)
	}
	php, err := lookBin("php", "/usr/bin/php")
	if err != nil {
		return err
	}
	err = runLogged(buildLog, dir, baseEnv("REALAPPS_WP_DB_HOST="+db.Addr, "REALAPPS_WP_USERS="+usersJSON),
		3*time.Minute, php, "-d", "display_errors=stderr", "-d", "memory_limit=256M", installer, root)
	if err != nil {
		_ = db.shutdown()
		return fmt.Errorf("installing WordPress: %w", err)
	}
	if err := db.shutdown(); err != nil {
		return err
	}
	return os.Remove(installer)
}
