package enrich

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestParseAgent(t *testing.T) {
	for _, c := range []struct {
		name string
		ua   string
		want Agent
	}{
		{"Chrome on Windows",
			"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
			Agent{Browser: "Chrome", BrowserVersion: "124.0", OS: "Windows", OSVersion: "10", DeviceType: "desktop"}},
		{"Firefox on Linux",
			"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
			Agent{Browser: "Firefox", BrowserVersion: "125.0", OS: "Linux", DeviceType: "desktop"}},
		{"Safari on macOS",
			"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
			Agent{Browser: "Safari", BrowserVersion: "17.4", OS: "Mac OS X", OSVersion: "10.15", DeviceFamily: "Mac", DeviceType: "desktop"}},
		{"Safari on iPhone",
			"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
			Agent{Browser: "Mobile Safari", BrowserVersion: "17.4", OS: "iOS", OSVersion: "17.4", DeviceFamily: "iPhone", DeviceType: "mobile"}},
		{"Safari on iPad",
			"Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
			Agent{Browser: "Mobile Safari", BrowserVersion: "16.6", OS: "iOS", OSVersion: "16.6", DeviceFamily: "iPad", DeviceType: "tablet"}},
		{"Chrome on Android phone",
			"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
			Agent{Browser: "Chrome Mobile", BrowserVersion: "124.0", OS: "Android", OSVersion: "14", DeviceFamily: "Pixel 8", DeviceType: "mobile"}},
		{"Chrome on Android tablet",
			"Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Safari/537.36",
			Agent{Browser: "Chrome", BrowserVersion: "124.0", OS: "Android", OSVersion: "13", DeviceType: "tablet"}},
		{"empty", "", Agent{Browser: "Other", OS: "Other", DeviceFamily: "Other", DeviceType: "desktop"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := ParseAgent(c.ua)
			// DeviceFamily is uap-core's naming; check it only where
			// it identifies the device.
			if c.want.DeviceFamily == "" {
				got.DeviceFamily = ""
			}
			if got != c.want {
				t.Errorf("ParseAgent(%.50q) =\n%+v, want\n%+v", c.ua, got, c.want)
			}
		})
	}
}

func TestParseAgentHugeGarbage(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for b.Len() < 10<<10 {
		b.WriteByte(byte(r.IntN(256)))
		b.WriteString("Mozilla/5.0 (;;(Android iPhone ")
	}
	ua := b.String()
	start := time.Now()
	got := ParseAgent(ua)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("ParseAgent of %d bytes took %v", len(ua), d)
	}
	switch got.DeviceType {
	case "desktop", "mobile", "tablet":
	default:
		t.Errorf("DeviceType = %q", got.DeviceType)
	}
	if got.Browser == "" || got.OS == "" {
		t.Errorf("ParseAgent of garbage = %+v, want families filled (at least Other)", got)
	}
	// Only a bounded prefix is looked at: what follows 512 bytes cannot
	// change the answer.
	long := strings.Repeat("x", 600) + "iPad"
	if a := ParseAgent(long); a.DeviceType != "desktop" {
		t.Errorf("a marker past the parsed prefix changed the device type: %+v", a)
	}
}

// The agent cache answers what a fresh parse answers and stays bounded
// however many distinct agents pass.
func TestAgentCacheBounded(t *testing.T) {
	const ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	want := parseAgent(ua)
	for i := range agentCacheSize + 50 {
		ParseAgent(fmt.Sprintf("n%d", i)) // short: quick to parse under -race
		if got := ParseAgent(ua); got != want {
			t.Fatalf("cached %+v, parsed %+v", got, want)
		}
	}
	agentCache.Lock()
	n := len(agentCache.m)
	agentCache.Unlock()
	if n > agentCacheSize {
		t.Errorf("agent cache holds %d entries, bound is %d", n, agentCacheSize)
	}
}

func BenchmarkParseAgent(b *testing.B) {
	uas := []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
		"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
	}
	ParseAgent(uas[0]) // build the parser outside the timing
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ParseAgent(uas[i%len(uas)])
	}
}
