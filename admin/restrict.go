package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/caddy-sessions/caddy-sessions/notify"

	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// maxBody bounds admin request bodies.
const maxBody = 64 << 10

// decodeBody reads a JSON object into v, refusing unknown fields, so that a
// typo is a 400 naming the field instead of a silent no-op.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return apiErr(http.StatusBadRequest, "%s: want %s, got %s", te.Field, te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return apiErr(http.StatusBadRequest, "%s", strings.TrimPrefix(err.Error(), "json: "))
		case errors.Is(err, io.EOF):
			return apiErr(http.StatusBadRequest, "empty body: want a JSON object")
		}
		return apiErr(http.StatusBadRequest, "bad JSON body: %v", err)
	}
	if dec.More() {
		return apiErr(http.StatusBadRequest, "bad JSON body: more than one JSON value")
	}
	return nil
}

// needUser answers 404 for a user the store holds nothing of.
func needUser(c *call, user string) error {
	if _, err := c.t.User(c.r.Context(), c.realm, user); err != nil {
		return storeErr(err, "user")
	}
	return nil
}

// users pages through a realm's users by last activity.
func (a *API) users(c *call) error {
	w, r, t, realm := c.w, c.r, c.t, c.realm
	q := r.URL.Query()
	lq, err := parseListQuery(q)
	if err != nil {
		return err
	}
	req := store.UsersRequest{Realm: realm, Prefix: q.Get("prefix"), Offset: lq.offset, Limit: lq.limit}
	switch v := q.Get("violations"); v {
	case "":
	case "unviewed":
		req.Unviewed = true
	default:
		return apiErr(http.StatusBadRequest, "violations: %q is not unviewed", v)
	}
	switch v := q.Get("active"); v {
	case "", "false":
	case "true":
		req.Active = true
	default:
		return apiErr(http.StatusBadRequest, "active: %q is not true or false", v)
	}
	list, total, err := t.Users(r.Context(), req)
	if err != nil {
		return storeErr(err, "user")
	}
	if list == nil {
		list = []*store.UserSummary{}
	}
	out := map[string]any{"users": list, "total": total, "offset": lq.offset, "limit": lq.limit}
	if next := lq.offset + len(list); next < total {
		out["next_offset"] = next
	}
	return writeJSON(w, http.StatusOK, out)
}

// devices lists a user's devices, most recent first.
func (a *API) devices(c *call) error {
	user := c.user()
	if err := needUser(c, user); err != nil {
		return err
	}
	devs, err := c.t.Devices(c.r.Context(), c.realm, user)
	if err != nil {
		return storeErr(err, "user")
	}
	if devs == nil {
		devs = []*store.Device{}
	}
	return writeJSON(c.w, http.StatusOK, map[string]any{"devices": devs})
}

// blockDevice blocks or unblocks one device.
func (a *API) blockDevice(c *call) error {
	var body struct {
		Blocked *bool `json:"blocked"`
	}
	if err := decodeBody(c.r, &body); err != nil {
		return err
	}
	if body.Blocked == nil {
		return apiErr(http.StatusBadRequest, "blocked: required, true or false")
	}
	device := c.param("device")
	closed, err := c.t.BlockDevice(c.r.Context(), c.realm, c.user(), device, *body.Blocked)
	if err != nil {
		return storeErr(err, "device")
	}
	if closed == nil {
		closed = []*store.Session{}
	}
	return writeJSON(c.w, http.StatusOK, map[string]any{"device": device, "blocked": *body.Blocked, "ended_sessions": closed})
}

// violations pages through a user's violations, newest first.
func (a *API) violations(c *call) error {
	user := c.user()
	if err := needUser(c, user); err != nil {
		return err
	}
	lq, err := parseListQuery(c.r.URL.Query())
	if err != nil {
		return err
	}
	list, total, err := c.t.Violations(c.r.Context(), c.realm, user, lq.offset, lq.limit)
	if err != nil {
		return storeErr(err, "user")
	}
	return writeJSON(c.w, http.StatusOK, pageOf("violations", list, total, lq))
}

// risks pages through a user's risk findings, newest first.
func (a *API) risks(c *call) error {
	user := c.user()
	if err := needUser(c, user); err != nil {
		return err
	}
	lq, err := parseListQuery(c.r.URL.Query())
	if err != nil {
		return err
	}
	list, total, err := c.t.Risks(c.r.Context(), c.realm, user, lq.offset, lq.limit)
	if err != nil {
		return storeErr(err, "user")
	}
	return writeJSON(c.w, http.StatusOK, pageOf("risk", list, total, lq))
}

// alerts lists the delivery outcomes of a user's risk alerts sent by
// this instance, newest first; none where alerts are not configured.
func (a *API) alerts(c *call) error {
	user := c.user()
	if err := needUser(c, user); err != nil {
		return err
	}
	list := []notify.Outcome{}
	if al, ok := c.t.(Alerter); ok {
		if got := al.AlertOutcomes(c.realm, user); got != nil {
			list = got
		}
	}
	return writeJSON(c.w, http.StatusOK, map[string]any{"alerts": list})
}

// markViewed marks one violation ({id}) or all of them viewed.
func (a *API) markViewed(c *call) error {
	var body struct {
		Viewed *bool `json:"viewed"`
	}
	if err := decodeBody(c.r, &body); err != nil {
		return err
	}
	if body.Viewed == nil || !*body.Viewed {
		return apiErr(http.StatusBadRequest, "viewed: required, and only true can be set")
	}
	user := c.user()
	if err := needUser(c, user); err != nil {
		return err
	}
	left, err := c.t.MarkViewed(c.r.Context(), c.realm, user, c.param("id"))
	if err != nil {
		return storeErr(err, "violation")
	}
	return writeJSON(c.w, http.StatusOK, map[string]any{"unviewed_violations": left})
}

// exempt turns a user's limit checks off or on.
func (a *API) exempt(c *call) error {
	var body struct {
		Exempt *bool `json:"exempt"`
	}
	if err := decodeBody(c.r, &body); err != nil {
		return err
	}
	if body.Exempt == nil {
		return apiErr(http.StatusBadRequest, "exempt: required, true or false")
	}
	user := c.user()
	if err := needUser(c, user); err != nil {
		return err
	}
	if err := c.t.SetExempt(c.r.Context(), c.realm, user, *body.Exempt); err != nil {
		return storeErr(err, "user")
	}
	return writeJSON(c.w, http.StatusOK, map[string]any{"user": user, "exempt": *body.Exempt})
}

// limits sets a user's limit overrides.
func (a *API) limits(c *call) error {
	var l restrict.Limits
	if err := decodeBody(c.r, &l); err != nil {
		return err
	}
	if err := l.Validate(); err != nil {
		return apiErr(http.StatusBadRequest, "%v", err)
	}
	user := c.user()
	if err := needUser(c, user); err != nil {
		return err
	}
	if err := c.t.SetLimits(c.r.Context(), c.realm, user, l); err != nil {
		return storeErr(err, "user")
	}
	return writeJSON(c.w, http.StatusOK, map[string]any{"user": user, "limits": l})
}
