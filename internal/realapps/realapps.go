// Package realapps starts real web applications from Debian's packages for
// end-to-end tests that put them behind Caddy:
//
//   - WordPress (package wordpress) on PHP-FPM with its own MariaDB server,
//   - Redmine (package redmine, SQLite) served by WEBrick through rackup,
//   - a tiny PHP app (phpapp/) on PHP-FPM that calls session_start() on
//     every request.
//
// The package owns every process and file it starts or writes: each app runs
// on free 127.0.0.1 ports with private configuration, logs and data under
// t.TempDir() (MariaDB with its own --datadir, socket and port; php-fpm with
// its own config, pid file and error log; Redmine with its own instance
// directory, database.yml and secret key), and all of it is stopped by
// t.Cleanup. System services, system data directories (/var/lib/mysql,
// /var/lib/redmine, /etc/wordpress ...) and port 3306 are never used.
//
// What can be prepared once is cached between runs under
// os.UserCacheDir()/caddy-sessions-apps (override with
// $CADDY_SESSIONS_APPS_CACHE): an installed WordPress site (a copy of
// /usr/share/wordpress with this package's wp-config.php plus a shut-down
// MariaDB data directory holding the installed site and its users) and a
// migrated Redmine SQLite database with default data and users, each keyed
// by the package versions and this package's recipes. Tests copy the
// databases into their own temp dirs; the WordPress document root is shared
// read-only. A cache entry is rebuilt when its key changes; to force a
// rebuild (e.g. after tampering), delete the directory.
//
// The Debian packages come from scripts/install-apps.sh. A missing package
// or an app that does not come up fails the test with the app's log; it is
// never a skip.
package realapps

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// App is one running application.
type App struct {
	Name string
	// Upstream is how Caddy reaches it: for HTTP apps "127.0.0.1:port"
	// (reverse_proxy); for PHP apps served through php-fpm, the FastCGI
	// address "127.0.0.1:port" and Root the document root, so Caddy uses
	// php_fastcgi with root.
	Upstream string
	FastCGI  bool
	Root     string
	Users    map[string]string // login name -> password of users created for the tests (at least alice, bob, carol)
}

const (
	installHint  = "run: bash scripts/install-apps.sh"
	logTailBytes = 6000
	cacheEnv     = "CADDY_SESSIONS_APPS_CACHE"
	// recipeVersion invalidates every cached artefact when the way they
	// are built changes in a way the embedded files do not show.
	recipeVersion = "1"
)

// fatalf fails the test with the tails of the given log files.
func fatalf(tb testing.TB, logs []string, format string, args ...any) {
	tb.Helper()
	tb.Fatalf("realapps: "+format+"%s", append(args, logTails(logs...))...)
}

// logTails returns the last logTailBytes of each existing file.
func logTails(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		if p == "" {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(&b, "\n--- %s: %v", p, err)
			}
			continue
		}
		if len(data) > logTailBytes {
			data = append([]byte("..."), data[len(data)-logTailBytes:]...)
		}
		fmt.Fprintf(&b, "\n--- %s ---\n%s", p, bytes.TrimRight(data, "\n"))
	}
	return b.String()
}

// ---------------------------------------------------------------- processes

// proc is a started server process in its own process group.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	mu      sync.Mutex
	stopped bool
}

