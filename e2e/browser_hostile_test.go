package e2e

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-sessions/caddy-sessions/internal/browsertest"
)

// hostileUser is a user id an app may well accept: markup, a spreadsheet
// formula, hash-tag braces, key separators, a slash, a percent escape and
// a dot segment. (ASCII: a browser does not send other bytes in a header
// the same way on every request.)
const hostileUser = `=HYPERLINK("x")<img src=x onerror=alert(1)>{tag}:*/%2F../`

// A hostile user id, as an app names it (a user placeholder), goes through
// the dashboard as text: listed, its page opened, its sessions shown, its
// CSV neutralised; no dialog, no console error, no CSP violation.
func TestBrowserHostileUserID(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret admin"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	const realm = "hostile"
	c := startCaddy(t, caddyfile("", `route /admin/sessions* {
	basic_auth {
		admin `+string(hash)+`
	}
	sessions_admin /admin/sessions
}
sessions {
	store memory
	realm `+realm+`
	user {http.request.header.X-User}
}
respond "hello"`))

	b := browsertest.Start(t)
	user := b.NewContext(t, browsertest.WithUserAgent(uaChromeWindows))
	user.Do(t, extraHeaders(map[string]string{"X-User": hostileUser, "X-Forwarded-For": ipLondon}))
	if r := open(t, user, c.Site+"/"); r.Status != 200 {
		t.Fatalf("the hostile user's request: %d", r.Status)
	}
	if l := c.Sessions(t, realm, hostileUser, "active"); len(l.Sessions) != 1 {
		t.Fatalf("the hostile user's session: %s", dump(l))
	}

	admin := b.NewContext(t)
	adminSignIn(t, admin, c.Site)
	open(t, admin, c.Site+"/admin/sessions/#/realm/"+realm)
	admin.WaitJS(t, `document.querySelectorAll('#users tbody tr[data-user]').length === 1`)
	if got := evalJS[string](t, admin, `document.querySelector('#users tbody tr[data-user]').dataset.user`); got != hostileUser {
		t.Errorf("users list row for %q", got)
	}
	if evalJS[int](t, admin, `document.querySelectorAll('#users img, [onerror]').length`) != 0 {
		t.Error("the user id became markup in the users list")
	}
	// Its page, through the link in the list.
	admin.Do(t, chromedp.Click(chromedp.CSS(`#users tbody tr[data-user] a`)))
	admin.WaitJS(t, `document.querySelectorAll('#history tbody tr[data-session]').length === 1`)
	if h := evalJS[string](t, admin, `document.querySelector('h1, h2').textContent`); !strings.Contains(h, hostileUser) {
		t.Errorf("the user page's heading %q does not show the id as text", h)
	}
	// The CSV: the id is there, neutralised.
	admin.Do(t, chromedp.Click(chromedp.ID("export-menu")))
	admin.WaitJS(t, `!document.getElementById('export-list').hidden`)
	d := admin.Download(t, chromedp.Click(chromedp.ID("export-csv")))
	recs, err := csv.NewReader(bytes.NewReader(d.Data)).ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("CSV (%v):\n%s", err, d.Data)
	}
	if got := recs[1][2]; got != "'"+hostileUser {
		t.Errorf("CSV user cell %q, want the id behind a quote", got)
	}
	expectClean(t, "admin", admin)
	expectClean(t, "user", user)
	if n := len(admin.Dialogs()) + len(user.Dialogs()); n != 0 {
		t.Errorf("%d dialogs", n)
	}
}
