package tracker

// Tokens: their store-wide hashes, their bindings to a realm and user,
// logins, ends, rotated and second cookies (aliases).

import (
	"context"
	"strings"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// TokenHash is the stored form of a raw token in a realm.
//
// Tokens are hashed store-wide, not per realm: a token belongs to the realm
// it was bound in at login (its binding says which), so a client cannot
// take it to another realm, where it would be unknown, by changing the
// request's host.
func (t *Tracker) TokenHash(token string) string { return t.cfg.Keys.TokenHash(TokenScope, token) }

// TokenScope is the realm argument of every token hash: tokens are hashed
// store-wide (see TokenHash).
const TokenScope = ""

func (t *Tracker) tokenKey(token string) TokenKey { return t.cfg.Keys.TokenKey(TokenScope, token) }

// binding is the stored login binding of a token: realm and user. A
// binding starting with NUL is a marker (erasedUser).
func binding(realm, user string) string { return realm + "\x00" + user }

// parseBinding reads a binding; one without a realm (written before
// bindings carried it) belongs to fallback.
func parseBinding(b, fallback string) (realm, user string) {
	if b == "" || b[0] == 0 {
		return fallback, b
	}
	if r, u, ok := strings.Cut(b, "\x00"); ok {
		return r, u
	}
	return fallback, b
}

// Login records an observed successful login: token now belongs to user and
// a new session starts, replacing one the same token may have had.
func (t *Tracker) Login(ctx context.Context, r Request) (Result, error) {
	key := t.tokenKey(r.Token)
	t.denied.lift(key) // a login on a held token opens it again
	th := key.String()
	if err := t.cfg.Store.BindToken(ctx, th, binding(r.Realm, r.User), t.cfg.Policy.Retention); err != nil {
		return Result{}, err
	}
	res, err := t.observeStore(ctx, key, r, t.now(), true)
	if err == nil {
		// Other instances may remember this token as anonymous.
		_ = t.tellOthers(ctx, store.Invalidation{Realm: r.Realm, TokenHash: th})
	}
	return res, err
}

// End ends the session of token (user may be "": the binding tells) for
// reason, such as EndLogout. A token ended as logged out, revoked or
// evicted stays refused for the revoke hold; with forget (a token made from
// the device, not an app cookie) it is forgotten instead, so the device
// can sign in again.
func (t *Tracker) End(ctx context.Context, realm, token, user, reason string, forget bool) (*store.Session, error) {
	key := t.tokenKey(token)
	th := key.String()
	t.cache.remove(key)
	b, err := t.cfg.Store.TokenUser(ctx, th)
	if err != nil {
		return nil, err
	}
	if b != "" && b[0] != 0 {
		realm, user = parseBinding(b, realm)
	} else if user == "" {
		return nil, nil
	}
	s, err := t.cfg.Store.EndToken(ctx, realm, user, th, reason, forget, t.now(), t.cfg.Policy)
	if err != nil {
		return nil, err
	}
	if forget || !store.HoldsToken(reason) {
		if err := t.cfg.Store.UnbindToken(ctx, th); err != nil {
			return s, err
		}
	}
	// Every cached token of the user goes: the session may have had
	// other tokens (rotated, or a second cookie of the login). A held
	// token goes on every instance's deny list.
	inv := store.Invalidation{Realm: realm, UserTag: t.cfg.Keys.UserTag(realm, user), TokenHash: th}
	if !forget && store.HoldsToken(reason) {
		inv.Deny = reason
		if s != nil {
			inv.Sessions = []string{s.ID}
			inv.Tokens, _ = t.cfg.Store.SessionTokens(ctx, realm, user, inv.Sessions)
		}
	}
	_ = t.announce(ctx, inv)
	if s != nil {
		t.closed(s)
	}
	return s, nil
}

// undoOpen removes a session just opened for an erased user's token: all
// of the user if it is all there is (nothing of the erased user comes
// back), else that session only, ended as erased.
func (t *Tracker) undoOpen(ctx context.Context, realm, user, id, tokenHash string) {
	if _, n, err := t.cfg.Store.Sessions(ctx, store.ListRequest{Realm: realm, User: user, State: "all", Limit: 2, Now: t.now(), Policy: t.cfg.Policy}); err == nil && n <= 1 {
		_, _ = t.cfg.Store.Erase(ctx, realm, user)
		// Erase unbound the token: bind it to "erased" again.
		_ = t.cfg.Store.BindToken(ctx, tokenHash, erasedUser, t.cfg.Policy.RevokeHold)
		return
	}
	_, _ = t.cfg.Store.EndSession(ctx, realm, user, id, store.EndErased, t.now(), t.cfg.Policy)
}

// TokenUser is the user a raw token was bound to at login, or "".
func (t *Tracker) TokenUser(ctx context.Context, token string) (string, error) {
	b, err := t.cfg.Store.TokenUser(ctx, t.TokenHash(token))
	_, u := parseBinding(b, "")
	if u == erasedUser {
		u = ""
	}
	return u, err
}

// Alias binds another token to an active session of user: a session
// cookie the app rotated, or a second cookie of the same login (an app
// that authenticates different paths with different cookies). The
// session goes on under either token; ending it refuses both. false if
// the session is no longer active: the token then shares its end (a
// rotation racing a revocation yields a refused token, never a free one).
func (t *Tracker) Alias(ctx context.Context, realm, user, sessionID, token string) (bool, error) {
	key := t.tokenKey(token)
	th := key.String()
	if err := t.cfg.Store.BindToken(ctx, th, binding(realm, user), t.cfg.Policy.Retention); err != nil {
		return false, err
	}
	ok, err := t.cfg.Store.AliasToken(ctx, realm, user, th, sessionID)
	if err != nil {
		return false, err
	}
	t.cache.remove(key)
	// Other instances may remember this token as anonymous.
	_ = t.tellOthers(ctx, store.Invalidation{Realm: realm, TokenHash: th})
	return ok, nil
}
