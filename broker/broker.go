// Package broker runs a NATS server inside the dispatch process: the
// default way for remote workers to reach dispatch, with nothing to
// install.
//
// The server listens on loopback (127.0.0.1:4222 unless told otherwise;
// port 0 picks a free one, and [Broker.URL] says which). It has two
// accounts. Workers connect to the ordinary application account without
// credentials (loopback only, by default). The system account, whose
// credentials are generated per broker and known only to this process,
// is dispatch's: a connection to it ([Broker.ConnectSystem]) reads the
// server's disconnect advisories ($SYS.ACCOUNT.*.DISCONNECT), which tell
// dispatch that a worker's connection, its link, is gone.
//
// A Broker holds no global state; several may run in one process.
package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// DefaultAddr is where the broker listens when Options.Addr is empty.
const DefaultAddr = "127.0.0.1:4222"

// Account names inside the embedded server.
const (
	// AppAccount is the account workers and dispatch exchange messages in.
	AppAccount = "APP"
	// SystemAccount is the server's system account, dispatch's own.
	SystemAccount = "SYS"
	// appUser is the user a connection without credentials is bound to.
	appUser = "worker"
	// systemUser is the system account's user.
	systemUser = "dispatch"
)

// DefaultPingInterval is how often the server pings each client when
// Options.PingInterval is zero. A peer that vanishes without closing its
// TCP connection (a host lost, a cable pulled) is noticed after
// MaxPingsOut pings go unanswered; the NATS default of two minutes is too
// slow for a worker's link.
const DefaultPingInterval = 5 * time.Second

// Options configures a [Broker]. The zero value is valid.
type Options struct {
	// Addr is host:port to listen on; empty means [DefaultAddr]. Port 0
	// picks a free port. An empty host means 127.0.0.1.
	Addr string
	// PingInterval is how often the server pings its clients; 0 means
	// [DefaultPingInterval].
	PingInterval time.Duration
	// MaxPingsOut is how many pings may go unanswered before the server
	// closes a connection; 0 means 2.
	MaxPingsOut int
	// MaxPayload bounds a message's size in bytes; 0 means the NATS
	// default (1 MiB).
	MaxPayload int32
	// Logger receives the broker's own messages (start, stop); nil
	// discards them. The server's internal log is off.
	Logger *slog.Logger
}

// Broker is a running embedded NATS server.
type Broker struct {
	srv      *server.Server
	url      string
	password string // the system user's, generated per broker
	log      *slog.Logger
}

// Start starts the server and returns once it accepts connections, or
// fails when ctx ends first (the server is then shut down again).
func Start(ctx context.Context, opts Options) (*Broker, error) {
	host, port, err := splitAddr(opts.Addr)
	if err != nil {
		return nil, err
	}
	pw, err := randomToken()
	if err != nil {
		return nil, fmt.Errorf("broker: system password: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	app := server.NewAccount(AppAccount)
	sys := server.NewAccount(SystemAccount)
	sopts := &server.Options{
		Host:          host,
		Port:          port,
		NoSigs:        true,
		NoLog:         true,
		Accounts:      []*server.Account{app, sys},
		SystemAccount: SystemAccount,
		Users: []*server.User{
			{Username: appUser, Account: app},
			{Username: systemUser, Password: pw, Account: sys},
		},
		NoAuthUser:   appUser,
		PingInterval: opts.PingInterval,
		MaxPingsOut:  opts.MaxPingsOut,
		MaxPayload:   opts.MaxPayload,
	}
	if sopts.PingInterval <= 0 {
		sopts.PingInterval = DefaultPingInterval
	}
	if sopts.MaxPingsOut <= 0 {
		sopts.MaxPingsOut = 2
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("broker: start on %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), context.Cause(ctx))
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	started := make(chan struct{})
	go func() { // Start returns once the server runs; Shutdown stops what it started
		defer close(started)
		srv.Start()
	}()
	if err := waitReady(ctx, srv); err != nil {
		// A Shutdown while Start still runs races inside the server: let
		// Start return first (it does once its listeners are up, or fail).
		select {
		case <-started:
		case <-time.After(defaultStartTimeout):
		}
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("broker: start on %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
	}
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("broker: server has no TCP address")
	}
	b := &Broker{srv: srv, password: pw, log: log,
		url: "nats://" + net.JoinHostPort(addr.IP.String(), strconv.Itoa(addr.Port))}
	log.Info("embedded nats server listening", "url", b.url)
	return b, nil
}

// readyStep is how long one readiness check may wait before ctx is looked
// at again.
const readyStep = 50 * time.Millisecond

// defaultStartTimeout bounds the wait for readiness when ctx has no
// deadline.
const defaultStartTimeout = 10 * time.Second

// waitReady waits until srv accepts connections, or ctx ends, or
// defaultStartTimeout passes when ctx has no deadline.
func waitReady(ctx context.Context, srv *server.Server) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultStartTimeout)
	}
	for {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return errors.New("server not ready in time")
		}
		if srv.ReadyForConnections(min(left, readyStep)) {
			return nil
		}
	}
}

// splitAddr turns an Options.Addr into the server's host and port (-1 for
// a free port: 0 means 4222 to the server).
func splitAddr(addr string) (string, int, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("broker: address %q: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("broker: address %q: bad port %q", addr, ps)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// URL returns the URL clients connect to, such as nats://127.0.0.1:4222.
func (b *Broker) URL() string { return b.url }

// ServerID returns the server's id, as disconnect advisories name it.
func (b *Broker) ServerID() string { return b.srv.ID() }

// Connect connects to the application account, where workers and
// dispatch talk. opts are added to the connection's options.
func (b *Broker) Connect(opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(b.url, opts...)
	if err != nil {
		return nil, fmt.Errorf("broker: connect: %w", err)
	}
	return nc, nil
}

// SystemCredentials returns the option that authenticates a connection as
// the system account's user, for reading the server's advisories.
func (b *Broker) SystemCredentials() nats.Option { return nats.UserInfo(systemUser, b.password) }

// ConnectSystem connects to the system account, from which dispatch
// reads the disconnect advisories of worker connections.
func (b *Broker) ConnectSystem(opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(b.url, append([]nats.Option{b.SystemCredentials()}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("broker: connect to the system account: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server, closing every client connection, and waits
// until it has stopped or ctx ends.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.srv.Shutdown()
	done := make(chan struct{})
	go func() { // ends when the server has stopped
		b.srv.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
		b.log.Info("embedded nats server stopped", "url", b.url)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("broker: shutdown: %w", context.Cause(ctx))
	}
}
