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
	"strings"
	"sync"
	"time"
)

// Keyring derives everything the module must not store in the clear from one
// secret: token hashes, session ids, device cookie signatures.
type Keyring struct {
	pool sync.Pool // of keyed HMAC-SHA256 states; New is costly, Reset is not
}

// NewKeyring returns a keyring for secret, which must be at least 16 bytes.
func NewKeyring(secret []byte) (*Keyring, error) {
	if len(secret) < 16 {
		return nil, errors.New("secret must be at least 16 bytes")
	}
	key := append([]byte(nil), secret...)
	k := &Keyring{}
	k.pool.New = func() any { return hmac.New(sha256.New, key) }
	return k, nil
}

func (k *Keyring) mac(parts ...string) []byte {
	h := k.pool.Get().(hash.Hash)
	h.Reset()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var buf [sha256.Size]byte
	sum := h.Sum(buf[:0])
	k.pool.Put(h)
	return sum
}

// TokenHash is the stored stand-in for a session token of a realm: 128 bits
// of HMAC, so the raw token is never kept or logged.
func (k *Keyring) TokenHash(realm, token string) string {
	return base64.RawURLEncoding.EncodeToString(k.mac("tok", realm, token)[:16])
}

var sidEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// SessionID derives a session's public id from its token hash and start, so
// the same token opening a new session later gets a new id.
func (k *Keyring) SessionID(tokenHash string, started time.Time) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(started.UnixNano()))
	return sidEncoding.EncodeToString(k.mac("sid", tokenHash, string(b[:]))[:10])
}

// NewDevice makes a random device id and its signed cookie value.
func (k *Keyring) NewDevice() (id, cookie string) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	id = base64.RawURLEncoding.EncodeToString(b[:])
	return id, k.DeviceCookie(id)
}

// DerivedDevice is the device id of a client seen without a device cookie,
// derived from what it sends, so a client that keeps no cookies stays one
// device.
func (k *Keyring) DerivedDevice(realm, user, userAgent, ip string) string {
	return base64.RawURLEncoding.EncodeToString(k.mac("newdev", realm, user, userAgent, ip)[:12])
}

// DeviceCookie is the signed cookie value of a device id.
func (k *Keyring) DeviceCookie(id string) string { return id + "." + k.deviceSig(id) }

func (k *Keyring) deviceSig(id string) string {
	return base64.RawURLEncoding.EncodeToString(k.mac("dev", id)[:16])
}

// VerifyDevice returns the device id of a cookie value, or ok=false for a
// missing, malformed or forged one.
func (k *Keyring) VerifyDevice(cookie string) (id string, ok bool) {
	id, sig, found := strings.Cut(cookie, ".")
	if !found || len(id) != 16 || len(sig) != 22 {
		return "", false
	}
	want := k.deviceSig(id)
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return "", false
	}
	return id, true
}
