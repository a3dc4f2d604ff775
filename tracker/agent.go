package tracker

import (
	"strings"
	"sync"

	"github.com/ua-parser/uap-go/uaparser"
)

// uaParser is built once per process: compiling uap-core's regexes takes
// about a second, and the parser is safe for concurrent use.
var uaParser = sync.OnceValue(func() *uaparser.Parser {
	p, err := uaparser.New(uaparser.WithCacheSize(8192))
	if err != nil {
		panic("uap-go: embedded regexes do not compile: " + err.Error())
	}
	return p
})

// maxUALength bounds what is parsed: regexes over attacker-sized input
// are a CPU sink, and no real user agent is longer.
const maxUALength = 512

// ParseAgent parses a User-Agent header.
func ParseAgent(ua string) Agent {
	if len(ua) > maxUALength {
		ua = ua[:maxUALength]
	}
	c := uaParser().Parse(ua)
	a := Agent{
		Browser:        c.UserAgent.Family,
		BrowserVersion: joinVersion(c.UserAgent.Major, c.UserAgent.Minor),
		OS:             c.Os.Family,
		OSVersion:      joinVersion(c.Os.Major, c.Os.Minor),
		DeviceFamily:   c.Device.Family,
	}
	a.DeviceType = deviceType(ua, c)
	return a
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
func deviceType(ua string, c *uaparser.Client) string {
	fam := strings.ToLower(c.Device.Family)
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
