// Package notify delivers alerts about risky sign-ins to operators and
// users, through a signed webhook and through e-mail.
//
// It owns the delivery side only: the Alert payload and its JSON form, the
// webhook's request signing (Sign, Verify), the e-mail rendering (default
// and operator templates) and SMTP submission, a bounded in-memory queue
// worked by a few goroutines, retries with exponential backoff and
// jitter, per-(realm, user, device) throttling, and a short in-memory log
// of delivery outcomes with counters. Deciding that a sign-in is risky
// (package tracker/risk) and which channels an alert goes to is the
// caller's business; configuration and metrics are the Caddy module's.
//
// Nothing is persisted: alerts still queued when the process stops are
// lost. It has no Caddy imports.
package notify
