package tracker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"
)

// TestStoredDerivationsAreStable pins everything the store keeps under a
// derived name: a change to any of these orphans every user's data on
// upgrade (bound tokens unknown, session ids changed, keys moved), so it
// must be a deliberate one, with an upgrade note in the README.
// issuedGolden is IssuedMAC("PHPSESSID-value", 1796180000) under the golden secret: a
// browser keeps it across an upgrade, so a change breaks logins in flight.
const issuedGolden = "tpedcw.66sKVraA0uyGX8354pHF7A" // t + "." + base64url(HMAC-SHA256(secret, "issued\x00" + token + "\x00" + t + "\x00")[:16]), t = unix seconds in base 36

func TestStoredDerivationsAreStable(t *testing.T) {
	secret := []byte("golden-secret-0123456789abcdef")
	k, err := NewKeyring(secret)
	if err != nil {
		t.Fatal(err)
	}
	// The token hash, spelled out: HMAC-SHA256 over "tok", the scope (no
	// realm) and the token, each NUL-terminated; 16 bytes, base64url.
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("tok\x00\x00PHPSESSID-value\x00"))
	want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
	th := k.TokenHash(TokenScope, "PHPSESSID-value")
	for _, c := range []struct{ what, got, want string }{
		{"token hash (formula)", th, want},
		{"token hash", th, "Zk8Jol_CAFdE4aToHbkO9w"},
		{"session id", k.SessionID(th, time.Date(2026, 12, 2, 3, 4, 5, 6e6, time.UTC)), "jvmb2vjrbqg7ordx"},
		{"device cookie", k.DeviceCookie("AAAAAAAAAAAAAAAA"), "AAAAAAAAAAAAAAAA.M2Y6bSz9nXJ-NkRXqWG-dg"},
		{"issued cookie signature", k.IssuedMAC("PHPSESSID-value", time.Unix(1796180000, 0)), issuedGolden},
		{"derived device", k.DerivedDevice("shop", "alice", "UA", "81.2.69.142"), "AXoW-LKxo2HNSstl"},
		{"hashed IP key", k.TokenHash("ip", "81.2.69.0/24"), "36t1FCPy5JyPMeSfkpls2A"},
		{"binding", binding("shop", "alice"), "shop\x00alice"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if r, u := parseBinding("alice", "fallback"); r != "fallback" || u != "alice" {
		t.Errorf("a binding written before bindings named their realm: %q %q", r, u)
	}
}
