package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// What a Tab sees the page do: recorded from the protocol events of the
// tab, in the order Chromium sends them, before the next command returns
// (chromedp.WithListener), so a finished action's effects are on record.

// Dialog is a JavaScript dialog the page opened, and how it was answered.
type Dialog struct {
	Type     string // "alert", "confirm", "prompt" or "beforeunload"
	Message  string
	URL      string // the frame's
	Accepted bool
}

// Message is a console message: a console.* call (Source "console-api",
// Level its method: "log", "error", ...), an uncaught exception or
// unhandled rejection (Source and Level "exception"), or a browser log
// entry (Source "security", "network", ...; Level "verbose", "info",
// "warning" or "error"). Chromium logs each CSP violation as a "security"
// error too. The failure of the browser's own request for /favicon.ico is
// left out: it is not the page's doing.
type Message struct {
	Source, Level, Text, URL string
	Line                     int64 // 0-based
}

// IsError reports whether the message is an error or an exception.
func (m Message) IsError() bool {
	return m.Level == "error" || m.Level == "exception" || m.Level == "assert"
}

func (m Message) String() string {
	if m.URL == "" {
		return fmt.Sprintf("%s %s: %s", m.Source, m.Level, m.Text)
	}
	return fmt.Sprintf("%s %s: %s (%s:%d)", m.Source, m.Level, m.Text, m.URL, m.Line+1)
}

// CSPViolation is a securitypolicyviolation event of a page, heard from an
// isolated world the page cannot see or tamper with.
type CSPViolation struct {
	Directive   string `json:"directive"`   // effective directive, e.g. "script-src-elem"
	BlockedURI  string `json:"blockedURI"`  // "inline", "eval" or a URL
	Disposition string `json:"disposition"` // "enforce" or "report"
	DocumentURI string `json:"documentURI"`
	SourceFile  string `json:"sourceFile"`
	Line        int64  `json:"line"`
	Sample      string `json:"sample"`
}

type records struct {
	dialogs []Dialog
	console []Message
	csp     []CSPViolation
}

const (
	isolatedWorld = "browsertest"
	cspBinding    = "__browsertestCSP"
	cspListener   = `document.addEventListener('securitypolicyviolation', e => ` + cspBinding + `(JSON.stringify({
  directive: e.effectiveDirective, blockedURI: e.blockedURI, disposition: e.disposition,
  documentURI: e.documentURI, sourceFile: e.sourceFile, line: e.lineNumber, sample: e.sample})), true);`
)

// AcceptDialogs sets how confirm and prompt dialogs are answered: OK when
// accept is true, Cancel otherwise (the default). Alerts are acknowledged
// and beforeunload is always accepted.
func (tab *Tab) AcceptDialogs(accept bool) {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	tab.accept = accept
}

// Dialogs returns the dialogs opened so far.
func (tab *Tab) Dialogs() []Dialog {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]Dialog(nil), tab.dialogs...)
}

// Console returns every console message so far.
func (tab *Tab) Console() []Message {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]Message(nil), tab.console...)
}

// Errors returns the console messages that are errors or uncaught
// exceptions.
func (tab *Tab) Errors() []Message {
	var errs []Message
	for _, m := range tab.Console() {
		if m.IsError() {
			errs = append(errs, m)
		}
	}
	return errs
}

// CSPViolations returns the Content-Security-Policy violations so far.
// They are reported asynchronously: wait for one with Await. To check that
// none happened, check Errors (Chromium logs a violation in order with the
// page) or use ExpectClean.
func (tab *Tab) CSPViolations() []CSPViolation {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]CSPViolation(nil), tab.csp...)
}

