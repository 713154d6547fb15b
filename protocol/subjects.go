package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The subjects of the protocol. Every one starts with [SubjectPrefix] and
// has five or six tokens, so that none can be a channel's own subject
// (aion.dispatch.NAMESPACE.QUEUE, four tokens), whatever the channel's
// names:
//
//	aion.dispatch.v1.workers.register   worker → every node   Registration
//	aion.dispatch.v1.workers.status     worker → every node   Status
//	aion.dispatch.v1.workers.deregister worker → every node   Deregistration
//	aion.dispatch.v1.workers.hello      node → every worker   Hello
//	aion.dispatch.v1.worker.ID.request  node → worker ID      Request (reply: the node's inbox)
//	aion.dispatch.v1.worker.ID.cancel   node → worker ID      Cancel
//	aion.dispatch.v1.worker.ID.hello    node → worker ID      Hello (register again: the id is free now)
//	aion.dispatch.v1.node.NODE.inbox.N  worker → node NODE    Ack, then Response (N: one per request)
//
// A worker's exit is not a message: it is the NATS server's disconnect
// advisory for its connection, $SYS.ACCOUNT.<account>.DISCONNECT, read in
// the system account.
const (
	SubjectPrefix     = "aion.dispatch.v1"
	SubjectRegister   = SubjectPrefix + ".workers.register"
	SubjectStatus     = SubjectPrefix + ".workers.status"
	SubjectDeregister = SubjectPrefix + ".workers.deregister"
	SubjectHello      = SubjectPrefix + ".workers.hello"
	// SubjectDisconnect is what the system account subscribes to for the
	// disconnect advisories of every account.
	SubjectDisconnect = "$SYS.ACCOUNT.*.DISCONNECT"
)

// RequestSubject is where worker workerID takes requests. workerID must
// pass [CheckToken].
func RequestSubject(workerID string) string {
	return SubjectPrefix + ".worker." + workerID + ".request"
}

// CancelSubject is where worker workerID hears that dispatch no longer
// waits for an activity.
func CancelSubject(workerID string) string { return SubjectPrefix + ".worker." + workerID + ".cancel" }

// WorkerHelloSubject is where worker workerID hears that a node asks it
// alone to register again (a registration it refused, as a duplicate of a
// live worker, may succeed now).
func WorkerHelloSubject(workerID string) string {
	return SubjectPrefix + ".worker." + workerID + ".hello"
}

// InboxSubject is the prefix of node nodeID's reply subjects: a request's
// reply subject is InboxSubject(nodeID) + "." + a token of the request,
// and the node subscribes to InboxSubject(nodeID) + ".>". A worker sends
// its ack and response to the request's reply subject, whatever it is.
// The node also sends itself exit markers there, on
// InboxSubject(nodeID) + ".exit." + a token, to order a worker's exit
// after its responses; workers never publish them. nodeID must pass
// [CheckToken].
func InboxSubject(nodeID string) string { return SubjectPrefix + ".node." + nodeID + ".inbox" }

// Disconnect is what dispatch reads of a disconnect advisory: which
// connection closed, and why.
type Disconnect struct {
	Connection Connection
	Account    string // the account the connection was in
	Name       string // the connection's name, if it gave one
	Reason     string // the server's reason, such as "Client Closed"
}

// DecodeDisconnect reads a disconnect advisory
// (io.nats.server.advisory.v1.client_disconnect). The server's schema is
// not ours: fields this package does not read are ignored.
func DecodeDisconnect(body []byte) (Disconnect, error) {
	if len(body) > MaxBodySize {
		return Disconnect{}, &DecodeError{Message: "disconnect advisory", Err: fmt.Errorf("%w: %d bytes", ErrTooLarge, len(body))}
	}
	var adv struct {
		Type   string `json:"type"`
		Server struct {
			ID string `json:"id"`
		} `json:"server"`
		Client struct {
			ID      uint64 `json:"id"`
			Account string `json:"acc"`
			Name    string `json:"name"`
		} `json:"client"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(body, &adv); err != nil {
		return Disconnect{}, &DecodeError{Message: "disconnect advisory", Err: fmt.Errorf("%w: %s", ErrMalformed, strings.TrimPrefix(err.Error(), "json: "))}
	}
	c := Connection{ServerID: adv.Server.ID, ClientID: adv.Client.ID}
	if err := c.check("connection"); err != nil {
		return Disconnect{}, &DecodeError{Message: "disconnect advisory", Err: err}
	}
	return Disconnect{Connection: c, Account: adv.Client.Account, Name: adv.Client.Name, Reason: adv.Reason}, nil
}
