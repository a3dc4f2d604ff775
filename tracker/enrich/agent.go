package enrich

import (
	"strings"
	"sync"

	"github.com/ua-parser/uap-go/uaparser"
)

// uap is built once per process, at the first session opening (reading
// uap-core's patterns takes about 80 ms); the matcher is safe for
// concurrent use.
var uap = sync.OnceValue(func() *uapMatcher {
	m, err := newUAPMatcher(uaparser.DefinitionYaml)
	if err != nil {
		panic("uap-go: embedded regexes do not load: " + err.Error())
	}
	return m
})

// maxUALength bounds what is parsed: regexes over attacker-sized input
// are a CPU sink, and no real user agent is longer.
const maxUALength = 512

// agentCacheSize bounds the parsed agents kept: a distinct agent costs about
// 0.3 ms of regex matching, and real traffic repeats a few hundred.
const agentCacheSize = 1024

var agentCache = struct {
	sync.Mutex
	m map[string]Agent
}{m: make(map[string]Agent)}

// ParseAgent parses a User-Agent header.
func ParseAgent(ua string) Agent {
	if len(ua) > maxUALength {
		ua = ua[:maxUALength]
	}
	agentCache.Lock()
	a, ok := agentCache.m[ua]
	agentCache.Unlock()
	if ok {
		return a
	}
	a = parseAgent(ua)
	agentCache.Lock()
	if len(agentCache.m) >= agentCacheSize {
		for k := range agentCache.m { // map order is random: evicts one at random
			delete(agentCache.m, k)
			break
		}
	}
	agentCache.m[strings.Clone(ua)] = a
	agentCache.Unlock()
	return a
}

func parseAgent(ua string) Agent {
	browser, os, device := uap().parse(ua)
	return Agent{
		Browser:        browser[0],
		BrowserVersion: joinVersion(browser[1], browser[2]),
		OS:             os[0],
		OSVersion:      joinVersion(os[1], os[2]),
		DeviceFamily:   device,
		DeviceType:     deviceType(ua, device),
	}
}

func joinVersion(major, minor string) string {
	if major == "" {
		return ""
	}
	if minor == "" {
		return major
	}
	return major + "." + minor
}

// deviceType classifies into mobile, tablet or desktop. uap-core names
// device families but has no type, so this follows the usual UA tokens.
func deviceType(ua, deviceFamily string) string {
	fam := strings.ToLower(deviceFamily)
	l := strings.ToLower(ua)
	switch {
	case strings.Contains(fam, "ipad") || strings.Contains(fam, "tablet") || strings.Contains(fam, "kindle") ||
		strings.Contains(l, "tablet") || strings.Contains(l, "ipad") ||
		(strings.Contains(l, "android") && !strings.Contains(l, "mobile")):
		return "tablet"
	case strings.Contains(l, "mobi") || strings.Contains(fam, "iphone") || strings.Contains(fam, "smartphone") ||
		strings.Contains(l, "iphone") || strings.Contains(l, "android"):
		return "mobile"
	}
	return "desktop"
}
