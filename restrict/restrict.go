// Package restrict holds the account-sharing limits of caddy-sessions: how
// many distinct IPs, devices and concurrent sessions a user may have, what
// happens past a limit, and the violations recorded. The counting itself
// runs atomically in the session store (tracker); this package has no Caddy
// imports.
package restrict

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Policies.
const (
	PolicyIPs      = "max_ips"
	PolicyDevices  = "max_devices"
	PolicySessions = "max_sessions"
)

// Actions past a limit.
const (
	// ActionBlock refuses what would exceed the limit (the new IP, device
	// or session); what exists keeps working.
	ActionBlock = "block"
	// ActionLog allows it and records a violation.
	ActionLog = "log"
	// ActionEvictOldest (max_sessions only) revokes the least recently
	// used session to make room.
	ActionEvictOldest = "evict_oldest"
)

// Limit is one policy's number, window and action.
type Limit struct {
	// Max is the largest number allowed; 0 turns the policy off.
	Max int `json:"max"`
	// Window is the sliding window for IPs and devices; unused for
	// sessions.
	Window Duration `json:"window,omitempty"`
	// Action is block (default), log or evict_oldest.
	Action string `json:"action,omitempty"`
}

// Limits are a realm's defaults, or one user's overrides (a nil policy
// there means "the realm's default").
type Limits struct {
	IPs      *Limit `json:"max_ips,omitempty"`
	Devices  *Limit `json:"max_devices,omitempty"`
	Sessions *Limit `json:"max_sessions,omitempty"`
}

// IsZero reports whether no policy is set.
func (l Limits) IsZero() bool { return l.IPs == nil && l.Devices == nil && l.Sessions == nil }

// Validate checks every set policy; errors name the policy and value.
func (l Limits) Validate() error {
	for _, p := range []struct {
		name string
		l    *Limit
	}{{PolicyIPs, l.IPs}, {PolicyDevices, l.Devices}, {PolicySessions, l.Sessions}} {
		if p.l == nil {
			continue
		}
		if p.l.Max < 0 {
			return fmt.Errorf("%s: limit %d must not be negative", p.name, p.l.Max)
		}
		switch p.l.Action {
		case "", ActionBlock, ActionLog:
		case ActionEvictOldest:
			if p.name != PolicySessions {
				return fmt.Errorf("%s: action %q is only for %s", p.name, p.l.Action, PolicySessions)
			}
		default:
			return fmt.Errorf("%s: unknown action %q (want block, log or evict_oldest)", p.name, p.l.Action)
		}
		if p.name == PolicySessions {
			if p.l.Window != 0 {
				return fmt.Errorf("%s: takes no window", p.name)
			}
		} else if p.l.Max > 0 && p.l.Window <= 0 {
			return fmt.Errorf("%s: window %s must be positive", p.name, time.Duration(p.l.Window))
		}
	}
	return nil
}

// Merge returns l with the policies set in override replacing its own.
func (l Limits) Merge(override Limits) Limits {
	if override.IPs != nil {
		l.IPs = override.IPs
	}
	if override.Devices != nil {
		l.Devices = override.Devices
	}
	if override.Sessions != nil {
		l.Sessions = override.Sessions
	}
	return l
}

// Prefix says how client IPs are counted: by address, or by network prefix
// so that IPv6 privacy addresses and mobile NAT churn count once.
type Prefix struct {
	V4 int `json:"v4,omitempty"` // default 32
	V6 int `json:"v6,omitempty"` // default 128
}

// Validate checks the prefix lengths.
func (p Prefix) Validate() error {
	if p.V4 < 0 || p.V4 > 32 {
		return fmt.Errorf("ip_prefix: IPv4 prefix %d not within 0..32", p.V4)
	}
	if p.V6 < 0 || p.V6 > 128 {
		return fmt.Errorf("ip_prefix: IPv6 prefix %d not within 0..128", p.V6)
	}
	return nil
}

// Key is the form of ip that is counted: the address masked to the prefix,
// in CIDR notation when masked. An unparsable ip counts as itself.
func (p Prefix) Key(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	bits := p.V6
	if addr.Is4() {
		bits = p.V4
	}
	if bits == 0 || bits >= addr.BitLen() {
		return addr.String()
	}
	pfx, err := addr.Prefix(bits)
	if err != nil {
		return addr.String()
	}
	return pfx.String()
}

// Violation is one time a user went past a limit.
type Violation struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	User     string    `json:"user"`
	Policy   string    `json:"policy"`
	Limit    int       `json:"limit"`
	Observed int       `json:"observed"`
	IP       string    `json:"ip"`
	Location string    `json:"location"`
	Device   string    `json:"device_id"`
	Session  string    `json:"session_id,omitempty"`
	// Action is what was done: block, log or evict_oldest.
	Action string `json:"action"`
	// Viewed is an admin's mark; it never changes a restriction.
	Viewed bool `json:"viewed"`
}

// Duration is a time.Duration that reads JSON strings such as "24h" or
// "7d", or integer nanoseconds, and writes strings.
type Duration time.Duration

// ParseDuration reads "90s", "24h", "7d", "1d12h".
func ParseDuration(s string) (time.Duration, error) {
	if days, rest, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		var more time.Duration
		if rest != "" {
			if more, err = time.ParseDuration(rest); err != nil {
				return 0, fmt.Errorf("bad duration %q", s)
			}
		}
		return time.Duration(n)*24*time.Hour + more, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return d, nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseDuration(s)
		if err != nil {
			// A type error lets encoding/json name the field.
			return &json.UnmarshalTypeError{Value: "string " + strconv.Quote(s), Type: reflect.TypeFor[Duration]()}
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(n)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }
