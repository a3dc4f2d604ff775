// Package tracker is the request-path core of caddy-sessions: it
// identifies a request's session (token HMACs, device identity, tokens.go,
// observe.go), answers known sessions from a bounded cache (cache.go),
// queues throttled refreshes, keeps revocations it has learnt of as a
// local deny list enforced while the store is unreachable (deny.go), and
// derives the admin reports (activity.go). It drives a store.Store
// (packages store and redisstore) and enrichment (package enrich).
//
// It has no Caddy imports: the HTTP module in the root package drives it.
package tracker
