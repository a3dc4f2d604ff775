// Package redisstore keeps the session model in Redis: standalone,
// Sentinel or Cluster (Store), or a Redis held inside the process for a
// single instance (Memory, snapshotted to a file). It owns everything
// stored: the key layout (keys.go), the record codec (record.go), the
// shared descriptions of agents and locations (descriptions.go), the
// invalidation channel (pubsub.go) and the Lua scripts of lua/, the only
// place where a rule of the model is written (opening, limits, devices,
// per-day totals, trails, ending); both stores run those scripts.
//
// It implements store.Store and has no Caddy imports.
package redisstore
