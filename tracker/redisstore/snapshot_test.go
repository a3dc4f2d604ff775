package redisstore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// snapshotFixture fills a memory store: an active session with a bound
// token, a logged-out one, a revoked one, two devices.
type snapshotFixture struct {
	*fx
	m                        *Memory
	active, loggedOut, revok string
}

func newSnapshotFixture(t *testing.T) *snapshotFixture {
	m := NewMemory()
	f := newStoreSuite(m, testKeyring(t)).fixture(t)
	p := f.p
	sf := &snapshotFixture{fx: f, m: m}
	sf.active = f.open("a", 0)
	sf.loggedOut = f.open("b", time.Second, withDevice("dev-2"), withIP(ip2))
	sf.revok = f.open("c", 2*time.Second)
	if _, err := m.EndToken(f.ctx, f.realm, f.user, f.th("b"), store.EndLogout, false, f.at(time.Minute), p); err != nil {
		t.Fatal(err)
	}
	if _, err := m.EndSession(f.ctx, f.realm, f.user, sf.revok, store.EndRevoked, f.at(time.Minute), p); err != nil {
		t.Fatal(err)
	}
	if err := m.BindToken(f.ctx, f.th("a"), f.user, time.Hour); err != nil {
		t.Fatal(err)
	}
	return sf
}

// on is the same fixture over another store (same realm, user, times).
func (f *fx) on(s store.Store) *fx {
	ss := &storeSuite{s: s, keys: f.keys, base: f.base, p: f.p}
	return &fx{storeSuite: ss, t: f.t, ctx: f.ctx, realm: f.realm, user: f.user}
}

func TestSnapshotRoundTrip(t *testing.T) {
	sf := newSnapshotFixture(t)
	path := filepath.Join(t.TempDir(), "sub", "dir", "memory-store.json")
	if err := sf.m.SaveSnapshot(path); err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(sf.raw("a"))) {
		t.Error("the snapshot holds a raw token")
	}

	m2 := NewMemory()
	if err := m2.LoadSnapshot(path); err != nil {
		t.Fatalf("LoadSnapshot: %v", err)
	}
	g := sf.on(m2)
	at := 2 * time.Minute
	want, got := sf.list("all", at), g.list("all", at)
	if len(got) != 3 || !reflect.DeepEqual(got, want) {
		t.Errorf("sessions after reload:\n%+v\nwant\n%+v", got, want)
	}
	wantDevs, gotDevs := sf.devices(), g.devices()
	// Device records keep no coordinates (record.go); compare the rest.
	for _, ds := range [][]*store.Device{wantDevs, gotDevs} {
		for _, d := range ds {
			d.Location.Latitude, d.Location.Longitude = nil, nil
		}
	}
	if len(gotDevs) != 2 || !reflect.DeepEqual(gotDevs, wantDevs) {
		t.Errorf("devices after reload:\n%+v\nwant\n%+v", gotDevs, wantDevs)
	}
	if u, err := m2.TokenUser(g.ctx, g.th("a")); err != nil || u != g.user {
		t.Errorf("binding after reload = %q, %v; want %q", u, err, g.user)
	}
	// The token mappings came back: the same tokens behave as before.
	if res := g.seen("a", at); res.Status != store.StatusActive || res.SessionID != sf.active {
		t.Errorf("Seen(active token) after reload = %+v, want active %s", res, sf.active)
	}
	if res := g.seen("c", at); res.Status != store.StatusRefused || res.Reason != store.EndRevoked {
		t.Errorf("Seen(revoked token) after reload = %+v, want refused", res)
	}
	if res := g.seen("b", at); res.Status != store.StatusRefused || res.Reason != store.EndLogout {
		t.Errorf("Seen(logged-out token) after reload = %+v, want refused: logout is final", res)
	}
	// Sweeps know the reloaded user.
	closed, err := m2.SweepIdle(g.ctx, g.realm, g.base.Add(-time.Hour), g.at(at+g.p.Idle+time.Minute), g.p)
	if err != nil || len(closed) != 1 {
		t.Errorf("SweepIdle after reload closed %v, %v; want the active session", ids(closed), err)
	}
}

func TestSnapshotOnlyWhenDirty(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snap.json")
	m := NewMemory()
	if err := m.SaveSnapshot(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("an unchanged empty store wrote a snapshot (stat: %v)", err)
	}

	sf := newSnapshotFixture(t)
	if err := sf.m.SaveSnapshot(path); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	content, _ := os.ReadFile(path)
	unchanged := func(what string) {
		t.Helper()
		if err := sf.m.SaveSnapshot(path); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		now, _ := os.ReadFile(path)
		if !st.ModTime().Equal(old) || !bytes.Equal(now, content) {
			t.Errorf("%s: SaveSnapshot rewrote the file (mtime %v, was %v)", what, st.ModTime(), old)
		}
	}
	unchanged("no change")
	// Reads change nothing stored.
	sf.list("all", 10*time.Second)
	sf.devices()
	unchanged("reads")

	if res := sf.seen("a", 2*time.Minute); res.Status != store.StatusActive {
		t.Fatalf("Seen = %+v", res)
	}
	if err := sf.m.SaveSnapshot(path); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.ModTime().Equal(old) {
		t.Error("a refresh was not saved")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the snapshot dir holds %d files, want 1 (no temp files left)", len(entries))
	}
}

func TestLoadSnapshotMissingFile(t *testing.T) {
	m := NewMemory()
	if err := m.LoadSnapshot(filepath.Join(t.TempDir(), "none.json")); err != nil {
		t.Fatalf("LoadSnapshot of a missing file: %v", err)
	}
	if list, total, _ := m.Sessions(context.Background(), store.ListRequest{Realm: "r", User: "u", State: "all", Now: time.Now(), Policy: suitePolicy}); len(list) != 0 || total != 0 {
		t.Errorf("store not empty: %v", list)
	}
}

func TestLoadSnapshotCorrupt(t *testing.T) {
	good := newSnapshotFixture(t)
	dir := t.TempDir()
	goodPath := filepath.Join(dir, "good.json")
	if err := good.m.SaveSnapshot(goodPath); err != nil {
		t.Fatal(err)
	}
	valid, _ := os.ReadFile(goodPath)
	badRecord := strings.Replace(string(valid), `"h":{`, `"s":"x","h":{`, 1)
	if badRecord == string(valid) {
		t.Fatal("could not corrupt a key")
	}
	for _, c := range []struct{ name, content string }{
		{"not JSON", "{not json"},
		{"truncated", string(valid[:len(valid)/2])},
		{"empty file", ""},
		{"wrong version", `{"version":999,"keys":[]}`},
		{"the first layout", `{"version":1,"users":[]}`},
		{"a key with two values", badRecord},
		{"a NaN score", `{"version":2,"keys":[{"k":"z","z":{"m":"NaN"}}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".json")
			if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			sf := newSnapshotFixture(t)
			before := sf.list("all", time.Minute)
			err := sf.m.LoadSnapshot(path)
			if err == nil {
				t.Fatalf("LoadSnapshot(%s) succeeded", c.name)
			}
			if !strings.Contains(err.Error(), "snapshot") {
				t.Errorf("error %q does not say what failed", err)
			}
			// A failed load leaves the store as it was.
			if after := sf.list("all", time.Minute); !reflect.DeepEqual(after, before) {
				t.Errorf("failed LoadSnapshot changed the store: %d sessions, had %d", len(after), len(before))
			}
		})
	}
}
