package realapps

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fpm is a private php-fpm master with one pool on a 127.0.0.1 port.
type fpm struct {
	Addr string
	dir  string
	proc *proc
	logs []string
}

// startFPM starts php-fpm with its own configuration, pid file and logs
// under dir. env is passed to the scripts (env[...]) and admin sets
// php_admin_value entries. It is stopped (gracefully, then killed) by
// tb.Cleanup.
func startFPM(tb testing.TB, name, dir string, env, admin map[string]string) (*fpm, error) {
	tb.Helper()
	f := &fpm{dir: dir}
	fpmLog := filepath.Join(dir, "php-fpm.log")
	phpLog := filepath.Join(dir, "php-errors.log")
	outLog := filepath.Join(dir, "php-fpm.out")
	f.logs = []string{outLog, fpmLog, phpLog}
	bin, err := lookBin("/usr/sbin/php-fpm*", "php-fpm")
	if err != nil {
		return f, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "sessions"), 0o700); err != nil {
		return f, err
	}
	for attempt := 1; ; attempt++ {
		port := freePort(tb)
		f.Addr = loopback(port)
		var c strings.Builder
		fmt.Fprintf(&c, "; written by internal/realapps for %s\n", name)
		fmt.Fprintf(&c, "[global]\npid = %s\nerror_log = %s\nlog_level = notice\ndaemonize = no\n",
			filepath.Join(dir, "php-fpm.pid"), fpmLog)
		fmt.Fprintf(&c, "\n[%s]\nlisten = %s\nlisten.allowed_clients = 127.0.0.1\n", name, f.Addr)
		if isRoot() {
			// Workers must read the test's private (0700) directories.
			c.WriteString("user = root\ngroup = root\n")
		}
		c.WriteString("pm = static\npm.max_children = 4\n")
		c.WriteString("catch_workers_output = yes\ndecorate_workers_output = no\nclear_env = yes\n")
		c.WriteString("request_terminate_timeout = 120s\n")
		c.WriteString("env[PATH] = /usr/local/bin:/usr/bin:/bin\n")
		for _, k := range sortedKeys(env) {
			fmt.Fprintf(&c, "env[%s] = %s\n", k, env[k])
		}
		adminAll := map[string]string{
			"error_log":                   phpLog,
			"log_errors":                  "On",
			"display_errors":              "Off",
			"session.save_path":           filepath.Join(dir, "sessions"),
			"sys_temp_dir":                dir,
			"upload_tmp_dir":              dir,
			"opcache.enable":              "1",
			"opcache.validate_timestamps": "1",
		}
		for k, v := range admin {
			adminAll[k] = v
		}
		for _, k := range sortedKeys(adminAll) {
			fmt.Fprintf(&c, "php_admin_value[%s] = %s\n", k, adminAll[k])
		}
		conf := filepath.Join(dir, "php-fpm.conf")
		if err := os.WriteFile(conf, []byte(c.String()), 0o644); err != nil {
			return f, err
		}
		args := []string{"--nodaemonize", "--fpm-config", conf}
		if isRoot() {
			args = append(args, "--allow-to-run-as-root")
		}
		p, err := startProc("php-fpm", dir, outLog, baseEnv(), bin, args...)
		if err != nil {
			return f, err
		}
		f.proc = p
		err = p.waitReady(15*time.Second, func() error { return dialOK(f.Addr) })
		if err == nil {
			tb.Cleanup(func() { p.stop(syscall.SIGQUIT, 3*time.Second) })
			return f, nil
		}
		p.stop(syscall.SIGKILL, 0)
		if attempt < 3 && (addrInUse(outLog) || addrInUse(fpmLog)) {
			continue
		}
		return f, err
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
