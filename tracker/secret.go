package tracker

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Keyring derives everything the module must not store in the clear from one
// secret: token hashes, session ids, device cookie signatures.
type Keyring struct {
	pool sync.Pool // of *macState; hmac.New is costly, Reset is not
}

// macState is a keyed HMAC and a scratch buffer, so that hashing strings
// allocates nothing on the request path.
type macState struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// NewKeyring returns a keyring for secret, which must be at least 16 bytes.
func NewKeyring(secret []byte) (*Keyring, error) {
	if len(secret) < 16 {
		return nil, errors.New("secret must be at least 16 bytes")
	}
	key := append([]byte(nil), secret...)
	k := &Keyring{}
	k.pool.New = func() any { return &macState{h: hmac.New(sha256.New, key), buf: make([]byte, 0, 256)} }
	return k, nil
}

func (k *Keyring) mac(parts ...string) (sum [sha256.Size]byte) {
	st := k.pool.Get().(*macState)
	st.buf = st.buf[:0]
	for _, p := range parts {
		st.buf = append(st.buf, p...)
		st.buf = append(st.buf, 0)
	}
	st.h.Reset()
	st.h.Write(st.buf)
	copy(sum[:], st.h.Sum(st.sum[:0]))
	if cap(st.buf) <= 4096 {
		k.pool.Put(st)
	}
	return sum
}

// TokenKey is the binary form of TokenHash: the local cache's key.
type TokenKey [16]byte

// TokenKey hashes a session token of a realm without allocating.
func (k *Keyring) TokenKey(realm, token string) (key TokenKey) {
	sum := k.mac("tok", realm, token)
	copy(key[:], sum[:16])
	return key
}

// parseTokenKey reads a TokenKey's string form. Input comes from the
// invalidation channel, so it must not trust the length.
func parseTokenKey(s string) (key TokenKey, ok bool) {
	if len(s) != 22 {
		return key, false
	}
	n, err := base64.RawURLEncoding.Strict().Decode(key[:], []byte(s))
	return key, err == nil && n == len(key)
}

// String is the stored form of the key.
func (key TokenKey) String() string { return base64.RawURLEncoding.EncodeToString(key[:]) }

// TokenHash is the stored stand-in for a session token of a realm: 128 bits
// of HMAC, so the raw token is never kept or logged.
func (k *Keyring) TokenHash(realm, token string) string {
	return k.TokenKey(realm, token).String()
}

// UserTag names a user of a realm in what instances tell each other
// through the store (the invalidation log): the instances share the
// secret, the log never holds a user id, so an erased user leaves no
// trace there.
func (k *Keyring) UserTag(realm, user string) string {
	sum := k.mac("user", realm, user)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

var sidEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// SessionID derives a session's public id from its token hash and start, so
// the same token opening a new session later gets a new id.
func (k *Keyring) SessionID(tokenHash string, started time.Time) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(started.UnixNano()))
	sum := k.mac("sid", tokenHash, string(b[:]))
	return sidEncoding.EncodeToString(sum[:10])
}

// IssuedMAC signs a session cookie value the app gave an anonymous
// visitor: the module hands it to the browser beside the app's cookie, so
// a later login proves, without any storage, that the cookie it replaces
// is one the app issued (VerifyIssued).
// The signature holds when it was made (unix seconds, base 36): it proves
// an issue within maxAge only, since an app may forget an anonymous id
// (expiry, logout) and then replace it on any answer.
func (k *Keyring) IssuedMAC(token string, at time.Time) string {
	ts := strconv.FormatInt(at.Unix(), 36)
	sum := k.mac("issued", token, ts)
	return ts + "." + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// VerifyIssued reports whether value is IssuedMAC(token, t) for a t at
// most maxAge before now.
func (k *Keyring) VerifyIssued(token, value string, now time.Time, maxAge time.Duration) bool {
	ts, mac, ok := strings.Cut(value, ".")
	if token == "" || !ok || len(mac) != 22 || len(ts) > 13 {
		return false
	}
	sec, err := strconv.ParseInt(ts, 36, 64)
	if err != nil || strconv.FormatInt(sec, 36) != ts {
		return false // one spelling per time
	}
	if at := time.Unix(sec, 0); at.After(now.Add(time.Minute)) || now.Sub(at) > maxAge {
		return false
	}
	var got [16]byte
	if n, err := base64.RawURLEncoding.Strict().Decode(got[:], []byte(mac)); err != nil || n != len(got) {
		return false
	}
	want := k.mac("issued", token, ts)
	return hmac.Equal(got[:], want[:16])
}

// NewDevice makes a random device id and its signed cookie value.
func (k *Keyring) NewDevice() (id, cookie string) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	id = deviceID(b)
	return id, k.DeviceCookie(id)
}

// deviceID encodes 12 bytes as a 16-character id whose first character is
// a letter: the top bit is cleared (95 random bits remain), so an id never
// starts with '-' or '_' and a spreadsheet shows it as it is instead of a
// neutralised formula.
func deviceID(b [12]byte) string {
	b[0] &= 0x7f
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// TokenDevice is the device of a session token's request that brings no
// valid device cookie: derived from the token, the user agent and the IP,
// so a client that keeps no cookies stays one device, while the same
// cookie copied into another browser, or used from elsewhere, is another
// device and never the one whose cookie the session's browser holds.
func (k *Keyring) TokenDevice(key TokenKey, userAgent, ip string) string {
	sum := k.mac("tokdev", string(key[:]), userAgent, ip)
	return deviceID([12]byte(sum[:12]))
}

// DerivedDevice is the device id of a client seen without a device cookie,
// derived from what it sends, so a client that keeps no cookies stays one
// device.
func (k *Keyring) DerivedDevice(realm, user, userAgent, ip string) string {
	sum := k.mac("newdev", realm, user, userAgent, ip)
	return deviceID([12]byte(sum[:12]))
}

// deviceCookieLen is the length of a device cookie: a 16-character id, a
// dot and a 22-character signature (VerifyDevice takes no other).
const deviceCookieLen = 16 + 1 + 22

// DeviceCookie is the signed cookie value of a device id.
func (k *Keyring) DeviceCookie(id string) string { return id + "." + k.deviceSig(id) }

func (k *Keyring) deviceSig(id string) string {
	sum := k.mac("dev", id)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// VerifyDevice returns the device id of a cookie value, or ok=false for a
// missing, malformed or forged one.
func (k *Keyring) VerifyDevice(cookie string) (id string, ok bool) {
	id, sig, found := strings.Cut(cookie, ".")
	if !found || len(id) != 16 || len(sig) != 22 {
		return "", false
	}
	var got [16]byte
	// Strict: the last character's unused bits must be zero, or one
	// signature would have several spellings.
	if n, err := base64.RawURLEncoding.Strict().Decode(got[:], []byte(sig)); err != nil || n != len(got) {
		return "", false
	}
	want := k.mac("dev", id)
	if !hmac.Equal(got[:], want[:16]) {
		return "", false
	}
	return id, true
}

// SignLink signs a link's payload (a "this wasn't me" link): 22
// characters of base64url.
func (k *Keyring) SignLink(payload string) string {
	sum := k.mac("link", payload)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// VerifyLink reports whether sig is SignLink(payload).
func (k *Keyring) VerifyLink(payload, sig string) bool {
	var got [16]byte
	if len(sig) != 22 {
		return false
	}
	if n, err := base64.RawURLEncoding.Strict().Decode(got[:], []byte(sig)); err != nil || n != len(got) {
		return false
	}
	want := k.mac("link", payload)
	return hmac.Equal(got[:], want[:16])
}
