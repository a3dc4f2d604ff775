package notify

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Alert is one risky sign-in to tell someone about. Its JSON form is the
// webhook's request body.
type Alert struct {
	// ID identifies the alert; it is the webhook's idempotency key and the
	// e-mail's Message-ID, so it is 1 to 128 of A-Z, a-z, 0-9, ".", "_"
	// and "-". Send sets a random one when it is empty.
	ID string `json:"id"`
	// Realm and User name the account.
	Realm string `json:"realm"`
	User  string `json:"user"`
	// Signals are the risk findings, such as "new_country" or
	// "impossible_travel".
	Signals []string `json:"signals"`
	// At is when the sign-in happened; Send sets the current time when it
	// is zero.
	At        time.Time `json:"at"`
	SessionID string    `json:"session_id,omitempty"`
	DeviceID  string    `json:"device_id,omitempty"`
	IP        string    `json:"ip,omitempty"`
	// Location is approximate, as "London, England, United Kingdom".
	Location string `json:"location,omitempty"`
	// Agent describes the browser and system, as "Firefox on Linux".
	Agent string `json:"agent,omitempty"`
	// TimeZone is the user's IANA zone, used to show times in e-mail;
	// UTC when empty or unknown.
	TimeZone string `json:"time_zone,omitempty"`
	// Evidence is passed through to the webhook as it is; it must be
	// valid JSON when set.
	Evidence json.RawMessage `json:"evidence,omitempty"`
	// Link is the "this wasn't me" page for the user; only http and
	// https links are shown in e-mail.
	Link string `json:"link,omitempty"`
	// Recipient is the e-mail address of the user to tell.
	Recipient string `json:"recipient,omitempty"`

	// Channels picks where this alert goes. Empty means the webhook if
	// one is configured, and e-mail if a mailer is configured and
	// Recipient is set. A channel named here that is not configured, or
	// e-mail without a valid Recipient, is recorded as failed.
	Channels []Channel `json:"-"`
}

// Channel names a delivery channel, as it appears in Outcome.
type Channel string

// The channels.
const (
	ChannelWebhook Channel = "webhook"
	ChannelEmail   Channel = "email"
)

// newID returns 128 random bits in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// validID reports whether id is fit for headers: 1 to 128 of [A-Za-z0-9._-].
func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
