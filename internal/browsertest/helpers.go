package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Download is a file the page downloaded.
type Download struct {
	Filename string // the name Chromium suggested (Content-Disposition, download attribute or URL)
	URL      string
	Data     []byte
}

// Download runs trigger (a click on an export link, say), waits for the
// download it starts in this Tab's page to complete and returns the file.
// The test fails if no download starts or it does not complete within the
// Tab's timeout, or it is cancelled. Downloads go to a temporary directory
// of the Tab.
func (tab *Tab) Download(tb testing.TB, trigger ...chromedp.Action[chromedp.Void]) Download {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.timeout)
	defer cancel()
	// Subscribe first: the events queue from here on, so none is missed.
	begun := chromedp.BrowserEvents(ctx, browser.DownloadWillBegin)
	progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	if err := chromedp.Do(ctx, trigger...); err != nil {
		tb.Fatalf("browsertest: download trigger: %v", tab.explain(err))
	}
	// The main frame's id is the tab's target id: downloads of other tabs
	// (running in parallel) are not ours.
	mainFrame := cdp.FrameID(chromedp.FromContext(tab.ctx).Target.TargetID)
	var d Download
	var guid string
	for ev, err := range begun {
		if err != nil {
			tb.Fatalf("browsertest: no download started: %v", tab.explain(err))
		}
		if ev.FrameID == mainFrame {
			d.Filename, d.URL, guid = ev.SuggestedFilename, ev.URL, ev.GUID
			break
		}
	}
	if guid == "" {
		tb.Fatalf("browsertest: no download started: the browser stopped sending events")
	}
	for ev, err := range progress {
		if err != nil {
			tb.Fatalf("browsertest: download of %s did not complete: %v", d.URL, tab.explain(err))
		}
		if ev.GUID != guid {
			continue
		}
		switch ev.State {
		case browser.DownloadProgressStateCompleted:
			// allowAndName saves the file under its GUID.
			data, err := os.ReadFile(filepath.Join(tab.downloadDir, guid))
			if err != nil {
				tb.Fatalf("browsertest: reading download of %s: %v", d.URL, err)
			}
			d.Data = data
			return d
		case browser.DownloadProgressStateCanceled:
			tb.Fatalf("browsertest: download of %s was cancelled", d.URL)
		}
	}
	tb.Fatalf("browsertest: download of %s did not complete: the browser stopped sending events", d.URL)
	return Download{}
}

// Screenshot writes a PNG of the whole page (not just the viewport) to
// path. Its width is the page's width in CSS pixels times the viewport's
// Scale: 390 pixels on Phone, unless the page overflows sideways.
func (tab *Tab) Screenshot(tb testing.TB, path string) {
	tb.Helper()
	png := Run(tb, tab, func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		m, err := cdp.Call(ctx, t, page.GetLayoutMetrics, cdp.Empty{})
		if err != nil {
			return nil, err
		}
		size := m.CSSContentSize
		res, err := cdp.Call(ctx, t, page.CaptureScreenshot, page.CaptureScreenshotParams{
			Format:                page.CaptureScreenshotFormatPng,
			Clip:                  &page.Viewport{Width: math.Ceil(size.Width), Height: math.Ceil(size.Height), Scale: 1},
			CaptureBeyondViewport: new(true),
			FromSurface:           new(true),
		})
		return res.Data, err
	})
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.Fatalf("browsertest: writing screenshot: %v", err)
	}
}

// Cookies returns the cookies of the Tab's browser context that apply to
// urls, or to the current page (and its frames) when none are given.
func (tab *Tab) Cookies(tb testing.TB, urls ...string) []*network.Cookie {
	tb.Helper()
	return Run(tb, tab, func(ctx context.Context, t *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: urls})
		return res.Cookies, err
	})
}

// FetchResult is the answer to Tab.Fetch.
type FetchResult struct {
	Status int               `json:"status"`
	Header map[string]string `json:"header"` // lower-case names, as fetch() shows them
	Body   string            `json:"body"`
}

// Fetch calls fetch() inside the current page, so the request carries the
// page's origin and this context's cookies (credentials "same-origin"),
// with the given method, extra headers and body ("" for none), and returns
// the answer. Redirects are followed. A network error fails the test.
func (tab *Tab) Fetch(tb testing.TB, method, url string, header map[string]string, body string) FetchResult {
	tb.Helper()
	args, err := json.Marshal(map[string]any{"method": method, "url": url, "headers": header, "body": body})
	if err != nil {
		tb.Fatalf("browsertest: %v", err)
	}
	js := fmt.Sprintf(`(async (a) => {
  const init = {method: a.method, headers: a.headers || {}, credentials: 'same-origin'};
  if (a.body !== '') init.body = a.body;
  const r = await fetch(a.url, init);
  return {status: r.status, header: Object.fromEntries(r.headers), body: await r.text()};
})(%s)`, args)
	return Run(tb, tab, chromedp.Evaluate[FetchResult](js, chromedp.EvalAwaitPromise))
}
