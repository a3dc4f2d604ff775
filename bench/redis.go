package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddy-sessions/caddy-sessions/bench/internal/benchkit"
	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// benchOwn are commands the bench itself sends (stats, monitor, setup);
// they are left out of the per-request counts.
var benchOwn = map[string]bool{"info": true, "monitor": true, "command": true, "cluster|info": true, "ping": true}

// redisDelta is what Redis counted between two readings, the bench's own
// commands left out.
type redisDelta struct {
	calls map[string]int64 // commandstats calls
	errs  map[string]int64 // errorstats
	usec  map[string]int64 // commandstats usec
}

func delta(after, before redistest.Stats) redisDelta {
	return redisDelta{diffCounts(after.Calls, before.Calls), diffCounts(after.Errors, before.Errors), diffCounts(after.Usec, before.Usec)}
}

// diffCounts is after - before per key, leaving out keys that did not
// change and the bench's own commands.
func diffCounts(after, before map[string]int64) map[string]int64 {
	d := benchkit.Diff(after, before)
	for k := range benchOwn {
		delete(d, k)
	}
	return d
}

// cmdClass sorts commands into scripts, reads, writes and other, by the
// flags Redis itself gives them (COMMAND INFO).
type cmdClass map[string]string

func commandClasses(ctx context.Context, r *benchkit.Redis) cmdClass {
	c := cmdClass{}
	rdb := r.Client(1)
	defer rdb.Close()
	infos, err := rdb.Command(ctx).Result()
	if err != nil {
		return c
	}
	for name, ci := range infos {
		name = strings.ToLower(name)
		switch {
		case isScriptCmd(name):
			c[name] = "script"
		case slices.Contains(ci.Flags, "write"):
			c[name] = "write"
		case ci.ReadOnly || slices.Contains(ci.Flags, "readonly"):
			c[name] = "read"
		default:
			c[name] = "other"
		}
	}
	return c
}

func isScriptCmd(name string) bool {
	switch name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		return true
	}
	return false
}

func (c cmdClass) of(cmd string) string {
	if isScriptCmd(cmd) {
		return "script"
	}
	if k, ok := c[cmd]; ok {
		return k
	}
	if base, _, ok := strings.Cut(cmd, "|"); ok {
		if k, ok := c[base]; ok {
			return k
		}
	}
	return "other"
}

// ---------------------------------------------------------------------------
// MONITOR

// scriptNames maps the SHA1 of each of the module's Lua scripts (prelude +
// script, as tracker/redis.go builds them) to its name, so MONITOR lines
// can tell a request-path "seen" from a batched "touch".
func scriptNames(repo string) map[string]string {
	dir := filepath.Join(repo, "tracker", "redisstore", "lua")
	prelude, err := os.ReadFile(filepath.Join(dir, "prelude.lua"))
	if err != nil {
		return map[string]string{}
	}
	out := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.lua"))
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".lua")
		if name == "prelude" {
			continue
		}
		body, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sum := sha1.Sum(append(append([]byte{}, prelude...), body...))
		out[hex.EncodeToString(sum[:])] = name
	}
	return out
}

// monitor follows MONITOR on every server. It counts top-level commands
// (one per client command; a pipeline is several) by name, scripts by which
// script they run, and commands run inside scripts separately. Into writes
// it records, per session id, the tracker's clock (ms, from the scripts'
// ARGV) of each session open ("seen" script) and refresh ("touch" script),
// to check that no session is written twice within refresh_interval.
type monitor struct {
	conns   []net.Conn
	scripts map[string]string
	wg      sync.WaitGroup

	mu     sync.Mutex
	top    map[string]int64
	inner  map[string]int64
	writes map[string][]float64 // session id -> ms of each write; may be nil
}

func startMonitor(addrs []string, scripts map[string]string, writes map[string][]float64) (*monitor, error) {
	m := &monitor{scripts: scripts, top: map[string]int64{}, inner: map[string]int64{}, writes: writes}
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err != nil {
			m.close()
			return nil, err
		}
		m.conns = append(m.conns, c)
		if _, err := c.Write([]byte("*1\r\n$7\r\nMONITOR\r\n")); err != nil {
			m.close()
			return nil, err
		}
		br := bufio.NewReaderSize(c, 1<<16)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "+OK" {
			m.close()
			return nil, fmt.Errorf("MONITOR on %s: %q %v", a, line, err)
		}
		_ = c.SetReadDeadline(time.Time{})
		m.wg.Add(1)
		go m.read(br)
	}
	return m, nil
}

func (m *monitor) close() {
	for _, c := range m.conns {
		_ = c.Close()
	}
	m.wg.Wait()
}

func (m *monitor) read(br *bufio.Reader) {
	defer m.wg.Done()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		m.line(strings.TrimRight(line, "\r\n"))
	}
}

