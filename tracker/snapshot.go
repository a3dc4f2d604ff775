package tracker

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/caddy-sessions/caddy-sessions/restrict"
)

// snapshotVersion changes when the snapshot layout does.
const snapshotVersion = 1

type snapshot struct {
	Version  int                   `json:"version"`
	Users    []snapshotUser        `json:"users"`
	Tokens   map[string]memBinding `json:"tokens"`
	Settings map[string]Settings   `json:"settings,omitempty"`
}

type snapshotUser struct {
	Realm    string            `json:"realm"`
	User     string            `json:"user"`
	Last     time.Time         `json:"last"`
	ExpireAt time.Time         `json:"expire_at"`
	Tok      map[string]string `json:"tok"`
	// Sessions and Devices use the stores' record encoding (record.go).
	Sessions []string `json:"sessions"`
	Devices  []string `json:"devices"`
	// Restriction state.
	IPs        map[string]time.Time `json:"ips,omitempty"`
	Violations []string             `json:"violations,omitempty"`
	VSeq       int                  `json:"vseq,omitempty"`
	Exempt     bool                 `json:"exempt,omitempty"`
	Limits     restrict.Limits      `json:"limits"`
	// Activity.
	Days  map[string]int64        `json:"days,omitempty"`
	DayN  map[string]int          `json:"day_sessions,omitempty"`
	Trail map[string][]TrailEntry `json:"trail,omitempty"`
}

// SaveSnapshot writes the store to path atomically (temp file + rename), if
// anything changed since the last save.
func (m *MemoryStore) SaveSnapshot(path string) error {
	m.mu.Lock()
	if !m.dirty {
		m.mu.Unlock()
		return nil
	}
	snap := snapshot{Version: snapshotVersion, Tokens: make(map[string]memBinding, len(m.tokens)), Settings: map[string]Settings{}}
	for r, st := range m.settings {
		snap.Settings[r] = st
	}
	for h, b := range m.tokens {
		snap.Tokens[h] = b
	}
	for _, u := range m.users {
		su := snapshotUser{Realm: u.Realm, User: u.User, Last: u.Last, ExpireAt: u.ExpireAt, Tok: make(map[string]string, len(u.Tok)),
			IPs: make(map[string]time.Time, len(u.IPs)), VSeq: u.VSeq, Exempt: u.Exempt, Limits: u.Limits,
			Days: map[string]int64{}, DayN: map[string]int{}, Trail: map[string][]TrailEntry{}}
		for d, v := range u.Days {
			su.Days[d] = v
		}
		for d, v := range u.DayN {
			su.DayN[d] = v
		}
		for id, t := range u.Trail {
			su.Trail[id] = append([]TrailEntry(nil), t...)
		}
		for k, t := range u.IPs {
			su.IPs[k] = t
		}
		for _, v := range u.Viol {
			su.Violations = append(su.Violations, encodeViolation(v))
		}
		for h, id := range u.Tok {
			su.Tok[h] = id
		}
		for _, s := range u.Sess {
			su.Sessions = append(su.Sessions, encodeSession(s))
		}
		for _, d := range u.Devs {
			su.Devices = append(su.Devices, encodeDevice(d))
		}
		snap.Users = append(snap.Users, su)
	}
	m.dirty = false
	m.mu.Unlock()

	b, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("encoding snapshot: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing snapshot: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing snapshot: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	return nil
}

// LoadSnapshot replaces the store's content with the snapshot at path. A
// missing file is not an error: the store starts empty.
func (m *MemoryStore) LoadSnapshot(path string) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading snapshot: %w", err)
	}
	var snap snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return fmt.Errorf("reading snapshot %q: %w", path, err)
	}
	if snap.Version != snapshotVersion {
		return fmt.Errorf("reading snapshot %q: version %d, want %d", path, snap.Version, snapshotVersion)
	}
	// Decode into a fresh store and swap only when all of it read: a bad
	// record must not leave half a store behind.
	n := NewMemoryStore()
	for r, st := range snap.Settings {
		n.settings[r] = st
	}
	if snap.Tokens != nil {
		n.tokens = snap.Tokens
	}
	for _, su := range snap.Users {
		u := newMemUser(su.Realm, su.User)
		u.Last, u.ExpireAt, u.VSeq, u.Exempt, u.Limits = su.Last, su.ExpireAt, su.VSeq, su.Exempt, su.Limits
		for h, id := range su.Tok {
			u.Tok[h] = id
		}
		for k, t := range su.IPs {
			u.IPs[k] = t
		}
		for d, v := range su.Days {
			u.Days[d] = v
		}
		for d, v := range su.DayN {
			u.DayN[d] = v
		}
		for id, t := range su.Trail {
			u.Trail[id] = t
		}
		for _, raw := range su.Violations {
			v, err := decodeViolation(raw, su.User)
			if err != nil {
				return fmt.Errorf("reading snapshot %q: %w", path, err)
			}
			u.Viol[v.ID] = v
			if !v.Viewed {
				u.Unviewed++
			}
		}
		for _, raw := range su.Sessions {
			s, err := decodeSession(raw, su.Realm, su.User)
			if err != nil {
				return fmt.Errorf("reading snapshot %q: %w", path, err)
			}
			u.Sess[s.ID] = s
		}
		for _, raw := range su.Devices {
			d, err := decodeDevice(raw, su.User)
			if err != nil {
				return fmt.Errorf("reading snapshot %q: %w", path, err)
			}
			u.Devs[d.ID] = d
		}
		n.users[keysFor(su.Realm, su.User).tag] = u
		n.realmUser(su.Realm, su.User, su.Last)
		if u.Unviewed > 0 {
			n.flag(su.Realm, su.User, su.Last)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users, m.realms, m.flags, m.settings, m.tokens = n.users, n.realms, n.flags, n.settings, n.tokens
	return nil
}

// Maintain expires old data and saves snapshots to path (if not "") every
// interval until stop is closed, then saves a last time.
func (m *MemoryStore) Maintain(path string, interval time.Duration, stop <-chan struct{}, onErr func(error)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	save := func() {
		if path == "" {
			return
		}
		if err := m.SaveSnapshot(path); err != nil && onErr != nil {
			onErr(err)
		}
	}
	for {
		select {
		case <-stop:
			m.expire(m.now())
			save()
			return
		case <-tick.C:
			m.expire(m.now())
			save()
		}
	}
}
