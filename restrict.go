package sessions

import (
	"github.com/caddy-sessions/caddy-sessions/restrict"
)

// RestrictConfig is the realm's account-sharing limits.
type RestrictConfig struct {
	// MaxIPs, MaxDevices and MaxSessions: see package restrict. Windows
	// are durations such as "24h" or "30d".
	restrict.Limits
	// IPPrefix counts IPs by network prefix (v4 bits, v6 bits); default
	// whole addresses.
	IPPrefix restrict.Prefix `json:"ip_prefix,omitzero"`
}

func (c *RestrictConfig) limits() restrict.Limits {
	if c == nil {
		return restrict.Limits{}
	}
	return c.Limits
}

func (c *RestrictConfig) prefix() restrict.Prefix {
	if c == nil {
		return restrict.Prefix{}
	}
	return c.IPPrefix
}

func (c *RestrictConfig) validate() error {
	if c == nil {
		return nil
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	return c.IPPrefix.Validate()
}
