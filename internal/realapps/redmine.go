package realapps

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const redmineRoot = "/usr/share/redmine"

// redmineGemfile wraps Debian's Gemfile so that the SQLite adapter and the
// WEBrick server are part of the bundle whatever the system's own instances
// are configured with (Debian's Gemfile adds adapter gems only for the
// database.yml files it finds under /etc/redmine). The lock file is written
// next to it, in our cache, never into /var/lib/redmine.
const redmineGemfile = `# Written by internal/realapps (caddy-sessions tests).
eval_gemfile '/usr/share/redmine/Gemfile'
gem 'sqlite3', '~> 1.4.0' unless dependencies.any? { |d| d.name == 'sqlite3' }
gem 'webrick' unless dependencies.any? { |d| d.name == 'webrick' }
`

// redmineSetup runs in "rails runner" once per cache build: Redmine's
// default configuration data (roles, trackers, statuses) and the users.
const redmineSetup = `# Written by internal/realapps (caddy-sessions tests).
Redmine::DefaultData::Loader.load('en') if Redmine::DefaultData::Loader.no_data?
users = JSON.parse(ENV.fetch('REALAPPS_REDMINE_USERS'))
users.each do |login, password|
  u = User.find_by_login(login) || User.new
  u.login = login
  u.firstname = login.capitalize
  u.lastname = 'Test'
  u.mail = "#{login}@example.test"
  u.password = password
  u.password_confirmation = password
  u.status = User::STATUS_ACTIVE
  u.language = 'en'
  u.save!
end
puts "users: #{User.where(type: 'User').pluck(:login).sort.join(', ')}"
`

// redmineUsers: Redmine wants passwords of at least 8 characters.
var redmineUsers = map[string]string{
	"alice": "alice-password",
	"bob":   "bob-password",
	"carol": "carol-password",
}

// Redmine starts Debian's Redmine (Rails, SQLite) served by WEBrick
// through rackup on a free 127.0.0.1 port, with Redmine's default data and
// the users alice, bob and carol (no administrators). Caddy reaches it with
// reverse_proxy app.Upstream.
//
// It runs as a private Redmine "instance" (Debian's multi-tenancy): config,
// database, logs, tmp and files live under t.TempDir(). Debian's
// multi-tenancy also renames the session cookie to "Redmine" (path /,
// HttpOnly), see the tests.
func Redmine(t testing.TB) *App {
	t.Helper()
	start := time.Now()
	if _, err := os.Stat(filepath.Join(redmineRoot, "config.ru")); err != nil {
		t.Fatalf("realapps: Redmine: %v; %s", err, installHint)
	}
	ruby, err := lookBin("ruby")
	if err != nil {
		t.Fatalf("realapps: Redmine: %v", err)
	}
	rackup, err := lookBin("rackup")
	if err != nil {
		t.Fatalf("realapps: Redmine: %v", err)
	}
	key := cacheKey([]string{
		ruby, redmineRoot + "/Gemfile", redmineRoot + "/lib/redmine/version.rb", redmineRoot + "/db/migrate",
		"/var/lib/redmine/Gemfile.lock",
	}, redmineGemfile, redmineSetup, fmt.Sprint(redmineUsers))
	var buildLogs []string
	cache, hit, err := cached("redmine", key, func(dir string) error {
		buildLogs = []string{filepath.Join(dir, "build.log"), filepath.Join(dir, "instance", "log", "production.log")}
		return buildRedmine(dir)
	})
	if err != nil {
		fatalf(t, buildLogs, "Redmine: preparing the cached database: %v", err)
	}
	cachedAt := time.Since(start)

	dir := t.TempDir()
	inst := filepath.Join(dir, "instance")
	if err := redmineInstance(inst, filepath.Join(cache, "redmine.sqlite3")); err != nil {
		t.Fatalf("realapps: Redmine: %v", err)
	}
	env, err := redmineEnv(cache, inst)
	if err != nil {
		t.Fatalf("realapps: Redmine: %v", err)
	}
	outLog := filepath.Join(dir, "redmine.log")
	railsLog := filepath.Join(inst, "log", "production.log")
	for attempt := 1; ; attempt++ {
		addr := loopback(freePort(t))
		_, port, _ := strings.Cut(addr, ":")
		p, err := startProc("redmine", redmineRoot, outLog, env, rackup,
			"-E", "production", "-s", "webrick", "-o", "127.0.0.1", "-p", port, filepath.Join(redmineRoot, "config.ru"))
		if err != nil {
			t.Fatalf("realapps: Redmine: %v", err)
		}
		err = p.waitReady(90*time.Second, func() error { return httpOK("http://" + addr + "/login") })
		if err != nil {
			p.stop(syscall.SIGKILL, 0)
			if attempt < 3 && addrInUse(outLog) {
				continue
			}
			fatalf(t, []string{outLog, railsLog}, "Redmine not ready: %v", err)
		}
		t.Cleanup(func() { p.stop(syscall.SIGTERM, 5*time.Second) })
		if _, err := os.Stat(railsLog); err != nil {
			fatalf(t, []string{outLog}, "Redmine is not using its private instance %s: %v", inst, err)
		}
		users := map[string]string{}
		for k, v := range redmineUsers {
			users[k] = v
		}
		t.Logf("realapps: Redmine ready in %v (cache %s in %v): %s, instance %s",
			time.Since(start).Round(time.Millisecond), hitWord(hit), cachedAt.Round(time.Millisecond), addr, inst)
		return &App{Name: "redmine", Upstream: addr, Users: users}
	}
}

