package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker"
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
func needUser(r *http.Request, t *tracker.Tracker, realm, user string) error {
	if _, err := t.User(r.Context(), realm, user); err != nil {
		return storeErr(err, "user")
	}
	return nil
}

func (a *API) users(w http.ResponseWriter, r *http.Request, t *tracker.Tracker, realm string) error {
	q := r.URL.Query()
	lq, err := parseListQuery(q)
	if err != nil {
		return err
	}
	req := tracker.UsersRequest{Realm: realm, Prefix: q.Get("prefix"), Offset: lq.offset, Limit: lq.limit}
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
		list = []*tracker.UserSummary{}
	}
	out := map[string]any{"users": list, "total": total, "offset": lq.offset, "limit": lq.limit}
	if next := lq.offset + len(list); next < total {
		out["next_offset"] = next
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) devices(w http.ResponseWriter, r *http.Request, t *tracker.Tracker, realm, user string, rest []string) error {
	ctx := r.Context()
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		if err := needUser(r, t, realm, user); err != nil {
			return err
		}
		devs, err := t.Devices(ctx, realm, user)
		if err != nil {
			return storeErr(err, "user")
		}
		if devs == nil {
			devs = []*tracker.Device{}
		}
		return writeJSON(w, http.StatusOK, map[string]any{"devices": devs})
	case len(rest) == 1 && r.Method == http.MethodPut:
		var body struct {
			Blocked *bool `json:"blocked"`
		}
		if err := decodeBody(r, &body); err != nil {
			return err
		}
		if body.Blocked == nil {
			return apiErr(http.StatusBadRequest, "blocked: required, true or false")
		}
		closed, err := t.BlockDevice(ctx, realm, user, rest[0], *body.Blocked)
		if err != nil {
			return storeErr(err, "device")
		}
		if closed == nil {
			closed = []*tracker.Session{}
		}
		return writeJSON(w, http.StatusOK, map[string]any{"device": rest[0], "blocked": *body.Blocked, "ended_sessions": closed})
	case len(rest) == 0:
		return methodNotAllowed(r, http.MethodGet)
	case len(rest) == 1:
		return methodNotAllowed(r, http.MethodPut)
	}
	return apiErr(http.StatusNotFound, "no such endpoint %s", r.URL.Path)
}

func (a *API) violations(w http.ResponseWriter, r *http.Request, t *tracker.Tracker, realm, user string, rest []string) error {
	ctx := r.Context()
	if len(rest) > 1 {
		return apiErr(http.StatusNotFound, "no such endpoint %s", r.URL.Path)
	}
	switch r.Method {
	case http.MethodGet:
		if len(rest) == 1 {
			return methodNotAllowed(r, http.MethodPatch)
		}
		if err := needUser(r, t, realm, user); err != nil {
			return err
		}
		lq, err := parseListQuery(r.URL.Query())
		if err != nil {
			return err
		}
		list, total, err := t.Violations(ctx, realm, user, lq.offset, lq.limit)
		if err != nil {
			return storeErr(err, "user")
		}
		if list == nil {
			list = []*restrict.Violation{}
		}
		out := map[string]any{"violations": list, "total": total, "offset": lq.offset, "limit": lq.limit}
		if next := lq.offset + len(list); next < total {
			out["next_offset"] = next
		}
		return writeJSON(w, http.StatusOK, out)
	case http.MethodPatch:
		var body struct {
			Viewed *bool `json:"viewed"`
		}
		if err := decodeBody(r, &body); err != nil {
			return err
		}
		if body.Viewed == nil || !*body.Viewed {
			return apiErr(http.StatusBadRequest, "viewed: required, and only true can be set")
		}
		if err := needUser(r, t, realm, user); err != nil {
			return err
		}
		id := ""
		if len(rest) == 1 {
			id = rest[0]
		}
		left, err := t.MarkViewed(ctx, realm, user, id)
		if err != nil {
			return storeErr(err, "violation")
		}
		return writeJSON(w, http.StatusOK, map[string]any{"unviewed_violations": left})
	}
	if len(rest) == 1 {
		return methodNotAllowed(r, http.MethodPatch)
	}
	return methodNotAllowed(r, http.MethodGet, http.MethodPatch)
}

func (a *API) exempt(w http.ResponseWriter, r *http.Request, t *tracker.Tracker, realm, user string, rest []string) error {
	if len(rest) > 0 {
		return apiErr(http.StatusNotFound, "no such endpoint %s", r.URL.Path)
	}
	if r.Method != http.MethodPut {
		return methodNotAllowed(r, http.MethodPut)
	}
	var body struct {
		Exempt *bool `json:"exempt"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.Exempt == nil {
		return apiErr(http.StatusBadRequest, "exempt: required, true or false")
	}
	if err := needUser(r, t, realm, user); err != nil {
		return err
	}
	if err := t.SetExempt(r.Context(), realm, user, *body.Exempt); err != nil {
		return storeErr(err, "user")
	}
	return writeJSON(w, http.StatusOK, map[string]any{"user": user, "exempt": *body.Exempt})
}

func (a *API) limits(w http.ResponseWriter, r *http.Request, t *tracker.Tracker, realm, user string, rest []string) error {
	if len(rest) > 0 {
		return apiErr(http.StatusNotFound, "no such endpoint %s", r.URL.Path)
	}
	if r.Method != http.MethodPut {
		return methodNotAllowed(r, http.MethodPut)
	}
	var l restrict.Limits
	if err := decodeBody(r, &l); err != nil {
		return err
	}
	if err := l.Validate(); err != nil {
		return apiErr(http.StatusBadRequest, "%v", err)
	}
	if err := needUser(r, t, realm, user); err != nil {
		return err
	}
	if err := t.SetLimits(r.Context(), realm, user, l); err != nil {
		return storeErr(err, "user")
	}
	return writeJSON(w, http.StatusOK, map[string]any{"user": user, "limits": l})
}