// startProc starts bin with args, stdout and stderr appended to logPath.
// The process gets its own process group (so stop also reaches children
// such as php-fpm workers) and SIGKILL when the test binary dies.
func startProc(name, dir, logPath string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own copy
	fmt.Fprintf(logf, "### realapps: %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group (php-fpm and mariadbd fork workers), killed with
	// the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := redistest.StartProcess(cmd); err != nil {
		return nil, fmt.Errorf("exec %s: %w", bin, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends sig to the process group, waits up to grace for the leader to
// exit, then SIGKILLs the group. Safe to call repeatedly.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	pid := p.cmd.Process.Pid
	if p.running() {
		_ = syscall.Kill(-pid, sig)
		select {
		case <-p.exited:
		case <-time.After(grace):
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // leftovers in the group
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
	}
}

// waitReady polls check until it returns nil, the process exits or the
// timeout passes.
func (p *proc) waitReady(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited during startup (%v)", p.name, p.cmd.ProcessState)
		default:
		}
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %v: %v", p.name, timeout, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// addrInUse tells whether a failed start was a port conflict worth a retry
// with another port.
func addrInUse(logPath string) bool {
	b, _ := os.ReadFile(logPath)
	s := string(b)
	return strings.Contains(s, "Address already in use") || strings.Contains(s, "EADDRINUSE") ||
		strings.Contains(s, "Do you already have another server running on port")
}

// freePort returns a 127.0.0.1 port that was free a moment ago and that no
// other helper of this test binary (including internal/redistest) got.
func freePort(tb testing.TB) int {
	tb.Helper()
	return redistest.FreePort(tb)
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func dialOK(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 250*time.Millisecond)
	if err != nil {
		return err
	}
	return c.Close()
}

// baseEnv is the environment for child processes: the test's own minus
// anything that could point an app at other configuration.
func baseEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "BUNDLE_"), strings.HasPrefix(k, "RAILS_"), strings.HasPrefix(k, "RACK_"),
			strings.HasPrefix(k, "REDMINE_"), k == "X_DEBIAN_SITEID", strings.HasPrefix(k, "GEM_"),
			k == "RUBYOPT", k == "RUBYLIB", strings.HasPrefix(k, "PHP_INI"), k == "PHPRC",
			strings.HasPrefix(k, "MYSQL"), strings.HasPrefix(k, "MARIADB"), k == "DATABASE_URL":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// lookBin returns the first existing executable among candidates (absolute
// paths or names looked up on PATH).
func lookBin(candidates ...string) (string, error) {
	for _, c := range candidates {
		if strings.Contains(c, "*") {
			matches, _ := filepath.Glob(c)
			sort.Sort(sort.Reverse(sort.StringSlice(matches))) // newest version first
			for _, m := range matches {
				if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
					return m, nil
				}
			}
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("none of %s found; %s", strings.Join(candidates, ", "), installHint)
}

func isRoot() bool { return os.Geteuid() == 0 }

// runLogged runs a command to completion with output appended to logPath.
func runLogged(logPath, dir string, env []string, timeout time.Duration, bin string, args ...string) error {
	p, err := startProc(filepath.Base(bin), dir, logPath, env, bin, args...)
	if err != nil {
		return err
	}
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.stop(syscall.SIGKILL, 0)
		return fmt.Errorf("%s %s: timed out after %v", bin, strings.Join(args, " "), timeout)
	}
	if st := p.cmd.ProcessState; !st.Success() {
		return fmt.Errorf("%s %s: %v", bin, strings.Join(args, " "), st)
	}
	return nil
}

// copyTree copies src to dst (which must not exist) preserving modes and
// symlinks, using cp -a (reflinks where the filesystem has them).
func copyTree(src, dst string) error {
	out, err := exec.Command("cp", "-a", "--reflink=auto", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
	return nil
}

func writeFile(path, content string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), mode)
}

// shortDir returns a directory for unix sockets (sun_path is limited to 108
// bytes, and t.TempDir() paths of long test names exceed it).
func shortDir(tb testing.TB, prefix string) string {
	tb.Helper()
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		tb.Fatalf("realapps: %v", err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// -------------------------------------------------------------------- cache

// cacheRoot is where prepared artefacts are kept between runs.
func cacheRoot() (string, error) {
	if d := os.Getenv(cacheEnv); d != "" {
		return d, os.MkdirAll(d, 0o755)
	}
	base, err := os.UserCacheDir()
	if err != nil || base == "" {
		base = filepath.Join(os.TempDir(), "caddy-sessions-apps-"+strconv.Itoa(os.Getuid()))
	} else {
		base = filepath.Join(base, "caddy-sessions-apps")
	}
	return base, os.MkdirAll(base, 0o755)
}

// cacheKey hashes what a cached artefact depends on: file identities
// (path, size, mtime) and literal strings such as embedded recipes.
func cacheKey(files []string, literals ...string) string {
	h := sha256.New()
	io.WriteString(h, recipeVersion+"\x00")
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(h, "%s %d %d\x00", f, fi.Size(), fi.ModTime().UnixNano())
		} else {
			fmt.Fprintf(h, "%s missing\x00", f)
		}
	}
	for _, l := range literals {
		fmt.Fprintf(h, "%d:%s\x00", len(l), l)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// cached returns dir/name-key, building it with build(tmpDir) under an
// exclusive lock when it does not exist yet. build writes into a fresh
// directory that is renamed into place only on success, so concurrent test
// binaries never see a half-built cache. Other versions of name are pruned.
func cached(name, key string, build func(dir string) error) (string, bool, error) {
	root, err := cacheRoot()
	if err != nil {
		return "", false, fmt.Errorf("cache dir: %w", err)
	}
	final := filepath.Join(root, name+"-"+key)
	ready := func() bool {
		_, err := os.Stat(filepath.Join(final, ".complete"))
		return err == nil
	}
	if ready() {
		return final, true, nil
	}
	lf, err := os.OpenFile(filepath.Join(root, name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", false, err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return "", false, fmt.Errorf("lock %s: %w", lf.Name(), err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if ready() {
		return final, true, nil
	}
	old, _ := filepath.Glob(filepath.Join(root, name+"-*"))
	for _, o := range old {
		_ = os.RemoveAll(o) // older versions, failed builds
	}
	tmp := filepath.Join(root, name+"-"+key+".building")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", false, err
	}
	if err := build(tmp); err != nil {
		// Keep the failed build for inspection until the next attempt.
		return "", false, err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return "", false, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", false, err
	}
	return final, false, nil
}
