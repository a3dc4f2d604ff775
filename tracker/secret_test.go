package tracker

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
)

func TestNewKeyringRejectsShortSecret(t *testing.T) {
	for _, c := range []struct {
		name   string
		secret string
		ok     bool
	}{
		{"empty", "", false},
		{"15 bytes", strings.Repeat("x", 15), false},
		{"16 bytes", strings.Repeat("x", 16), true},
		{"long", strings.Repeat("x", 200), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, err := NewKeyring([]byte(c.secret))
			if c.ok && (err != nil || k == nil) {
				t.Errorf("NewKeyring(%d bytes) = %v, %v; want a keyring", len(c.secret), k, err)
			}
			if !c.ok && err == nil {
				t.Errorf("NewKeyring(%d bytes) accepted a short secret", len(c.secret))
			}
		})
	}
}

func TestNewKeyringCopiesSecret(t *testing.T) {
	secret := []byte("0123456789abcdef-secret")
	k, _ := NewKeyring(secret)
	before := k.TokenHash("r", "t")
	for i := range secret {
		secret[i] = 'x'
	}
	// A fresh pool state must still use the original secret.
	k2, _ := NewKeyring([]byte("0123456789abcdef-secret"))
	if got := k.TokenHash("r", "t"); got != before || got != k2.TokenHash("r", "t") {
		t.Errorf("changing the caller's secret slice changed the keyring")
	}
}

func TestTokenHash(t *testing.T) {
	k := testKeyring(t)
	other, _ := NewKeyring([]byte("another secret, 0123456789abcdef"))
	h := k.TokenHash("realm", "token")
	if len(h) != 22 || strings.ContainsAny(h, "{}:/+= ") {
		t.Errorf("TokenHash = %q: want 22 base64url characters", h)
	}
	if strings.Contains(h, "token") {
		t.Errorf("TokenHash %q contains the token", h)
	}
	if h2 := testKeyring(t).TokenHash("realm", "token"); h2 != h {
		t.Errorf("TokenHash not deterministic across keyrings of one secret: %q vs %q", h, h2)
	}
	for _, c := range []struct {
		name         string
		realm, token string
		k            *Keyring
	}{
		{"other realm", "realm2", "token", k},
		{"other token", "realm", "token2", k},
		{"empty token", "realm", "", k},
		{"realm/token boundary", "realmt", "oken", k},
		{"realm/token swapped", "token", "realm", k},
		{"other secret", "realm", "token", other},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.k.TokenHash(c.realm, c.token); got == h {
				t.Errorf("TokenHash(%q, %q) = %q, same as for (realm, token)", c.realm, c.token, got)
			}
		})
	}
	key := k.TokenKey("realm", "token")
	if key.String() != h {
		t.Errorf("TokenKey.String() = %q, want TokenHash %q", key.String(), h)
	}
	if back, ok := parseTokenKey(h); !ok || back != key {
		t.Errorf("parseTokenKey(%q) = %v, %v; want %v", h, back, ok, key)
	}
}

// parseTokenKey reads token hashes from invalidation messages, i.e. from
// the network: it must reject, never panic on, anything malformed.
func TestParseTokenKeyRejectsMalformed(t *testing.T) {
	h := testKeyring(t).TokenHash("realm", "token")
	for _, c := range []struct{ name, in string }{
		{"empty", ""},
		{"short", "short"},
		{"one char short", h[:21]},
		{"one char long", h + "A"},
		{"two hashes", h + h},
		{"not base64", strings.Repeat("!", 22)},
		{"standard base64", strings.Repeat("+", 22)},
		{"long garbage", strings.Repeat("x", 1000)},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("parseTokenKey(%.40q) panicked: %v", c.in, r)
				}
			}()
			if _, ok := parseTokenKey(c.in); ok {
				t.Errorf("parseTokenKey(%.40q) accepted it", c.in)
			}
		})
	}
}

func TestTokenHashConcurrent(t *testing.T) {
	// The keyring pools HMAC states: concurrent use must not mix them.
	k := testKeyring(t)
	want := map[string]string{}
	for i := range 64 {
		tok := strings.Repeat("t", i)
		want[tok] = k.TokenHash("r", tok)
	}
	done := make(chan string, 8)
	for range 8 {
		go func() {
			for range 200 {
				for tok, h := range want {
					if got := k.TokenHash("r", tok); got != h {
						done <- "mismatch for " + tok
						return
					}
				}
			}
			done <- ""
		}()
	}
	for range 8 {
		if msg := <-done; msg != "" {
			t.Fatal(msg)
		}
	}
}

func TestSessionID(t *testing.T) {
	k := testKeyring(t)
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	id := k.SessionID("th", at)
	if len(id) != 16 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		t.Errorf("SessionID = %q, want 16 lowercase base32 characters", id)
	}
	if again := k.SessionID("th", at); again != id {
		t.Errorf("SessionID not deterministic: %q vs %q", id, again)
	}
	for _, c := range []struct {
		name string
		th   string
		at   time.Time
	}{
		{"1ns later", "th", at.Add(time.Nanosecond)},
		{"1s later", "th", at.Add(time.Second)},
		{"other token", "th2", at},
	} {
		if got := k.SessionID(c.th, c.at); got == id {
			t.Errorf("%s: SessionID = %q, same as the original", c.name, got)
		}
	}
	other, _ := NewKeyring([]byte("another secret, 0123456789abcdef"))
	if other.SessionID("th", at) == id {
		t.Error("SessionID is the same under another secret")
	}
}

