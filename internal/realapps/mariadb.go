package realapps

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// mariaDB is a private mariadbd on its own data directory, TCP port
// (127.0.0.1 only) and unix socket.
type mariaDB struct {
	Addr    string
	Socket  string
	logPath string
	proc    *proc
}

// mariadbArgs are the server options shared by mariadb-install-db and
// mariadbd: small and fast, since the data is thrown away.
func mariadbArgs() []string {
	a := []string{
		"--no-defaults", // never read /etc/mysql: no system datadir, socket or port 3306
		"--innodb-buffer-pool-size=32M",
		"--innodb-log-file-size=8M",
		"--innodb-flush-log-at-trx-commit=2",
		"--innodb-doublewrite=0",
		"--skip-name-resolve",
		"--skip-log-bin",
		"--performance-schema=OFF",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_unicode_ci",
	}
	if isRoot() {
		a = append(a, "--user=root")
	}
	return a
}

// initMariaDB creates a fresh data directory with mariadb-install-db.
func initMariaDB(datadir, logPath string) error {
	bin, err := lookBin("mariadb-install-db", "/usr/bin/mariadb-install-db", "mysql_install_db")
	if err != nil {
		return err
	}
	args := append(mariadbArgs(), "--datadir="+datadir,
		"--auth-root-authentication-method=normal", "--skip-test-db")
	return runLogged(logPath, filepath.Dir(datadir), baseEnv(), 2*time.Minute, bin, args...)
}

// startMariaDB runs mariadbd on datadir. Its socket lives in a short
// private temp dir, its log in logDir. It is killed by tb.Cleanup unless
// stop was called first; stop shuts it down cleanly (for caching a datadir).
func startMariaDB(tb testing.TB, datadir, logDir string) (*mariaDB, error) {
	tb.Helper()
	sockDir := shortDir(tb, "realapps-my-")
	m := &mariaDB{Socket: filepath.Join(sockDir, "mysqld.sock"), logPath: filepath.Join(logDir, "mariadb.log")}
	bin, err := lookBin("/usr/sbin/mariadbd", "/usr/sbin/mysqld", "mariadbd", "mysqld")
	if err != nil {
		return m, err
	}
	for attempt := 1; ; attempt++ {
		port := freePort(tb)
		m.Addr = loopback(port)
		args := append(mariadbArgs(),
			"--datadir="+datadir,
			"--port="+strconv.Itoa(port),
			"--bind-address=127.0.0.1",
			"--socket="+m.Socket,
			"--pid-file="+filepath.Join(sockDir, "mysqld.pid"),
			"--tmpdir="+sockDir,
			"--max-connections=100",
		)
		p, err := startProc("mariadbd", datadir, m.logPath, baseEnv(), bin, args...)
		if err != nil {
			return m, err
		}
		m.proc = p
		err = p.waitReady(30*time.Second, func() error { return mysqlGreeting(m.Addr) })
		if err == nil {
			tb.Cleanup(func() { p.stop(syscall.SIGKILL, 0) })
			return m, nil
		}
		p.stop(syscall.SIGKILL, 0)
		if attempt < 3 && addrInUse(m.logPath) {
			continue
		}
		return m, err
	}
}

// shutdown stops the server cleanly (SIGTERM), so its datadir can be kept.
func (m *mariaDB) shutdown() error {
	m.proc.stop(syscall.SIGTERM, 60*time.Second)
	if st := m.proc.cmd.ProcessState; st == nil || !st.Success() {
		return fmt.Errorf("mariadbd did not shut down cleanly (%v)", st)
	}
	return nil
}

// mysqlGreeting checks that a MySQL protocol handshake (protocol 10) is
// offered at addr, i.e. the server accepts connections.
func mysqlGreeting(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 250*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return err
	}
	if hdr[4] != 10 {
		return fmt.Errorf("unexpected MySQL greeting byte %#x", hdr[4])
	}
	return nil
}

// copyDatadir copies a cached (shut-down) datadir for one test.
func copyDatadir(src, dst string) error {
	if err := copyTree(src, dst); err != nil {
		return err
	}
	// A crash-free copy has no stale pid or socket; make sure.
	_ = os.Remove(filepath.Join(dst, "mysqld.pid"))
	return nil
}
