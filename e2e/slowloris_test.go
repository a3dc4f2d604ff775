package e2e

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A login body trickled byte by byte (slowloris) does not hold the
// request: the module stops waiting after 10 s and answers 408 with a
// JSON reason; the app never sees the half body.
func TestSlowLoginBody(t *testing.T) {
	t.Parallel()
	rec, up := recordingShop(t, true)
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(memoryStore(), "realm slow", "login @login"), "")))
	conn, err := net.Dial("tcp", strings.TrimPrefix(c.Site, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	body := "username=alice&password=alice"
	_, err = conn.Write([]byte("POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body[:5]))
	if err != nil {
		t.Fatal(err)
	}
	// Keep trickling, one byte every 2 s, as long as the module waits.
	go func() {
		for i := 5; i < len(body)-1; i++ {
			time.Sleep(2 * time.Second) // the attack's pace, not a wait for a fact
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a trickled login body after %v: %v", time.Since(start), err)
	}
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("trickled login body: %d %v after %v, want a JSON 408", resp.StatusCode, resp.Header, took)
	}
	if took > 25*time.Second {
		t.Errorf("answered after %v, want about 10 s", took)
	}
	if _, ok := rec.last(http.MethodPost, "/login"); ok {
		t.Error("the app received the half body")
	}
}
