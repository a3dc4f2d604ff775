package sessions

import (
	"strings"
	"testing"
)

// A store URL's password never reaches an error, however the URL is
// malformed.
func TestStoreErrorsHideThePassword(t *testing.T) {
	const pw = "S3cr3t-pw"
	for _, u := range []string{
		"redis://user:" + pw + "@127.0.0.1:notaport/0",
		"redis://:" + pw + "@127.0.0.1:6379/notadb",
		"redis://user:" + pw + "@[::1/0",
		"rediss://user:" + pw + "@host:6379/0?dial_timeout=x",
		"ftp://user:" + pw + "@host/",
		"redis://user:" + pw + "%zz@host:6379/",
		"user:" + pw + "@host:6379",
	} {
		_, err := redisOptions(&StoreConfig{URL: u})
		if err == nil {
			t.Errorf("%q: no error", u)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("%q: the error shows the password: %v", u, err)
		}
	}
	if got := redactURL("redis://alice:" + pw + "@host:6379/2"); got != "redis://xxxxx@host:6379/2" {
		t.Errorf("redactURL = %q", got)
	}
}
