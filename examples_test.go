package sessions

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite the golden JSON files of the examples")

// TestExamplesAdapt adapts every example Caddyfile and compares the JSON
// with the golden file beside it, so examples and their documented JSON
// cannot drift. Regenerate with: go test -run TestExamplesAdapt -update
func TestExamplesAdapt(t *testing.T) {
	files, err := filepath.Glob("examples/*.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "examples/demo/Caddyfile")
	if len(files) < 5 {
		t.Fatalf("found %d examples, want at least 5", len(files))
	}
	// The demo's Caddyfile takes its addresses from the environment.
	for k, v := range map[string]string{"DEMO_ADDR": "localhost:8080", "DEMO_ADMIN": "localhost:2019", "DEMO_SHOP": "127.0.0.1:9000", "DEMO_GEOIP": "/tmp/GeoIP2-City-Test.mmdb"} {
		t.Setenv(k, v)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(body, map[string]any{"filename": f})
			if err != nil {
				t.Fatalf("adapting: %v", err)
			}
			for _, w := range warnings {
				t.Errorf("warning: %s", w.String())
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, out, "", "\t"); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			handlers := findHandlers(t, out)
			if len(handlers) == 0 {
				t.Fatalf("no sessions handler in the adapted config")
			}
			for _, raw := range handlers {
				// Every field the adapter wrote must be one the module knows.
				dec := json.NewDecoder(bytes.NewReader(raw))
				dec.DisallowUnknownFields()
				var h struct {
					Handler
					Name string `json:"handler"`
				}
				if err := dec.Decode(&h); err != nil {
					t.Errorf("sessions handler JSON does not decode strictly: %v", err)
				}
			}
			golden := strings.TrimSuffix(f, filepath.Ext(f)) + ".json"
			if filepath.Base(f) == "Caddyfile" {
				golden = filepath.Join(filepath.Dir(f), "Caddyfile.json")
			}
			if *update {
				if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (create with -update): %v", err)
			}
			if !bytes.Equal(want, pretty.Bytes()) {
				t.Errorf("%s adapts differently from %s; if intended, run go test -run TestExamplesAdapt -update\ngot:\n%s", f, golden, pretty.String())
			}
		})
	}
}

// findHandlers returns every JSON object with "handler": "sessions".
func findHandlers(t *testing.T, cfg []byte) []json.RawMessage {
	t.Helper()
	var v any
	if err := json.Unmarshal(cfg, &v); err != nil {
		t.Fatal(err)
	}
	var out []json.RawMessage
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["handler"] == "sessions" {
				b, _ := json.Marshal(x)
				out = append(out, b)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	return out
}
