package redisstore

import (
	"strings"
	"testing"
)

// TestKeyLayoutIsStable pins where the store keeps a user's data: a change
// moves every user's keys on upgrade (the tracker's derivations, token
// hash and session id, are pinned in package tracker), so it must be a
// deliberate one, with an upgrade note in the README.
func TestKeyLayoutIsStable(t *testing.T) {
	ks := keysFor("shop", "alice")
	const th = "Zk8Jol_CAFdE4aToHbkO9w" // tracker's golden token hash
	for _, c := range []struct{ what, got, want string }{
		{"user keys", strings.Join(ks.all(), " "), "cs:{kg061MlgT5lfJ_FA}:u cs:{kg061MlgT5lfJ_FA}:tok cs:{kg061MlgT5lfJ_FA}:s cs:{kg061MlgT5lfJ_FA}:act cs:{kg061MlgT5lfJ_FA}:hist cs:{kg061MlgT5lfJ_FA}:d cs:{kg061MlgT5lfJ_FA}:dz cs:{kg061MlgT5lfJ_FA}:ips cs:{kg061MlgT5lfJ_FA}:v cs:{kg061MlgT5lfJ_FA}:vz cs:{kg061MlgT5lfJ_FA}:days cs:{kg061MlgT5lfJ_FA}:trail"},
		{"risk keys", strings.Join(ks.riskKeys(), " "), "cs:{kg061MlgT5lfJ_FA}:risk cs:{kg061MlgT5lfJ_FA}:riskz cs:{kg061MlgT5lfJ_FA}:rsig"},
		{"realm keys", realmUsersKey("shop") + " " + realmFlaggedKey("shop") + " " + realmSettingsKey("shop"), "cs:{rkxR3-zGK_5oi8Jo4}:users cs:{rkxR3-zGK_5oi8Jo4}:flagged cs:{rkxR3-zGK_5oi8Jo4}:settings"},
		{"binding key", tokenKey(th), "cs:t:Zk8Jol_CAFdE4aToHbkO9w"},
		{"single-use key", onceKey("20261202T081000-abc"), "cs:once:B6TRj8DmzP9aBhp7"},
		{"description keys", agentKey("AAAAAAAAAA") + " " + locationKey("BBBBBBBBBB"), "cs:a:AAAAAAAAAA cs:l:BBBBBBBBBB"},
		{"invalidation channel", InvalidationChannel, "cs:inval"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	// The exported layout is the same one.
	l := Keys("shop", "alice")
	if l.Tag != ks.tag || len(l.User) != len(ks.all())+len(ks.riskKeys()) || l.User[2].Key != ks.sess || l.Realm[0].Key != realmUsersKey("shop") {
		t.Errorf("Keys = %+v, differs from keysFor", l)
	}
}
