package main

// The Caddyfile of this program; benchkit.StartCaddy runs it.

import (
	"bytes"
	"text/template"
)

// caddyfile: the module on Redis with a bounded cache, in front of the
// upstream.
var caddyfile = template.Must(template.New("Caddyfile").Parse(`{
	admin 127.0.0.1:{{.AdminPort}}
	persist_config off
	auto_https off
	grace_period 1s
}

http://:{{.Port}} {
	sessions {
		{{.Store}}
		secret {{.Secret}}
		realm {{.Realm}}
		user {http.request.header.X-User}
		session_cookie sid
		cache_size {{.CacheSize}}
	}
	reverse_proxy {{.Upstream}} {
		transport http {
			keepalive_idle_conns_per_host 128
		}
	}
}
`))

type caddyVars struct {
	AdminPort, Port int
	Upstream        string
	Store           string
	Secret          string
	Realm           string
	CacheSize       int
}

// config renders the Caddyfile for the ports, as benchkit.CaddySpec.Config.
func (v caddyVars) config(port, adminPort int) ([]byte, error) {
	v.Port, v.AdminPort = port, adminPort
	var buf bytes.Buffer
	err := caddyfile.Execute(&buf, v)
	return buf.Bytes(), err
}
