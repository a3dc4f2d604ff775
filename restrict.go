package sessions

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sessions/caddy-sessions/restrict"
)

// This file owns the restrict block: its configuration (JSON and
// Caddyfile) and the tracker's limits made of it.

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

func parseRestrict(d *caddyfile.Dispenser) (*RestrictConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	cfg := &RestrictConfig{}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return nil, d.Errf("restrict %s: specified more than once", sub)
		}
		seen[sub] = true
		args := d.RemainingArgs()
		switch sub {
		case restrict.PolicyIPs, restrict.PolicyDevices:
			if len(args) < 2 || len(args) > 3 {
				return nil, d.Errf("restrict %s: want <n> <window> [block|log], got %q", sub, strings.Join(args, " "))
			}
			l, err := parseLimit(d, sub, args[0], args[2:])
			if err != nil {
				return nil, err
			}
			w, err := restrict.ParseDuration(args[1])
			if err != nil || w <= 0 {
				return nil, d.Errf("restrict %s: window %q must be a positive duration", sub, args[1])
			}
			l.Window = restrict.Duration(w)
			if sub == restrict.PolicyIPs {
				cfg.IPs = l
			} else {
				cfg.Devices = l
			}
		case restrict.PolicySessions:
			if len(args) < 1 || len(args) > 2 {
				return nil, d.Errf("restrict %s: want <n> [block|log|evict_oldest], got %q", sub, strings.Join(args, " "))
			}
			l, err := parseLimit(d, sub, args[0], args[1:])
			if err != nil {
				return nil, err
			}
			cfg.Sessions = l
		case "ip_prefix":
			if len(args) < 1 || len(args) > 2 {
				return nil, d.Errf("restrict ip_prefix: want <v4 bits> [<v6 bits>], got %q", strings.Join(args, " "))
			}
			for i, a := range args {
				n, err := strconv.Atoi(a)
				if err != nil {
					return nil, d.Errf("restrict ip_prefix: %q is not a number of bits", a)
				}
				if i == 0 {
					cfg.IPPrefix.V4 = n
				} else {
					cfg.IPPrefix.V6 = n
				}
			}
		default:
			return nil, d.Errf("restrict: unrecognized policy %q", sub)
		}
	}
	return cfg, nil
}

func parseLimit(d *caddyfile.Dispenser, policy, n string, action []string) (*restrict.Limit, error) {
	max, err := strconv.Atoi(n)
	if err != nil || max < 1 {
		return nil, d.Errf("restrict %s: limit %q must be a positive number", policy, n)
	}
	l := &restrict.Limit{Max: max, Action: restrict.ActionBlock}
	if len(action) > 0 {
		l.Action = action[0]
	}
	return l, nil
}
