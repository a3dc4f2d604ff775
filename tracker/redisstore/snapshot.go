package redisstore

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// snapshotVersion changes when the snapshot layout does. Version 1 was the
// embedded store's own structures, before it ran the Redis store's code.
const snapshotVersion = 2

// snapshot is every key of the embedded store, as Redis holds it.
type snapshot struct {
	Version int           `json:"version"`
	Keys    []snapshotKey `json:"keys"`
}

// snapshotKey is one key: a string, hash or sorted set, and when it
// expires (zero: never).
type snapshotKey struct {
	Key      string             `json:"k"`
	ExpireAt time.Time          `json:"exp,omitzero"`
	String   *string            `json:"s,omitempty"`
	Hash     map[string]string  `json:"h,omitempty"`
	ZSet     map[string]float64 `json:"z,omitempty"`
}

// SaveSnapshot writes the store to path atomically (temp file + rename), if
// anything changed since the last save.
func (m *Memory) SaveSnapshot(path string) error {
	writes := m.writes.Load()
	if writes == m.saved {
		return nil
	}
	now := m.advance()
	snap := snapshot{Version: snapshotVersion}
	keys := m.mr.Keys()
	sort.Strings(keys)
	for _, k := range keys {
		sk := snapshotKey{Key: k}
		if ttl := m.mr.TTL(k); ttl > 0 {
			sk.ExpireAt = now.Add(ttl)
		}
		switch m.mr.Type(k) {
		case "string":
			v, err := m.mr.Get(k)
			if err != nil {
				continue // gone meanwhile
			}
			sk.String = &v
		case "hash":
			fields, err := m.mr.HKeys(k)
			if err != nil {
				continue
			}
			sk.Hash = make(map[string]string, len(fields))
			for _, f := range fields {
				sk.Hash[f] = m.mr.HGet(k, f)
			}
		case "zset":
			z, err := m.mr.SortedSet(k)
			if err != nil {
				continue
			}
			sk.ZSet = z
		default:
			continue // the store keeps no other types
		}
		snap.Keys = append(snap.Keys, sk)
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	// Commands that changed nothing (a sighting without refresh runs a
	// script) leave the same content: the file stays as it is.
	sum := sha256.Sum256(b)
	if sum == m.savedSum {
		m.saved = writes
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".memory-store-*.tmp")
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
	m.saved, m.savedSum = writes, sum
	return nil
}

// LoadSnapshot adds the keys of the snapshot at path to the store (at
// start, when it is empty). A
// missing file is not an error: the store starts empty. A snapshot that
// does not read leaves the store empty.
func (m *Memory) LoadSnapshot(path string) error {
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
	for _, sk := range snap.Keys {
		n := 0
		for _, set := range []bool{sk.String != nil, sk.Hash != nil, sk.ZSet != nil} {
			if set {
				n++
			}
		}
		if sk.Key == "" || n != 1 {
			return fmt.Errorf("reading snapshot %q: key %q holds no single value", path, sk.Key)
		}
		for _, score := range sk.ZSet {
			if math.IsNaN(score) {
				return fmt.Errorf("reading snapshot %q: key %q has a NaN score", path, sk.Key)
			}
		}
	}
	now := m.now()
	for _, sk := range snap.Keys {
		if !sk.ExpireAt.IsZero() && !sk.ExpireAt.After(now) {
			continue // expired while the store was down
		}
		switch {
		case sk.String != nil:
			_ = m.mr.Set(sk.Key, *sk.String)
		case sk.Hash != nil:
			for f, v := range sk.Hash {
				m.mr.HSet(sk.Key, f, v)
			}
		default:
			for member, score := range sk.ZSet {
				_, _ = m.mr.ZAdd(sk.Key, score, member)
			}
		}
		if !sk.ExpireAt.IsZero() {
			m.mr.SetTTL(sk.Key, sk.ExpireAt.Sub(now))
		}
	}
	return nil
}

// Maintain expires old data and saves snapshots to path (if not "") every
// interval until stop is closed, then saves a last time.
func (m *Memory) Maintain(path string, interval time.Duration, stop <-chan struct{}, onErr func(error)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	save := func() {
		m.advance()
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
			save()
			return
		case <-tick.C:
			save()
		}
	}
}
