package sessions

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A store URL's password never reaches an error, however the URL is
// malformed.
func TestStoreErrorsHideThePassword(t *testing.T) {
	const pw = "S3cr3t-pw"
	for _, u := range []string{
		"redis://user:" + pw + "@127.0.0.1:notaport/0",
		"redis://:" + pw + "@127.0.0.1:6379/notadb",
		"redis://user:" + pw + "@[::1/0",
		"rediss://user:" + pw + "@host:6379/0?dial_timeout=x",
		"ftp://user:" + pw + "@host/",
		"redis://user:" + pw + "%zz@host:6379/",
		"user:" + pw + "@host:6379",
	} {
		_, err := redisOptions(&StoreConfig{URL: u})
		if err == nil {
			t.Errorf("%q: no error", u)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("%q: the error shows the password: %v", u, err)
		}
	}
	if got := redactURL("redis://alice:" + pw + "@host:6379/2"); got != "redis://xxxxx@host:6379/2" {
		t.Errorf("redactURL = %q", got)
	}
}

// TestRedisLogIsThrottled: go-redis's lines reach Caddy's log, at most
// one per errLogPeriod.
func TestRedisLogIsThrottled(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := &redisLog{l: zap.New(core)}
	for range 50 {
		l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 1, "connection refused")
	}
	if n := logs.Len(); n != 1 {
		t.Fatalf("%d lines logged for 50, want 1", n)
	}
	e := logs.All()[0]
	if e.Level != zapcore.WarnLevel || !strings.Contains(e.ContextMap()["detail"].(string), "failed to dial after 1 attempts: connection refused") {
		t.Errorf("logged %v %v", e.Level, e.ContextMap())
	}
}
