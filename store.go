package sessions

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sessions/caddy-sessions/tracker/enrich"
	"github.com/caddy-sessions/caddy-sessions/tracker/redisstore"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// StoreConfig selects the session store.
type StoreConfig struct {
	// URL is "memory" (default) or a redis:// or rediss:// URL
	// (redis://user:password@host:port/db). Placeholders are expanded.
	URL string `json:"url,omitempty"`
	// Addrs are Redis addresses (host:port): one for a single server,
	// several for a cluster, or the Sentinels with MasterName.
	Addrs []string `json:"addrs,omitempty"`
	// MasterName is the Sentinel master name (enables Sentinel).
	MasterName string `json:"master_name,omitempty"`
	// Cluster forces a cluster client even for one address.
	Cluster bool `json:"cluster,omitempty"`
	// Username and Password authenticate to Redis; placeholders expanded.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// SentinelPassword authenticates to the Sentinels.
	SentinelPassword string `json:"sentinel_password,omitempty"`
	// DB is the database number (not with a cluster).
	DB int `json:"db,omitempty"`
	// TLS connects with TLS.
	TLS bool `json:"tls,omitempty"`
	// Timeout bounds dialing and each command. Default: 1s. Requests
	// never wait longer than this on the store.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

func (c *StoreConfig) isMemory() bool {
	return len(c.Addrs) == 0 && (c.URL == "" || c.URL == "memory")
}

// Stores and GeoIP readers outlive config reloads: a reload reuses the same
// connection pool, memory store content and open database.
var (
	stores = caddy.NewUsagePool()
	geos   = caddy.NewUsagePool()
)

type pooledStore struct {
	store.Store
	stop chan struct{}
	done chan struct{}
}

// Destruct implements caddy.Destructor.
func (p *pooledStore) Destruct() error {
	if p.stop != nil {
		close(p.stop)
		<-p.done
	}
	return p.Store.Close()
}

type pooledGeo struct{ *enrich.Geo }

// Destruct implements caddy.Destructor.
func (p pooledGeo) Destruct() error { return p.Close() }

func loadGeo(path string) (*enrich.Geo, error) {
	v, _, err := geos.LoadOrNew(path, func() (caddy.Destructor, error) {
		g, err := enrich.OpenGeo(path)
		if err != nil {
			return nil, err
		}
		return pooledGeo{g}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(pooledGeo).Geo, nil
}

// loadStore returns the pooled store for cfg and its pool key.
func loadStore(ctx caddy.Context, cfg *StoreConfig, logger *zap.Logger) (store.Store, string, error) {
	if cfg.isMemory() {
		if cfg.URL != "" && cfg.URL != "memory" {
			return nil, "", fmt.Errorf("%q is not \"memory\" or a redis:// URL", cfg.URL)
		}
		const key = "memory"
		v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
			m := redisstore.NewMemory()
			path := filepath.Join(caddy.AppDataDir(), "sessions", "memory-store.json")
			if err := m.LoadSnapshot(path); err != nil {
				// Keep the unreadable file for the operator; start empty.
				logger.Error("memory store snapshot unreadable; starting empty", zap.String("path", path), zap.Error(err))
				_ = os.Rename(path, path+".bad")
			}
			p := &pooledStore{Store: m, stop: make(chan struct{}), done: make(chan struct{})}
			go func() {
				defer close(p.done)
				m.Maintain(path, 30*time.Second, p.stop, func(err error) {
					logger.Error("saving memory store snapshot", zap.Error(err))
				})
			}()
			return p, nil
		})
		if err != nil {
			return nil, "", err
		}
		return v.(*pooledStore).Store, key, nil
	}
	opts, err := redisOptions(cfg)
	if err != nil {
		return nil, "", err
	}
	// The password is part of the identity but must not sit in memory
	// readable as a map key: hash it.
	sum := sha256.Sum256([]byte(fmt.Sprintf("%v|%s|%s|%s|%d|%t|%t|%s", opts.Addrs, opts.MasterName, opts.Username, opts.Password, opts.DB, opts.IsClusterMode, opts.TLSConfig != nil, opts.SentinelPassword)))
	key := "redis|" + hex.EncodeToString(sum[:])
	redisLogOnce.Do(func() { redis.SetLogger(&redisLog{l: caddy.Log().Named("http.handlers.sessions.redis")}) })
	v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		rdb := redisstore.NewClient(opts)
		s := redisstore.New(rdb)
		// Redis being down at start must not keep Caddy from starting:
		// requests flow untracked until it answers (see README).
		pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
		defer cancel()
		if err := s.Ping(pctx); err != nil {
			logger.Warn("redis store not reachable yet; requests pass untracked until it is", zap.Strings("addrs", opts.Addrs), zap.Error(err))
		} else if err := s.LoadScripts(pctx); err != nil {
			logger.Warn("loading the store's scripts", zap.Error(err))
		}
		return &pooledStore{Store: s}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(*pooledStore).Store, key, nil
}

func redisOptions(cfg *StoreConfig) (*redis.UniversalOptions, error) {
	repl := caddy.NewReplacer()
	timeout := time.Duration(cfg.Timeout)
	if timeout == 0 {
		timeout = time.Second
	}
	if timeout < 0 {
		return nil, fmt.Errorf("timeout: must be positive, got %s", timeout)
	}
	opts := &redis.UniversalOptions{
		Addrs: cfg.Addrs, MasterName: cfg.MasterName, IsClusterMode: cfg.Cluster,
		Username: repl.ReplaceAll(cfg.Username, ""), Password: repl.ReplaceAll(cfg.Password, ""),
		SentinelPassword: repl.ReplaceAll(cfg.SentinelPassword, ""), DB: cfg.DB,
		DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout,
		// Fail fast rather than queue: a request waiting for the pool
		// waits at most the timeout.
		PoolTimeout: timeout, MaxRetries: 1,
		// CLIENT SETINFO costs a round trip per connection and Redis
		// before 7.2 refuses it.
		DisableIdentity: true,
	}
	if cfg.TLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.URL != "" {
		raw := repl.ReplaceAll(cfg.URL, "")
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			// Never echo the expanded URL: it may hold a password.
			return nil, fmt.Errorf("%q is not \"memory\" or a redis:// or rediss:// URL", redactURL(cfg.URL))
		}
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", redactURL(cfg.URL), redactErr(err, raw))
		}
		opts.Addrs = append([]string{o.Addr}, cfg.Addrs...)
		opts.DB, opts.Username, opts.Password = o.DB, o.Username, o.Password
		if o.TLSConfig != nil {
			opts.TLSConfig = o.TLSConfig
		}
	}
	if len(opts.Addrs) == 0 {
		return nil, fmt.Errorf("no redis address")
	}
	if (opts.IsClusterMode || len(opts.Addrs) > 1) && opts.MasterName == "" && opts.DB != 0 {
		return nil, fmt.Errorf("db: %d not supported by Redis Cluster", opts.DB)
	}
	return opts, nil
}

