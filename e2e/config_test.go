package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// TestBadConfig (15): a bad sessions block fails `caddy adapt` (parse-time
// errors) or `caddy run` (Provision/Validate errors) with a non-zero exit
// and a message that names the subdirective and the offending value;
// secrets and Redis passwords are never echoed.
func TestBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		line string // the bad lines in the sessions block
		// adaptFails: the error comes at adapt time; otherwise adapt
		// succeeds and run fails.
		adaptFails bool
		want       []string // the output must mention each
		notWant    []string // and none of these
	}{
		{"idle_timeout_nope", "idle_timeout nope", true, []string{"idle_timeout", "nope"}, nil},
		{"refresh_interval_negative", "refresh_interval -5s", true, []string{"refresh_interval", "-5s"}, nil},
		{"geoip_missing", "geoip /nonexistent.mmdb", false, []string{"geoip", "/nonexistent.mmdb"}, nil},
		{"geoip_corrupt", "geoip " + geoDBCorrupt, false, []string{"geoip", geoDBCorrupt}, nil},
		{"unknown_subdirective", "frobnicate yes", true, []string{"frobnicate"}, nil},
		{"on_revoked_200", "on_revoked 200", true, []string{"on_revoked", "200"}, nil},
		{"store_ftp", "store ftp://x", true, []string{"store", "ftp://x"}, nil},
		{"cache_size_negative", "cache_size -1", true, []string{"cache_size", "-1"}, nil},
		{"idle_shorter_than_refresh", "idle_timeout 1s\nrefresh_interval 5s", true, []string{"idle_timeout", "1s", "refresh_interval"}, nil},
		{"self_service_relative", "self_service sessions", true, []string{"self_service", "sessions"}, nil},
		{"secret_short", "secret tooshort-x", false, []string{"secret", "16"}, []string{"tooshort-x"}},
		{"redis_without_secret", "store redis://127.0.0.1:1/0", false, []string{"secret", "required"}, nil},
		{"store_url_bad_db", "store redis://u:hunter2-pass@127.0.0.1:1/notadb\nsecret " + e2eSecret, true, []string{"store"}, []string{"hunter2-pass"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			body := caddyfile("", `@login method POST path /login
sessions {
	session_cookie shop_session
	login @login
`+indent(tc.line, "\t")+`
}
reverse_proxy 127.0.0.1:9`)
			// Free ports, in case run gets as far as listening.
			body = strings.Replace(body, markAdmin, strconv.Itoa(redistest.FreePort(t)), 1)
			body = strings.Replace(body, markSite, strconv.Itoa(redistest.FreePort(t)), 1)
			cfg := filepath.Join(dir, "Caddyfile")
			if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}

			out, code := runCaddyCmd(t, dir, "adapt", "--config", cfg, "--adapter", "caddyfile")
			if tc.adaptFails {
				if code == 0 {
					t.Fatalf("caddy adapt accepted %q:\n%s", tc.line, out)
				}
				checkMentions(t, "adapt", out, tc.want, tc.notWant)
			} else if code != 0 {
				t.Fatalf("caddy adapt should accept %q (the error belongs to provisioning), got exit %d:\n%s", tc.line, code, out)
			}

			out, code = runCaddyCmd(t, dir, "run", "--config", cfg, "--adapter", "caddyfile")
			if code == 0 {
				t.Fatalf("caddy run exited 0 with %q:\n%s", tc.line, out)
			}
			checkMentions(t, "run", out, tc.want, tc.notWant)
		})
	}
}

func checkMentions(t *testing.T, stage, out string, want, notWant []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("caddy %s output does not mention %q:\n%s", stage, w, lastLines(out, 8))
		}
	}
	for _, w := range notWant {
		if strings.Contains(out, w) {
			t.Errorf("caddy %s output echoes %q (must stay secret):\n%s", stage, w, lastLines(out, 8))
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// runCaddyCmd runs the Caddy binary with an isolated home and data dir,
// bounded to 20s, and returns its combined output and exit code.
func runCaddyCmd(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("caddy %s did not finish within 20s:\n%s", args[0], lastLines(string(out), 20))
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("caddy %s: %v", args[0], err)
	}
	return string(out), 0
}
