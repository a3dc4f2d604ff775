// Package browsertest drives a real, throw-away headless Chromium from Go
// tests, over the DevTools protocol (chromedp).
//
// It owns the browser process and everything a page test needs around it:
// Start launches the distribution's Chromium (/usr/bin/chromium, or
// $CHROMIUM) with a fresh, empty profile and kills it in tb.Cleanup, also
// when the test fails; Browser.NewContext opens an isolated browser context
// (its own cookie jar, like an incognito window) with a chosen user agent
// and viewport, so one Chromium plays several users or devices. A Tab runs
// actions with a per-call timeout, records the JavaScript dialogs it
// answers, console errors, uncaught exceptions and Content-Security-Policy
// violations, and has helpers for downloads, full-page screenshots, the
// context's cookies and fetch() from inside the page.
//
// Tests wait for facts (chromedp.WaitVisible, Tab.WaitJS, Tab.Await), never
// for fixed times.
//
// Chromium must be installed: run scripts/install-browser.sh. A missing
// browser is a test failure, never a skip: a skipped page test would hide a
// broken page. Nothing is downloaded at run time; the browser never leaves
// the machine (background networking, component updates, sync and QUIC are
// off, and no proxy is used), so point it only at servers the test started.
package browsertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

const (
	// DefaultChromium is where Debian's chromium package puts the browser.
	DefaultChromium = "/usr/bin/chromium"
	// DefaultTimeout bounds each call on a Tab unless WithTimeout says
	// otherwise.
	DefaultTimeout = 15 * time.Second

	startTimeout = 30 * time.Second // launching Chromium or opening a context
	closeTimeout = 10 * time.Second // graceful close before the kill
	killTimeout  = 10 * time.Second // for leftover processes to die after SIGKILL
	logTailBytes = 4096

	installHint = "run scripts/install-browser.sh (installs Debian's chromium package), or set $CHROMIUM"
)

// Browser is one headless Chromium process owned by a test.
type Browser struct {
	ctx     context.Context // chromedp browser context; runs until Cleanup
	root    string          // the browser's $HOME; its profile is in there
	version string
}

// Start launches headless Chromium for the test with a fresh profile in
// tb.TempDir() and stops it in tb.Cleanup, whether the test passed or
// failed: a graceful close, then SIGKILL to the main process and to every
// process of this browser still alive, waiting until none is left. When
// the test binary dies without running Cleanup (-timeout, os.Exit, a kill), the
// kernel kills the main process (PDEATHSIG) and its children exit when
// they lose it. A missing or broken Chromium fails the test.
func Start(tb testing.TB) *Browser {
	tb.Helper()
	bin := os.Getenv("CHROMIUM")
	if bin == "" {
		bin = DefaultChromium
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		tb.Fatalf("browsertest: no Chromium executable at %s: %s", bin, installHint)
	}
	// Everything the browser writes stays in one directory of the test
	// (named after it): the profile, and what it puts under $HOME, such as
	// the crash handler's database. That directory's path also marks every
	// process of this browser, children and crash handler included.
	root := tb.TempDir()
	profile := filepath.Join(root, "profile")
	logPath := filepath.Join(root, "chromium.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatalf("browsertest: %v", err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(profile), // fresh and empty
		chromedp.Env("HOME="+root, "XDG_CONFIG_HOME="+root+"/.config",
			"XDG_CACHE_HOME="+root+"/.cache", "XDG_DATA_HOME="+root+"/.local/share"),
		chromedp.NoSandbox, // root in containers and CI; the pages are the test's own
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.CombinedOutput(logFile),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	tb.Cleanup(func() {
		cctx, cancel := context.WithTimeout(ctx, closeTimeout)
		_ = chromedp.Cancel(cctx) // graceful: Chromium stops its children
		cancel()
		cancelBrowser()
		cancelAlloc() // SIGKILLs the main process if still alive, and reaps it
		if err := killAll(root); err != nil {
			tb.Errorf("browsertest: %v", err)
		}
		_ = logFile.Close()
	})

	// The first call starts the browser and ties it to ctx, so it must not
	// carry a deadline of its own: a watchdog cancels it instead.
	watchdog := time.AfterFunc(startTimeout, cancelBrowser)
	err = chromedp.Do(ctx)
	watchdog.Stop()
	if err != nil {
		tb.Fatalf("browsertest: starting %s: %v\nchromium.log (tail):\n%s", bin, err, tail(logPath))
	}
	vctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	v, err := chromedp.CallBrowser(vctx, browser.GetVersion, cdp.Empty{})
	if err != nil {
		tb.Fatalf("browsertest: Browser.getVersion: %v", err)
	}
	return &Browser{ctx: ctx, root: root, version: v.Product}
}

// Version is the browser's product string, e.g. "Chrome/156.0.8078.114".
func (b *Browser) Version() string { return b.version }

// Viewport is the emulated screen of a Tab, in CSS pixels.
type Viewport struct {
	Width, Height int64
	// Scale is the device pixel ratio; 0 means 1. Screenshots are
	// Width*Scale pixels wide.
	Scale float64
	// Mobile turns on mobile emulation: the page's <meta name=viewport> is
	// honoured, the screen is portrait and touch events are on. The user
	// agent stays as it is: set a phone's with WithUserAgent.
	Mobile bool
}

// The two devices the pages are tested on.
var (
	Desktop = Viewport{Width: 1280, Height: 800}
	Phone   = Viewport{Width: 390, Height: 844, Mobile: true}
)

// Option configures a Tab.
type Option func(*tabConfig)

type tabConfig struct {
	viewport  Viewport
	userAgent string
	timeout   time.Duration
}

// WithViewport sets the emulated screen (default Desktop).
func WithViewport(v Viewport) Option { return func(c *tabConfig) { c.viewport = v } }

// WithUserAgent overrides the User-Agent header and navigator.userAgent.
func WithUserAgent(ua string) Option { return func(c *tabConfig) { c.userAgent = ua } }

// WithTimeout sets the limit for each call on the Tab (default
// DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(c *tabConfig) { c.timeout = d } }

// Tab is one page in its own browser context: a separate cookie jar, cache
// and storage, as if it were another browser on another device. Use a Tab
// from one goroutine.
type Tab struct {
	ctx         context.Context // chromedp tab context; runs until Cleanup
	timeout     time.Duration
	downloadDir string

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when a record is added
	accept  bool          // answer confirm/prompt with OK
	records
}

// NewContext opens a Tab in a new browser context and closes it (disposing
// of the context and its cookies) in tb.Cleanup. When the test has failed
// by then, everything the Tab recorded is logged.
func (b *Browser) NewContext(tb testing.TB, opts ...Option) *Tab {
	tb.Helper()
	cfg := tabConfig{viewport: Desktop, timeout: DefaultTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	tab := &Tab{timeout: cfg.timeout, changed: make(chan struct{}), downloadDir: tb.TempDir()}
	ctx, cancel := chromedp.NewContext(b.ctx,
		chromedp.WithNewBrowserContext(),
		chromedp.WithListener(tab.listen))
	tab.ctx = ctx
	tb.Cleanup(func() {
		if tb.Failed() {
			tab.logRecords(tb)
		}
		cancel()
	})

	// As in Start: the first call opens the tab and ties it to ctx.
	watchdog := time.AfterFunc(startTimeout, cancel)
	err := chromedp.Do(ctx)
	watchdog.Stop()
	if err != nil {
		tb.Fatalf("browsertest: opening a browser context: %v", err)
	}

	v := cfg.viewport
	if v.Scale == 0 {
		v.Scale = 1
	}
	vp := []chromedp.EmulateViewportOption{chromedp.EmulateScale(v.Scale)}
	if v.Mobile {
		vp = append(vp, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	setup := []chromedp.Action[chromedp.Void]{
		chromedp.EmulateViewport(v.Width, v.Height, vp...),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, runtime.AddBinding, runtime.AddBindingParams{
				Name: cspBinding, ExecutionContextName: isolatedWorld})
			if err != nil {
				return err
			}
			_, err = cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
				Source: cspListener, WorldName: isolatedWorld})
			return err
		}),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			c := chromedp.FromContext(ctx)
			_, err := cdp.Call(ctx, c.Browser, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior:         browser.SetDownloadBehaviorBehaviorAllowAndName,
				BrowserContextID: c.BrowserContextID,
				DownloadPath:     tab.downloadDir,
				EventsEnabled:    new(true),
			})
			return err
		}),
	}
	if cfg.userAgent != "" {
		setup = append(setup, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: cfg.userAgent})
			return err
		}))
	}
	tab.Do(tb, setup...)
	return tab
}

