package broker_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/aion-dispatch/dispatch/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard bounds a wait that should end at once; it only turns a hang into
// a failure.
const guard = 10 * time.Second

func start(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.Start(t.Context(), broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return b
}

// The system connection hears the disconnect advisory of an application
// connection, naming its server and client id; an application connection
// hears nothing on $SYS.
func TestDisconnectAdvisory(t *testing.T) {
	b := start(t)
	if !strings.HasPrefix(b.URL(), "nats://127.0.0.1:") || strings.HasSuffix(b.URL(), ":4222") {
		t.Fatalf("URL %q, want a free port on 127.0.0.1", b.URL())
	}
	sys, err := b.ConnectSystem()
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	advisories := make(chan *nats.Msg, 4)
	sub, err := sys.ChanSubscribe("$SYS.ACCOUNT.*.DISCONNECT", advisories)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	app, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	appSys := make(chan *nats.Msg, 4)
	asub, err := app.ChanSubscribe("$SYS.>", appSys)
	if err != nil {
		t.Fatal(err)
	}
	defer asub.Unsubscribe()
	if err := sys.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := app.Flush(); err != nil {
		t.Fatal(err)
	}

	w, err := b.Connect(nats.Name("worker-1"))
	if err != nil {
		t.Fatal(err)
	}
	cid, err := w.GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	sid := w.ConnectedServerId()
	w.Close()

	select {
	case m := <-advisories:
		var adv struct {
			Server struct{ ID string } `json:"server"`
			Client struct {
				ID      uint64 `json:"id"`
				Name    string `json:"name"`
				Account string `json:"acc"`
			} `json:"client"`
		}
		if err := json.Unmarshal(m.Data, &adv); err != nil {
			t.Fatal(err)
		}
		if adv.Client.ID != cid || adv.Server.ID != sid || sid != b.ServerID() || adv.Client.Name != "worker-1" || adv.Client.Account != broker.AppAccount {
			t.Fatalf("advisory %s, want client %d on server %s", m.Data, cid, sid)
		}
	case <-time.After(guard):
		t.Fatal("no disconnect advisory")
	}
	// The application account sees nothing of $SYS: a round trip after
	// the advisory proves nothing is on its way.
	if err := app.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-appSys:
		t.Fatalf("application connection saw %s", m.Subject)
	default:
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := broker.Start(t.Context(), broker.Options{Addr: "nope"}); err == nil || !strings.Contains(err.Error(), "address") {
		t.Fatalf("bad address: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := broker.Start(ctx, broker.Options{Addr: "127.0.0.1:0"}); err == nil {
		t.Fatal("start with a cancelled context succeeded")
	}
}

// Shutdown closes the clients' connections.
func TestShutdownClosesClients(t *testing.T) {
	b, err := broker.Start(t.Context(), broker.Options{Addr: ":0"})
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	nc, err := b.Connect(nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := b.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(guard):
		t.Fatal("client not closed by shutdown")
	}
}
