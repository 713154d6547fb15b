package service_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/service"
)

// The server bounds what a client may take: its headers, its body, an
// idle connection. A client that sends half its headers and stalls is cut
// off, and the server goes on serving others.
func TestHTTPServerCutsOffSlowClients(t *testing.T) {
	d := startNode(t, simulated, nil, service.Options{})
	hs := service.NewHTTPServer("127.0.0.1:0", d.svc.Handler())
	if hs.ReadHeaderTimeout <= 0 || hs.ReadTimeout <= 0 || hs.IdleTimeout <= 0 || hs.MaxHeaderBytes <= 0 {
		t.Fatalf("server without bounds: %+v", hs)
	}
	hs.ReadHeaderTimeout, hs.ReadTimeout = 50*time.Millisecond, 50*time.Millisecond // the test's, so it ends soon
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	defer func() {
		hs.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
	}()

	for _, stall := range []string{
		"POST /v1/channels/prod/ok/dispatch HTTP/1.1\r\nHost: x\r\n",                                                                              // headers never end
		"POST /v1/channels/prod/ok/dispatch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"workflow_id\"", // a body that never ends
	} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, stall); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second)) // a guard against a hang, not the test
		resp, err := io.ReadAll(bufio.NewReader(c))
		c.Close()
		if err != nil {
			t.Fatalf("the stalled client was not cut off: %v", err)
		}
		// A stalled body is answered (400: the body could not be read);
		// stalled headers get no answer, only the close.
		if len(resp) > 0 && !strings.HasPrefix(string(resp), "HTTP/1.1 400") {
			t.Fatalf("answer to a stalled client: %q", resp)
		}
	}
	resp, err := http.Post("http://"+ln.Addr().String()+"/v1/channels/prod/ok/dispatch", "application/json", strings.NewReader(activity))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the stalled clients: %d", resp.StatusCode)
	}
}