// Context is the Tab's chromedp context, without a deadline, for what the
// helpers do not cover (chromedp.Events, say). Derive a timeout from it.
func (tab *Tab) Context() context.Context { return tab.ctx }

// Do runs the actions in order, within the Tab's timeout for all of them
// together, and fails the test on the first error.
func (tab *Tab) Do(tb testing.TB, actions ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.Fatalf("browsertest: %v", tab.explain(err))
	}
}

// Run runs one action that returns a value (chromedp.Text,
// chromedp.Evaluate[T], ...) within the Tab's timeout and fails the test on
// error.
func Run[T any](tb testing.TB, tab *Tab, a chromedp.Action[T]) T {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.Fatalf("browsertest: %v", tab.explain(err))
	}
	return v
}

// WaitJS waits until the JavaScript expression is truthy in the page
// (checked on every animation frame), or fails the test after the Tab's
// timeout.
func (tab *Tab) WaitJS(tb testing.TB, expr string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.timeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(tab.timeout)))
	if err != nil {
		tb.Fatalf("browsertest: waiting for %s: %v", expr, tab.explain(err))
	}
}

// Await waits until cond, a check of what the Tab recorded (Dialogs,
// Console, CSPViolations), holds; it is re-checked whenever something is
// recorded. The test fails after the Tab's timeout, naming what.
func (tab *Tab) Await(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	timer := time.NewTimer(tab.timeout)
	defer timer.Stop()
	for {
		tab.mu.Lock()
		changed := tab.changed
		tab.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			tb.Fatalf("browsertest: no %s within %v", what, tab.timeout)
		}
	}
}

// explain adds the Tab's timeout to a deadline error, which otherwise reads
// as a bare "context deadline exceeded".
func (tab *Tab) explain(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (timeout %v)", err, tab.timeout)
	}
	return err
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
	}
	return string(b)
}

// killAll SIGKILLs every live process whose command line names a path in
// dir, until none is left. (Chromium's children rewrite their command line
// into one space-separated string; chromedp's own clean-up, which matches
// NUL-separated arguments, misses them.)
func killAll(dir string) error {
	deadline := time.Now().Add(killTimeout)
	for {
		pids := processesUsing(dir)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chromium processes %v of %s survive SIGKILL", pids, dir)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond) // for the kernel to end them
	}
}

// processesUsing lists the live processes whose command line names a path
// in dir. A zombie has an empty command line: it is dead.
func processesUsing(dir string) []int {
	mark := []byte(dir + "/")
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, mark) {
			pids = append(pids, pid)
		}
	}
	return pids
}