// redactURL hides the user information of a URL (everything between
// "://" and the last "@" before the path), whether or not the URL parses:
// a URL with a bad port still holds a good password.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "", s
	}
	hostEnd := strings.IndexAny(rest, "/?#")
	if hostEnd < 0 {
		hostEnd = len(rest)
	}
	if at := strings.LastIndexByte(rest[:hostEnd], '@'); at >= 0 {
		rest = "xxxxx" + rest[at:]
	}
	if !ok {
		return rest
	}
	return scheme + "://" + rest
}

// redactErr is err's message without raw's user information, in any
// spelling the parser may have quoted it in.
func redactErr(err error, raw string) string {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	_, rest, _ := strings.Cut(raw, "://")
	hostEnd := strings.IndexAny(rest, "/?#")
	if hostEnd < 0 {
		hostEnd = len(rest)
	}
	if at := strings.LastIndexByte(rest[:hostEnd], '@'); at > 0 {
		info := rest[:at]
		for _, s := range []string{info, url.PathEscape(info), url.QueryEscape(info)} {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
		if _, pw, ok := strings.Cut(info, ":"); ok && pw != "" {
			if dec, err := url.PathUnescape(pw); err == nil {
				msg = strings.ReplaceAll(msg, dec, "xxxxx")
			}
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}

// secret returns the keyring secret: the configured one, expanded, or for
// the memory store a random one kept in Caddy's data directory.
func (h *Handler) secret(memory bool) ([]byte, error) {
	if h.Secret != "" {
		s := caddy.NewReplacer().ReplaceAll(h.Secret, "")
		if s == "" {
			return nil, fmt.Errorf("secret: expands to nothing (is the environment variable set?)")
		}
		if len(s) < 16 {
			return nil, fmt.Errorf("secret: must be at least 16 bytes, got %d", len(s))
		}
		return []byte(s), nil
	}
	if !memory {
		return nil, fmt.Errorf("secret: required with a redis store, so that every instance derives the same hashes (e.g. secret {env.SESSIONS_SECRET})")
	}
	path := filepath.Join(caddy.AppDataDir(), "sessions", "secret")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("secret: generating: %w", err)
	}
	b = []byte(base64.RawURLEncoding.EncodeToString(b))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("secret: storing generated secret: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("secret: storing generated secret: %w", err)
	}
	h.logger.Warn("NO SECRET CONFIGURED: generated a random one and stored it in Caddy's data directory; set `secret` before running more than one instance",
		zap.String("path", path))
	return b, nil
}

// redisLogOnce routes go-redis's own log lines (failed dials, pool
// trouble) into Caddy's log instead of bare stderr. go-redis has one
// logger per process.
var redisLogOnce sync.Once

// redisLog is go-redis's Logging on a zap logger, at warn level (its
// lines are about connections failing), at most one line per
// errLogPeriod: an outage must not flood the log.
type redisLog struct {
	l        *zap.Logger
	throttle logThrottle
}

func (r *redisLog) Printf(_ context.Context, format string, v ...any) {
	if !r.throttle.trip() {
		return
	}
	if c := r.l.Check(zapcore.WarnLevel, "redis client"); c != nil {
		c.Write(zap.String("detail", fmt.Sprintf(format, v...)))
	}
}