// line handles `+1700000000.123456 [0 127.0.0.1:5555] "evalsha" "sha" ...`;
// commands run by scripts show as `[0 lua]`.
func (m *monitor) line(l string) {
	if !strings.HasPrefix(l, "+") {
		return
	}
	lb, rb := strings.IndexByte(l, '['), strings.IndexByte(l, ']')
	if lb < 0 || rb < lb {
		return
	}
	client := l[lb+1 : rb]
	args := parseMonitorArgs(l[rb+1:])
	if len(args) == 0 {
		return
	}
	cmd := strings.ToLower(args[0])
	m.mu.Lock()
	defer m.mu.Unlock()
	if strings.HasSuffix(client, " lua") {
		m.inner[cmd]++
		return
	}
	if setupCmd(cmd) {
		cmd = "(connection setup: " + cmd + ")"
	}
	key := cmd
	if (cmd == "evalsha" || cmd == "eval" || cmd == "evalsha_ro" || cmd == "eval_ro") && len(args) > 1 {
		sha := strings.ToLower(args[1])
		if strings.HasPrefix(cmd, "eval") && !strings.HasPrefix(cmd, "evalsha") {
			sum := sha1.Sum([]byte(args[1]))
			sha = hex.EncodeToString(sum[:])
		}
		name := m.scripts[sha]
		if name == "" {
			name = "script " + sha[:min(8, len(sha))]
		}
		key = cmd + " " + name
		// ARGV follow numkeys and the keys; see tracker/redisstore/lua/*.lua.
		if nk, err := strconv.Atoi(argAt(args, 2)); err == nil && m.writes != nil {
			argv := args[min(3+nk, len(args)):]
			now, _ := strconv.ParseFloat(argAt(argv, 0), 64)
			var sid string
			switch {
			case name == "touch" && len(argv) > 1: // now, session id, ...
				sid = argv[1]
			case name == "seen" && len(argv) > 9 && argv[9] == "sight":
				// now, ..., 6 new session id, ..., 10 mode. The id is
				// only used when the script opens a session; in
				// steady state (cache misses) it is a fresh unused
				// id and stays a single entry.
				sid = argv[5]
			}
			// An EVALSHA answered NOSCRIPT and its EVAL retry carry the
			// same clock: one write.
			if w := m.writes[sid]; sid != "" && (len(w) == 0 || w[len(w)-1] != now) {
				m.writes[sid] = append(w, now)
			}
		}
	}
	if key == cmd && len(args) > 1 && !strings.HasPrefix(cmd, "(") {
		key = cmd + " " + keyShape(args[1])
	}
	m.top[key]++
}

// keyShape is the pattern of a key: hash tags and long (hash-like)
// segments elided, so "cs:{Zx…}:s" and "cs:t:<hash>" group together.
func keyShape(k string) string {
	if i := strings.IndexByte(k, '{'); i >= 0 {
		if j := strings.IndexByte(k[i:], '}'); j > 0 {
			k = k[:i+1] + "…" + k[i+j:]
		}
	}
	parts := strings.Split(k, ":")
	for i, p := range parts {
		if len(p) > 16 {
			parts[i] = "*"
		}
	}
	return strings.Join(parts, ":")
}

// setupCmd tells commands clients send when they connect (go-redis sends
// HELLO and CLIENT SETINFO on each new connection) or to learn a cluster's
// layout: not per-request work.
func setupCmd(cmd string) bool {
	switch cmd {
	case "hello", "client", "select", "auth", "readonly", "ping", "cluster", "command":
		return true
	}
	return false
}

func argAt(a []string, i int) string {
	if i < len(a) {
		return a[i]
	}
	return ""
}

// parseMonitorArgs splits the quoted, sdscatrepr-escaped arguments.
func parseMonitorArgs(s string) []string {
	var out []string
	i := 0
	for i < len(s) {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i >= len(s) || s[i] != '"' {
			break
		}
		i++
		var b strings.Builder
		for i < len(s) && s[i] != '"' {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					b.WriteByte('\n')
				case 'r':
					b.WriteByte('\r')
				case 't':
					b.WriteByte('\t')
				case 'a':
					b.WriteByte('\a')
				case 'b':
					b.WriteByte('\b')
				case 'x':
					if i+2 < len(s) {
						if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
							b.WriteByte(byte(v))
							i += 2
							break
						}
					}
					b.WriteByte('x')
				default:
					b.WriteByte(s[i])
				}
				i++
				continue
			}
			b.WriteByte(c)
			i++
		}
		i++ // closing quote
		out = append(out, b.String())
	}
	return out
}

type monitorCounts struct {
	top, inner map[string]int64
}

func (m *monitor) stop() monitorCounts {
	// Let in-flight lines (the tracker flushes refreshes every 50 ms)
	// arrive before closing.
	time.Sleep(150 * time.Millisecond)
	m.close()
	m.mu.Lock()
	defer m.mu.Unlock()
	return monitorCounts{top: m.top, inner: m.inner}
}

func addCounts(dst, src map[string]int64) {
	for k, v := range src {
		dst[k] += v
	}
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// sortedKeys are the keys of m by descending value.
func sortedKeys(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if m[ks[i]] != m[ks[j]] {
			return m[ks[i]] > m[ks[j]]
		}
		return ks[i] < ks[j]
	})
	return ks
}