// redmineInstance lays out a private instance directory like Debian's
// redmine-instances does, with its own database.yml and secret key; db is
// copied in when not empty.
func redmineInstance(inst, db string) error {
	for _, d := range []string{"config", "log", "tmp", "files", "public/plugin_assets", "db"} {
		if err := os.MkdirAll(filepath.Join(inst, d), 0o755); err != nil {
			return err
		}
	}
	dbFile := filepath.Join(inst, "db", "redmine.sqlite3")
	if db != "" {
		if err := copyFile(db, dbFile); err != nil {
			return err
		}
	}
	yml := fmt.Sprintf("production:\n  adapter: sqlite3\n  database: %s\n  pool: 10\n  timeout: 5000\n", strconv.Quote(dbFile))
	if err := writeFile(filepath.Join(inst, "config", "database.yml"), yml, 0o600); err != nil {
		return err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	return writeFile(filepath.Join(inst, "config", "secret_key.txt"), hex.EncodeToString(secret)+"\n", 0o600)
}

// redmineEnv is the environment that makes Debian's Redmine use the
// instance directory inst and our bundle in cache.
//
// Debian's Redmine resolves an instance as
// File.join(Rails.root, "instances", $REDMINE_INSTANCE), and
// /usr/share/redmine/instances is a symlink to /var/lib/redmine. The value
// climbs to "/" with enough ".." that the path is the same whether Ruby
// cleans it lexically (File.expand_path) or the kernel follows the
// symlink, then descends to inst. So no file is written under
// /var/lib/redmine or /etc/redmine.
func redmineEnv(cache, inst string) ([]string, error) {
	abs, err := filepath.Abs(inst)
	if err != nil {
		return nil, err
	}
	tenant := strings.Repeat("../", 16) + strings.TrimPrefix(abs, "/")
	viaLink := filepath.Join(redmineRoot, "instances") + "/" + tenant
	if filepath.Clean(viaLink) != abs {
		return nil, fmt.Errorf("instance path %s does not clean to %s", viaLink, abs)
	}
	if _, err := os.Stat(filepath.Join(viaLink, "config", "database.yml")); err != nil {
		return nil, fmt.Errorf("instance path through %s/instances does not reach %s: %w", redmineRoot, abs, err)
	}
	home := filepath.Join(filepath.Dir(abs), "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	return baseEnv(
		"RAILS_ENV=production",
		"RACK_ENV=production",
		"REDMINE_INSTANCE="+tenant,
		"BUNDLE_GEMFILE="+filepath.Join(cache, "bundle", "Gemfile"),
		"BUNDLE_APP_CONFIG="+filepath.Join(cache, "bundle", ".bundle"),
		"BUNDLE_USER_HOME="+home,
		"HOME="+home,
		"LANG=C.UTF-8",
	), nil
}

// buildRedmine writes dir/bundle (Gemfile and lock) and dir/redmine.sqlite3
// (migrated, default data, users).
func buildRedmine(dir string) error {
	buildLog := filepath.Join(dir, "build.log")
	bundleDir := filepath.Join(dir, "bundle")
	if err := writeFile(filepath.Join(bundleDir, "Gemfile"), redmineGemfile, 0o644); err != nil {
		return err
	}
	bundle, err := lookBin("bundle")
	if err != nil {
		return err
	}
	ruby, err := lookBin("ruby")
	if err != nil {
		return err
	}
	inst := filepath.Join(dir, "instance")
	if err := redmineInstance(inst, ""); err != nil {
		return err
	}
	// The build happens in the directory that is renamed into place later,
	// so point the bundle at this directory for now.
	env, err := redmineEnv(dir, inst)
	if err != nil {
		return err
	}
	if err := runLogged(buildLog, redmineRoot, env, 2*time.Minute, bundle, "lock", "--local"); err != nil {
		return fmt.Errorf("bundle lock --local (are all of Redmine's gems installed from Debian packages?): %w", err)
	}
	if err := runLogged(buildLog, redmineRoot, env, 5*time.Minute, ruby, "bin/rake", "db:migrate"); err != nil {
		return fmt.Errorf("rake db:migrate: %w", err)
	}
	setup := filepath.Join(dir, "setup.rb")
	if err := writeFile(setup, redmineSetup, 0o644); err != nil {
		return err
	}
	usersEnv := "REALAPPS_REDMINE_USERS={"
	first := true
	for _, login := range []string{"alice", "bob", "carol"} {
		if !first {
			usersEnv += ","
		}
		first = false
		usersEnv += strconv.Quote(login) + ":" + strconv.Quote(redmineUsers[login])
	}
	usersEnv += "}"
	if err := runLogged(buildLog, redmineRoot, append(env, usersEnv), 5*time.Minute, ruby, "bin/rails", "runner", setup); err != nil {
		return fmt.Errorf("rails runner (default data, users): %w", err)
	}
	if err := os.Rename(filepath.Join(inst, "db", "redmine.sqlite3"), filepath.Join(dir, "redmine.sqlite3")); err != nil {
		return err
	}
	_ = os.Remove(setup)
	return os.RemoveAll(inst)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func httpOK(url string) error {
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