// ExpectClean reports, as test errors, every dialog, console error,
// uncaught exception and CSP violation recorded so far: for a page that
// must run no injected script and break no rule.
func (tab *Tab) ExpectClean(tb testing.TB) {
	tb.Helper()
	for _, d := range tab.Dialogs() {
		tb.Errorf("browsertest: unexpected %s dialog %q on %s", d.Type, d.Message, d.URL)
	}
	for _, m := range tab.Errors() {
		tb.Errorf("browsertest: unexpected console %s", m)
	}
	for _, v := range tab.CSPViolations() {
		tb.Errorf("browsertest: unexpected CSP violation %+v", v)
	}
}

func (tab *Tab) logRecords(tb testing.TB) {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	for _, d := range tab.dialogs {
		tb.Logf("browsertest: dialog %+v", d)
	}
	for _, m := range tab.console {
		tb.Logf("browsertest: console %s", m)
	}
	for _, v := range tab.csp {
		tb.Logf("browsertest: CSP violation %+v", v)
	}
}

// listen runs on the tab's message loop: it must be quick and must not call
// the browser, so dialogs are answered from another goroutine (the page
// waits for the answer).
func (tab *Tab) listen(ev any) {
	switch ev := ev.(type) {
	case *page.EventJavascriptDialogOpening:
		tab.mu.Lock()
		accept := tab.accept || ev.Type == page.DialogTypeAlert || ev.Type == page.DialogTypeBeforeunload
		tab.add(func(r *records) {
			r.dialogs = append(r.dialogs, Dialog{Type: string(ev.Type), Message: ev.Message, URL: ev.URL, Accepted: accept})
		})
		tab.mu.Unlock()
		go tab.answer(accept, ev.DefaultPrompt)
	case *runtime.EventConsoleAPICalled:
		m := Message{Source: "console-api", Level: string(ev.Type), Text: argsText(ev.Args)}
		if ev.StackTrace != nil && len(ev.StackTrace.CallFrames) > 0 {
			m.URL, m.Line = ev.StackTrace.CallFrames[0].URL, ev.StackTrace.CallFrames[0].LineNumber
		}
		tab.record(func(r *records) { r.console = append(r.console, m) })
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		m := Message{Source: "exception", Level: "exception", Text: text, URL: d.URL, Line: d.LineNumber}
		tab.record(func(r *records) { r.console = append(r.console, m) })
	case *log.EventEntryAdded:
		e := ev.Entry
		if u, err := url.Parse(e.URL); err == nil && e.Source == log.EntrySourceNetwork && u.Path == "/favicon.ico" {
			return // the browser's own request, not the page's
		}
		m := Message{Source: string(e.Source), Level: string(e.Level), Text: e.Text, URL: e.URL, Line: e.LineNumber}
		tab.record(func(r *records) { r.console = append(r.console, m) })
	case *runtime.EventBindingCalled:
		if ev.Name != cspBinding {
			return
		}
		var v CSPViolation
		if err := json.Unmarshal([]byte(ev.Payload), &v); err != nil {
			v.Sample = "undecodable report: " + ev.Payload
		}
		tab.record(func(r *records) { r.csp = append(r.csp, v) })
	}
}

func (tab *Tab) record(f func(*records)) {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	tab.add(f)
}

// add applies f and wakes Await; tab.mu is held.
func (tab *Tab) add(f func(*records)) {
	f(&tab.records)
	close(tab.changed)
	tab.changed = make(chan struct{})
}

func (tab *Tab) answer(accept bool, prompt string) {
	ctx, cancel := context.WithTimeout(tab.ctx, tab.timeout)
	defer cancel()
	// An error means the tab is closing; the page no longer waits.
	_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: accept, PromptText: prompt})
}

// argsText renders console.* arguments roughly as DevTools shows them.
func argsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		var s string
		if a.Type == runtime.RemoteObjectTypeString && json.Unmarshal(a.Value, &s) == nil {
			parts = append(parts, s)
		} else if a.Description != "" {
			parts = append(parts, a.Description)
		} else {
			parts = append(parts, string(a.Value))
		}
	}
	return strings.Join(parts, " ")
}
