package redisstore

import (
	"crypto/sha256"
	"encoding/base64"
)

// keyPrefix starts every key and channel the Redis store writes.
const keyPrefix = "cs:"

// InvalidationChannel carries revocations and blocks to every instance.
const InvalidationChannel = keyPrefix + "inval"

// userKeys are the keys of one user of one realm. They share one hash tag,
// so one Lua script can update them atomically on Redis Cluster. The tag is a
// hash of realm and user: client-chosen user names can hold any byte and must
// not shape keys.
type userKeys struct {
	tag   string
	meta  string // HASH user, realm, last activity
	tok   string // HASH token hash -> session id
	sess  string // HASH session id -> session record
	act   string // ZSET active session id -> last seen (ms)
	hist  string // ZSET session id -> started (ms), all sessions in retention
	devs  string // HASH device id -> device record
	devz  string // ZSET device id -> last seen (ms)
	ips   string // ZSET counted IP (prefix) -> last seen (ms), for max_ips
	viol  string // HASH violation id -> violation record
	violz string // ZSET violation id -> time (ms)
	days  string // HASH local date -> active ms; date#n -> sessions
	trail string // HASH session id -> recent paths (extended activity trail)
	// Risk findings: kept apart from the keys every script is given (only
	// risk.lua writes them), with a TTL of their own renewed at each write.
	risk  string // HASH finding id -> finding record
	riskz string // ZSET finding id -> time (ms)
	rsig  string // HASH "s:"+session id / "d:"+device id -> signals, comma-separated
}

// riskKeys are the keys of the user's risk findings.
func (k userKeys) riskKeys() []string { return []string{k.risk, k.riskz, k.rsig} }

func (k userKeys) all() []string {
	return []string{k.meta, k.tok, k.sess, k.act, k.hist, k.devs, k.devz, k.ips, k.viol, k.violz, k.days, k.trail}
}

func tagOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:12])
}

func keysFor(realm, user string) userKeys {
	tag := "{" + tagOf(realm, user) + "}"
	p := keyPrefix + tag + ":"
	return userKeys{
		tag: tag, meta: p + "u", tok: p + "tok", sess: p + "s", act: p + "act",
		hist: p + "hist", devs: p + "d", devz: p + "dz", ips: p + "ips", viol: p + "v", violz: p + "vz",
		days: p + "days", trail: p + "trail", risk: p + "risk", riskz: p + "riskz", rsig: p + "rsig",
	}
}

// realmUsersKey is the realm's index of users by last activity.
func realmUsersKey(realm string) string {
	return keyPrefix + "{r" + tagOf(realm) + "}:users"
}

// realmFlaggedKey indexes the realm's users with unviewed violations.
func realmFlaggedKey(realm string) string {
	return keyPrefix + "{r" + tagOf(realm) + "}:flagged"
}

// realmSettingsKey holds the realm's runtime switches.
func realmSettingsKey(realm string) string {
	return keyPrefix + "{r" + tagOf(realm) + "}:settings"
}

// tokenKey binds a session token hash (store-wide) to its realm and user.
func tokenKey(tokenHash string) string { return keyPrefix + "t:" + tokenHash }

// onceKey marks a single-use id (a "this wasn't me" link) used.
func onceKey(id string) string { return keyPrefix + "once:" + tagOf(id) }

// agentKey and locationKey hold shared descriptions (descriptions.go).
func agentKey(ref string) string    { return keyPrefix + "a:" + ref }
func locationKey(ref string) string { return keyPrefix + "l:" + ref }

// KeyLayout is where the Redis store keeps things, for diagnostics and
// benchmarks that inspect Redis (bench/memory): the one definition, not a
// copy.
type KeyLayout struct {
	// User maps each key of one user of a realm to what it holds.
	User []KeyInfo
	// Realm lists the realm's keys outside any user's slot.
	Realm []KeyInfo
	// Tag is the hash tag the user's keys share, in braces.
	Tag string
}

// KeyInfo names one key and what it holds.
type KeyInfo struct {
	Key, Holds string
}

// Keys is the key layout of user in realm.
func Keys(realm, user string) KeyLayout {
	k := keysFor(realm, user)
	holds := []string{
		"user meta (hash)", "token hash -> session id", "session records", "active sessions",
		"all sessions by start", "device records", "devices by last seen", "counted IPs",
		"violations", "violations by time", "per-day totals", "activity trail",
		"risk findings", "risk findings by time", "risk signals per session and device",
	}
	l := KeyLayout{Tag: k.tag}
	for i, key := range append(k.all(), k.riskKeys()...) {
		l.User = append(l.User, KeyInfo{Key: key, Holds: holds[i]})
	}
	l.Realm = []KeyInfo{
		{realmUsersKey(realm), "users by last activity"},
		{realmFlaggedKey(realm), "users with unviewed violations"},
		{realmSettingsKey(realm), "runtime switches"},
	}
	return l
}
