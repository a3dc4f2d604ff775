package browsertest

import (
	"bytes"
	"fmt"
	"html/template"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// serve starts a test server with the given pages; unknown paths are 404.
func serve(t *testing.T, pages map[string]http.HandlerFunc) string {
	t.Helper()
	mux := http.NewServeMux()
	for path, h := range pages {
		mux.HandleFunc(path, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func html(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><meta charset=utf-8><meta name=viewport content="width=device-width"><title>t</title>`+body)
	}
}

const whoPage = `<p id=who>%s</p>`

func TestSeparateCookieJars(t *testing.T) {
	url := serve(t, map[string]http.HandlerFunc{
		"GET /login": func(w http.ResponseWriter, r *http.Request) {
			u := r.URL.Query().Get("u")
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: u, Path: "/", HttpOnly: true})
			fmt.Fprintf(w, whoPage, template.HTMLEscapeString(u))
		},
		"GET /whoami": func(w http.ResponseWriter, r *http.Request) {
			who := "nobody"
			if c, err := r.Cookie("sid"); err == nil {
				who = c.Value
			}
			fmt.Fprintf(w, whoPage, template.HTMLEscapeString(who))
		},
	})
	b := Start(t)
	alice, bob, carol := b.NewContext(t), b.NewContext(t, WithViewport(Phone)), b.NewContext(t)
	for _, c := range []struct {
		tab  *Tab
		user string
	}{{alice, "alice"}, {bob, "bob"}} {
		c.tab.Do(t, chromedp.Navigate(url+"/login?u="+c.user), chromedp.WaitVisible(chromedp.ID("who")))
	}
	for _, c := range []struct {
		tab  *Tab
		want string
	}{{alice, "alice"}, {bob, "bob"}, {carol, "nobody"}} {
		c.tab.Do(t, chromedp.Navigate(url+"/whoami"))
		if got := Run(t, c.tab, chromedp.Text(chromedp.ID("who"))); got != c.want {
			t.Errorf("server saw %q, want %q", got, c.want)
		}
		var sids []string
		for _, k := range c.tab.Cookies(t) {
			if k.Name == "sid" {
				sids = append(sids, k.Value)
				if !k.HTTPOnly {
					t.Errorf("cookie %s lost HttpOnly", k.Name)
				}
			}
		}
		var want []string
		if c.want != "nobody" {
			want = []string{c.want}
		}
		if !slices.Equal(sids, want) {
			t.Errorf("%s: Cookies sid = %q, want %q", c.want, sids, want)
		}
	}
}

func TestDialogs(t *testing.T) {
	url := serve(t, map[string]http.HandlerFunc{
		"GET /{$}": html(`<button id=revoke onclick="out.textContent = confirm('Revoke Firefox on Linux?') ? 'revoked' : 'kept'">Revoke</button>
<p id=out></p><img src=x onerror="alert('xss')">`),
	})
	tab := Start(t).NewContext(t)
	tab.Do(t, chromedp.Navigate(url))
	tab.Await(t, "alert", func() bool { return len(tab.Dialogs()) == 1 })

	tab.Do(t, chromedp.Click(chromedp.ID("revoke")))
	tab.WaitJS(t, `out.textContent === 'kept'`)
	tab.AcceptDialogs(true)
	tab.Do(t, chromedp.Click(chromedp.ID("revoke")))
	tab.WaitJS(t, `out.textContent === 'revoked'`)

	want := []Dialog{
		{Type: "alert", Message: "xss", URL: url + "/", Accepted: true},
		{Type: "confirm", Message: "Revoke Firefox on Linux?", URL: url + "/", Accepted: false},
		{Type: "confirm", Message: "Revoke Firefox on Linux?", URL: url + "/", Accepted: true},
	}
	if got := tab.Dialogs(); !slices.Equal(got, want) {
		t.Errorf("Dialogs =\n%+v\nwant\n%+v", got, want)
	}
}

// fakeTB records what ExpectClean reports.
type fakeTB struct {
	testing.TB
	errors []string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func TestConsoleErrorsAndExceptions(t *testing.T) {
	url := serve(t, map[string]http.HandlerFunc{
		"GET /{$}": html(`<script>console.log('hello'); console.error('boom', 42);
setTimeout(() => { throw new Error('uncaught!') }, 0);</script>`),
	})
	tab := Start(t).NewContext(t)
	tab.Do(t, chromedp.Navigate(url))
	tab.Await(t, "uncaught exception", func() bool { return len(tab.Errors()) == 2 })

	errs := tab.Errors()
	if m := errs[0]; m.Source != "console-api" || m.Level != "error" || m.Text != "boom 42" || m.URL != url+"/" {
		t.Errorf("console error = %s", m)
	}
	if m := errs[1]; m.Level != "exception" || !strings.Contains(m.Text, "Error: uncaught!") {
		t.Errorf("exception = %s", m)
	}
	if m := tab.Console()[0]; m.Level != "log" || m.Text != "hello" {
		t.Errorf("first message = %s, want the console.log", m)
	}
	f := &fakeTB{TB: t}
	tab.ExpectClean(f)
	if len(f.errors) != 2 {
		t.Errorf("ExpectClean reported %q, want the error and the exception", f.errors)
	}
}

func TestCSPViolations(t *testing.T) {
	const csp = "default-src 'self'"
	strict := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", csp)
			h(w, r)
		}
	}
	url := serve(t, map[string]http.HandlerFunc{
		"GET /inline": strict(html(`<p id=p>x</p><script>document.title = 'inline ran'</script>
<img src=x onerror="alert(1)"><script src=/app.js></script>`)),
		"GET /clean": strict(html(`<p id=p>x</p><script src=/app.js></script>`)),
		"GET /app.js": strict(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/javascript")
			fmt.Fprint(w, `document.body.dataset.app = 'ran';`)
		}),
	})
	b := Start(t)

	tab := b.NewContext(t)
	tab.Do(t, chromedp.Navigate(url+"/inline"))
	tab.WaitJS(t, `document.body.dataset.app === 'ran'`) // same-origin script allowed
	tab.Await(t, "two CSP violations", func() bool { return len(tab.CSPViolations()) == 2 })
	for i, dir := range []string{"script-src-elem", "script-src-attr"} {
		v := tab.CSPViolations()[i]
		if v.Directive != dir || v.BlockedURI != "inline" || v.Disposition != "enforce" || v.DocumentURI != url+"/inline" {
			t.Errorf("violation %d = %+v, want inline %s", i, v, dir)
		}
	}
	if title := Run(t, tab, chromedp.Title()); title == "inline ran" {
		t.Error("the inline script ran despite the CSP")
	}
	if d := tab.Dialogs(); len(d) != 0 {
		t.Errorf("the blocked onerror handler opened %+v", d)
	}
	var security int
	for _, m := range tab.Errors() {
		if m.Source == "security" && strings.Contains(m.Text, "Content Security Policy") {
			security++
		}
	}
	if security != 2 {
		t.Errorf("console has %d security errors, want 2: %v", security, tab.Console())
	}

	clean := b.NewContext(t)
	clean.Do(t, chromedp.Navigate(url+"/clean"))
	clean.WaitJS(t, `document.body.dataset.app === 'ran'`)
	clean.ExpectClean(t)
}

func TestDownload(t *testing.T) {
	data := []byte("user,device\nalice,Firefox on Linux\n\x00\xff\xfe binary tail")
	url := serve(t, map[string]http.HandlerFunc{
		"GET /{$}": html(`<a id=export href=/export>Export</a>`),
		"GET /export": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/csv")
			w.Header().Set("Content-Disposition", `attachment; filename="sessions.csv"`)
			_, _ = w.Write(data)
		},
	})
	tab := Start(t).NewContext(t)
	tab.Do(t, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("export")))
	d := tab.Download(t, chromedp.Click(chromedp.ID("export")))
	if !bytes.Equal(d.Data, data) || d.Filename != "sessions.csv" || d.URL != url+"/export" {
		t.Errorf("Download = %q %q %q, want sessions.csv from /export with %q", d.Filename, d.URL, d.Data, data)
	}
}

func TestScreenshotAndViewport(t *testing.T) {
	url := serve(t, map[string]http.HandlerFunc{
		"GET /{$}": html(`<style>body{margin:0}</style><div id=tall style="height:2000px;background:linear-gradient(#c00,#00c)">tall</div>`),
	})
	b := Start(t)
	for _, c := range []struct {
		name  string
		vp    Viewport
		touch bool
	}{{"phone", Phone, true}, {"desktop", Desktop, false}} {
		t.Run(c.name, func(t *testing.T) {
			tab := b.NewContext(t, WithViewport(c.vp))
			tab.Do(t, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("tall")))
			if w := Run(t, tab, chromedp.Evaluate[int64](`window.innerWidth`)); w != c.vp.Width {
				t.Errorf("innerWidth = %d, want %d", w, c.vp.Width)
			}
			if touch := Run(t, tab, chromedp.Evaluate[bool](`navigator.maxTouchPoints > 0`)); touch != c.touch {
				t.Errorf("touch = %v, want %v", touch, c.touch)
			}
			path := filepath.Join(t.TempDir(), c.name+".png")
			tab.Screenshot(t, path)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatalf("screenshot is not a PNG: %v", err)
			}
			if size := img.Bounds().Size(); size.X != int(c.vp.Width) || size.Y < 2000 {
				t.Errorf("screenshot is %v, want %d wide and the whole 2000px page high", size, c.vp.Width)
			}
		})
	}
}

func TestUserAgent(t *testing.T) {
	const ua = `Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) <img src=x onerror=alert(1)>`
	var mu sync.Mutex
	var seen []string
	shown := template.Must(template.New("").Parse(`<p id=ua>{{.}}</p>`))
	url := serve(t, map[string]http.HandlerFunc{
		"GET /escaped": func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.UserAgent())
			mu.Unlock()
			_ = shown.Execute(w, r.UserAgent())
		},
		"GET /unescaped": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `<p id=ua>%s</p>`, r.UserAgent()) // the bug the pages must not have
		},
	})
	b := Start(t)

	tab := b.NewContext(t, WithUserAgent(ua), WithViewport(Phone))
	tab.Do(t, chromedp.Navigate(url+"/escaped"))
	if got := Run(t, tab, chromedp.Text(chromedp.ID("ua"))); got != ua {
		t.Errorf("page shows %q", got)
	}
	if got := Run(t, tab, chromedp.Evaluate[string](`navigator.userAgent`)); got != ua {
		t.Errorf("navigator.userAgent = %q", got)
	}
	mu.Lock()
	if !slices.Equal(seen, []string{ua}) {
		t.Errorf("server saw User-Agent %q, want %q", seen, ua)
	}
	mu.Unlock()
	tab.ExpectClean(t) // the image did not fail: it is text

	// The control: the same user agent rendered unescaped runs.
	bad := b.NewContext(t, WithUserAgent(ua))
	bad.Do(t, chromedp.Navigate(url+"/unescaped"))
	bad.Await(t, "alert from the injected user agent", func() bool { return len(bad.Dialogs()) == 1 })
}

func TestFetch(t *testing.T) {
	url := serve(t, map[string]http.HandlerFunc{
		"GET /login": func(w http.ResponseWriter, r *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "alice", Path: "/", HttpOnly: true})
			fmt.Fprint(w, "logged in")
		},
		"POST /api": func(w http.ResponseWriter, r *http.Request) {
			sid := ""
			if c, err := r.Cookie("sid"); err == nil {
				sid = c.Value
			}
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Reply", "ok")
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, "%s %s %s %s", r.Method, r.Header.Get("X-Test"), sid, body)
		},
	})
	tab := Start(t).NewContext(t)
	tab.Do(t, chromedp.Navigate(url+"/login"))
	got := tab.Fetch(t, "POST", "/api", map[string]string{"X-Test": "yes"}, "payload")
	if got.Status != http.StatusCreated || got.Body != "POST yes alice payload" || got.Header["x-reply"] != "ok" {
		t.Errorf("Fetch = %+v", got)
	}
}

// TestBrowserIsStopped checks that Cleanup leaves no process of the
// test's Chromium running and removes its directory: after a passing
// test, after a failing one and after a test binary that exited in the
// middle of a test (no Cleanup runs, as on -timeout: the kernel kills
// Chromium and its children follow).
func TestBrowserIsStopped(t *testing.T) {
	if mode := os.Getenv("BROWSERTEST_CHILD"); mode != "" {
		b := Start(t)
		fmt.Printf("BROWSERDIR=%s\n", b.root)
		if mode == "exit" {
			os.Exit(3) // no Cleanup, no TempDir removal
		}
		t.Fatal("failing on purpose; Cleanup must still stop the browser")
	}

	var dir string
	t.Run("passing", func(t *testing.T) {
		b := Start(t)
		t.Logf("%s", b.Version())
		if !strings.Contains(b.Version(), "Chrome/") {
			t.Errorf("Version = %q", b.Version())
		}
		dir = b.root
		if n := len(processesUsing(dir)); n < 4 {
			t.Fatalf("%d processes use %s; want the browser, its crash handler and children", n, dir)
		}
	})
	expectGone(t, dir)

	for _, mode := range []string{"fail", "exit"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrowserIsStopped$", "-test.count=1")
			cmd.Env = append(os.Environ(), "BROWSERTEST_CHILD="+mode)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("child test passed:\n%s", out)
			}
			m := regexp.MustCompile(`BROWSERDIR=(\S+)`).FindSubmatch(out)
			if m == nil {
				t.Fatalf("child printed no BROWSERDIR:\n%s", out)
			}
			dir := string(m[1])
			if mode == "exit" {
				// Nothing removed the dead binary's TempDir.
				t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(dir)) })
				awaitGone(t, dir)
				return
			}
			expectGone(t, dir)
		})
	}
}

func expectGone(t *testing.T, dir string) {
	t.Helper()
	if pids := processesUsing(dir); len(pids) > 0 {
		t.Errorf("processes %v still use %s after Cleanup", pids, dir)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s not removed: %v", dir, err)
	}
}

// awaitGone waits for the processes of a dead test binary's browser to
// exit: Chromium's children notice that their parent died on their own.
func awaitGone(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(DefaultTimeout)
	for len(processesUsing(dir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("processes %v still use %s %v after their test binary died", processesUsing(dir), dir, DefaultTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
