package main

// The Caddyfile of this program; benchkit.StartCaddy runs it.

import (
	"bytes"
	"text/template"
)

// caddyfile is the same for every instance but the ports. The session id
// goes upstream in a header, which the upstream echoes back, so the
// program learns it the way an app would.
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
	}
	reverse_proxy {{.Upstream}} {
		header_up X-Session-Id {http.sessions.id}
	}
}
`))

type caddyVars struct {
	AdminPort, Port int
	Upstream        string
	Store           string
	Secret          string
	Realm           string
}

// config renders the Caddyfile for the ports, as benchkit.CaddySpec.Config.
func (v caddyVars) config(port, adminPort int) ([]byte, error) {
	v.Port, v.AdminPort = port, adminPort
	var buf bytes.Buffer
	err := caddyfile.Execute(&buf, v)
	return buf.Bytes(), err
}
