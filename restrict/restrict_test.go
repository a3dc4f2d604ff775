package restrict

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func lim(max int, window time.Duration, action string) *Limit {
	return &Limit{Max: max, Window: Duration(window), Action: action}
}

func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		name string
		l    Limits
		// want lists substrings the error must hold; nil means no error.
		want []string
	}{
		{name: "empty", l: Limits{}},
		{name: "all valid", l: Limits{
			IPs: lim(3, 24*time.Hour, ActionBlock), Devices: lim(2, time.Hour, ActionLog), Sessions: lim(1, 0, ActionEvictOldest),
		}},
		{name: "default action", l: Limits{IPs: lim(3, time.Hour, "")}},
		{name: "max 0 is off and needs no window", l: Limits{IPs: lim(0, 0, ""), Devices: lim(0, 0, "")}},
		{name: "negative max_ips", l: Limits{IPs: lim(-1, time.Hour, "")}, want: []string{"max_ips", "-1"}},
		{name: "negative max_devices", l: Limits{Devices: lim(-5, time.Hour, "")}, want: []string{"max_devices", "-5"}},
		{name: "negative max_sessions", l: Limits{Sessions: lim(-2, 0, "")}, want: []string{"max_sessions", "-2"}},
		{name: "unknown action", l: Limits{Devices: lim(2, time.Hour, "deny")}, want: []string{"max_devices", `"deny"`}},
		{name: "unknown action on sessions", l: Limits{Sessions: lim(2, 0, "kick")}, want: []string{"max_sessions", `"kick"`}},
		{name: "evict_oldest on max_ips", l: Limits{IPs: lim(2, time.Hour, ActionEvictOldest)}, want: []string{"max_ips", "evict_oldest"}},
		{name: "evict_oldest on max_devices", l: Limits{Devices: lim(2, time.Hour, ActionEvictOldest)}, want: []string{"max_devices", "evict_oldest"}},
		{name: "zero window", l: Limits{IPs: lim(3, 0, ActionBlock)}, want: []string{"max_ips", "window", "0s"}},
		{name: "negative window", l: Limits{Devices: lim(3, -time.Minute, "")}, want: []string{"max_devices", "window", "-1m0s"}},
		{name: "window on max_sessions", l: Limits{Sessions: lim(3, time.Hour, "")}, want: []string{"max_sessions", "window"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.l.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestLimitsMerge(t *testing.T) {
	realm := Limits{IPs: lim(3, time.Hour, ActionBlock), Devices: lim(2, time.Hour, ActionLog)}
	tests := []struct {
		name     string
		override Limits
		want     Limits
	}{
		{name: "no override", override: Limits{}, want: realm},
		{name: "replace one", override: Limits{IPs: lim(10, 2*time.Hour, ActionLog)},
			want: Limits{IPs: lim(10, 2*time.Hour, ActionLog), Devices: realm.Devices}},
		{name: "add one the realm lacks", override: Limits{Sessions: lim(1, 0, ActionEvictOldest)},
			want: Limits{IPs: realm.IPs, Devices: realm.Devices, Sessions: lim(1, 0, ActionEvictOldest)}},
		{name: "override to off", override: Limits{Devices: lim(0, 0, "")},
			want: Limits{IPs: realm.IPs, Devices: lim(0, 0, "")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := realm.Merge(tt.override)
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(tt.want)
			if string(gb) != string(wb) {
				t.Errorf("Merge = %s, want %s", gb, wb)
			}
		})
	}
	// Merge must not change its receiver.
	if realm.Sessions != nil || realm.IPs.Max != 3 {
		t.Errorf("Merge changed the realm limits: %+v", realm)
	}
	if !(Limits{}).IsZero() || (Limits{Sessions: lim(0, 0, "")}).IsZero() {
		t.Error("IsZero: wrong answer")
	}
}

func TestPrefixKey(t *testing.T) {
	tests := []struct {
		name   string
		prefix Prefix
		ip     string
		want   string
	}{
		{name: "v4 default is the address", prefix: Prefix{}, ip: "81.2.69.142", want: "81.2.69.142"},
		{name: "v4 /32 is the address", prefix: Prefix{V4: 32}, ip: "81.2.69.142", want: "81.2.69.142"},
		{name: "v4 /24", prefix: Prefix{V4: 24, V6: 64}, ip: "81.2.69.142", want: "81.2.69.0/24"},
		{name: "v4 /24 other host same net", prefix: Prefix{V4: 24, V6: 64}, ip: "81.2.69.7", want: "81.2.69.0/24"},
		{name: "v4 /16", prefix: Prefix{V4: 16}, ip: "10.20.30.40", want: "10.20.0.0/16"},
		{name: "v4-mapped v6 counts as v4", prefix: Prefix{V4: 24, V6: 64}, ip: "::ffff:81.2.69.142", want: "81.2.69.0/24"},
		{name: "v6 default is the address", prefix: Prefix{V4: 24}, ip: "2001:db8:1:2:a:b:c:d", want: "2001:db8:1:2:a:b:c:d"},
		{name: "v6 /64", prefix: Prefix{V4: 24, V6: 64}, ip: "2001:db8:1:2:a:b:c:d", want: "2001:db8:1:2::/64"},
		{name: "v6 privacy address same /64", prefix: Prefix{V4: 24, V6: 64}, ip: "2001:db8:1:2:ffff:eeee:dddd:cccc", want: "2001:db8:1:2::/64"},
		{name: "v6 /48", prefix: Prefix{V6: 48}, ip: "2001:db8:abcd:12::1", want: "2001:db8:abcd::/48"},
		{name: "v6 /128 is the address", prefix: Prefix{V6: 128}, ip: "2001:db8::1", want: "2001:db8::1"},
		{name: "unparsable counts as itself", prefix: Prefix{V4: 24, V6: 64}, ip: "not-an-ip", want: "not-an-ip"},
		{name: "empty", prefix: Prefix{V4: 24, V6: 64}, ip: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.prefix.Key(tt.ip); got != tt.want {
				t.Errorf("Prefix%+v.Key(%q) = %q, want %q", tt.prefix, tt.ip, got, tt.want)
			}
		})
	}
}

func TestPrefixValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Prefix
		want string // "" for valid
	}{
		{name: "zero", p: Prefix{}},
		{name: "bounds", p: Prefix{V4: 32, V6: 128}},
		{name: "v4 too long", p: Prefix{V4: 33}, want: "33"},
		{name: "v4 negative", p: Prefix{V4: -1}, want: "-1"},
		{name: "v6 too long", p: Prefix{V6: 129}, want: "129"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "24h", want: 24 * time.Hour},
		{in: "90s", want: 90 * time.Second},
		{in: "7d", want: 7 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "1d30m", want: 24*time.Hour + 30*time.Minute},
		{in: "0d", want: 0},
		{in: "", wantErr: true},
		{in: "abc", wantErr: true},
		{in: "d", wantErr: true},
		{in: "1.5d", wantErr: true},
		{in: "7days", wantErr: true},
		{in: "1d12", wantErr: true},
		{in: "24", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, want an error", tt.in, got)
				}
				if !strings.Contains(err.Error(), tt.in) {
					t.Errorf("error %q does not quote the input %q", err, tt.in)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	t.Run("round trip", func(t *testing.T) {
		for _, d := range []time.Duration{0, time.Second, 90 * time.Minute, 7 * 24 * time.Hour, 36*time.Hour + 1500*time.Millisecond} {
			b, err := json.Marshal(Duration(d))
			if err != nil {
				t.Fatal(err)
			}
			if b[0] != '"' {
				t.Errorf("Marshal(%v) = %s, want a JSON string", d, b)
			}
			var back Duration
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			if time.Duration(back) != d {
				t.Errorf("round trip of %v gave %v (via %s)", d, time.Duration(back), b)
			}
		}
	})
	t.Run("reads", func(t *testing.T) {
		tests := []struct {
			in      string
			want    time.Duration
			wantErr bool
		}{
			{in: `"24h"`, want: 24 * time.Hour},
			{in: `"7d"`, want: 7 * 24 * time.Hour},
			{in: `"1d12h"`, want: 36 * time.Hour},
			{in: `1000000000`, want: time.Second},
			{in: `"bogus"`, wantErr: true},
			{in: `true`, wantErr: true},
			{in: `1.5`, wantErr: true},
		}
		for _, tt := range tests {
			var d Duration
			err := json.Unmarshal([]byte(tt.in), &d)
			if tt.wantErr {
				if err == nil {
					t.Errorf("Unmarshal(%s) = %v, want an error", tt.in, time.Duration(d))
				}
				continue
			}
			if err != nil || time.Duration(d) != tt.want {
				t.Errorf("Unmarshal(%s) = %v, %v; want %v", tt.in, time.Duration(d), err, tt.want)
			}
		}
	})
	t.Run("limits document", func(t *testing.T) {
		in := `{"max_ips":{"max":3,"window":"7d","action":"log"},"max_sessions":{"max":2,"action":"evict_oldest"}}`
		var l Limits
		if err := json.Unmarshal([]byte(in), &l); err != nil {
			t.Fatal(err)
		}
		if l.IPs == nil || l.IPs.Max != 3 || time.Duration(l.IPs.Window) != 7*24*time.Hour || l.IPs.Action != ActionLog {
			t.Errorf("max_ips = %+v", l.IPs)
		}
		if l.Devices != nil || l.Sessions == nil || l.Sessions.Action != ActionEvictOldest {
			t.Errorf("devices %+v sessions %+v", l.Devices, l.Sessions)
		}
		if err := l.Validate(); err != nil {
			t.Errorf("Validate: %v", err)
		}
		b, _ := json.Marshal(l)
		var back Limits
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("Unmarshal(%s): %v", b, err)
		}
		if back.IPs.Window != l.IPs.Window || back.Sessions.Max != 2 {
			t.Errorf("round trip %s gave %+v", b, back)
		}
	})
}