func TestDeviceCookie(t *testing.T) {
	k := testKeyring(t)
	other, _ := NewKeyring([]byte("another secret, 0123456789abcdef"))
	id, cookie := k.NewDevice()
	if got, ok := k.VerifyDevice(cookie); !ok || got != id {
		t.Fatalf("VerifyDevice(own cookie %q) = %q, %v; want %q", cookie, got, ok, id)
	}
	id2, cookie2 := k.NewDevice()
	if id2 == id || cookie2 == cookie {
		t.Fatalf("NewDevice returned the same id twice: %q", id)
	}
	_, sig, _ := strings.Cut(cookie, ".")
	_, sig2, _ := strings.Cut(cookie2, ".")
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	for _, c := range []struct {
		name   string
		cookie string
	}{
		{"empty", ""},
		{"id only", id},
		{"id and dot", id + "."},
		{"dot and signature", "." + sig},
		{"forged signature", id + "." + flip(sig, 3)},
		{"forged id", flip(id, 0) + "." + sig},
		{"truncated", cookie[:len(cookie)-1]},
		{"extended", cookie + "A"},
		{"swapped id", id2 + "." + sig},
		{"swapped signature", id + "." + sig2},
		{"another keyring's cookie", other.DeviceCookie(id)},
		{"garbage", "garbage.garbage"},
		{"binary", "\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff.\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff"},
		{"signature not base64", id + "." + strings.Repeat("!", 22)},
		{"two dots", id + "." + sig + "." + sig},
		{"huge", strings.Repeat("A", 1<<16)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got, ok := k.VerifyDevice(c.cookie); ok || got != "" {
				t.Errorf("VerifyDevice(%.60q) = %q, %v; want rejected", c.cookie, got, ok)
			}
		})
	}
}

// Device ids go into CSV exports: none may start with a character a
// spreadsheet reads as a formula (or be neutralised into another value).
func TestDeviceIDStartsWithLetter(t *testing.T) {
	k := testKeyring(t)
	for i := range 4096 {
		id, _ := k.NewDevice()
		d := k.DerivedDevice("realm", "alice", "UA", fmt.Sprint("198.51.100.", i))
		for _, id := range []string{id, d} {
			if len(id) != 16 || !unicode.IsLetter(rune(id[0])) {
				t.Fatalf("device id %q: want 16 characters starting with a letter", id)
			}
		}
	}
}

func TestDerivedDevice(t *testing.T) {
	k := testKeyring(t)
	d := k.DerivedDevice("realm", "alice", "UA", "198.51.100.1")
	if d != k.DerivedDevice("realm", "alice", "UA", "198.51.100.1") {
		t.Error("DerivedDevice not deterministic")
	}
	for _, other := range []string{
		k.DerivedDevice("realm", "bob", "UA", "198.51.100.1"),
		k.DerivedDevice("realm", "alice", "UA2", "198.51.100.1"),
		k.DerivedDevice("realm", "alice", "UA", "198.51.100.2"),
		k.DerivedDevice("realm2", "alice", "UA", "198.51.100.1"),
	} {
		if other == d {
			t.Errorf("DerivedDevice collides for different inputs: %q", d)
		}
	}
	// A derived id has the shape of a random one: its cookie verifies.
	if id, ok := k.VerifyDevice(k.DeviceCookie(d)); !ok || id != d {
		t.Errorf("cookie of derived device %q does not verify: %q, %v", d, id, ok)
	}
}

// otherLast changes the last character of a signature to one that encodes
// other bits (the last of 22 base64 characters carries 4 bits of data).
func otherLast(mac string) string {
	last := mac[len(mac)-1]
	for _, c := range []byte("AQgw") {
		if c != last {
			return mac[:len(mac)-1] + string(c)
		}
	}
	return mac
}

func TestIssuedMAC(t *testing.T) {
	k := testKeyring(t)
	mac := k.IssuedMAC("anon-cookie", time.Now())
	now := time.Now()
	if !k.VerifyIssued("anon-cookie", mac, now, time.Minute) {
		t.Fatal("the signature of a cookie does not verify")
	}
	if k.VerifyIssued("anon-cookie", mac, now.Add(2*time.Minute), time.Minute) {
		t.Error("a signature older than maxAge verifies")
	}
	if k.VerifyIssued("anon-cookie", k.IssuedMAC("anon-cookie", now.Add(time.Hour)), now, time.Minute) {
		t.Error("a signature from the future verifies")
	}
	for _, c := range []struct{ token, mac string }{
		{"other-cookie", mac},
		{"anon-cookie", otherLast(mac)},
		{"anon-cookie", "0" + mac},
		{"anon-cookie", ""},
		{"", mac},
		{"anon-cookie", mac + "="},
		{"anon-cookie", k.DeviceCookie("AAAAAAAAAAAAAAAA")},
	} {
		if k.VerifyIssued(c.token, c.mac, now, time.Minute) {
			t.Errorf("VerifyIssued(%q, %q) accepted it", c.token, c.mac)
		}
	}
	k2, err := NewKeyring([]byte("another-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	if k2.VerifyIssued("anon-cookie", mac, now, time.Minute) {
		t.Error("a signature under another secret verifies")
	}
}
