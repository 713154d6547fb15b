package remote

import "sync/atomic"

// Stats counts what a [Transport] received and did, and every message it
// refused. Each count only grows.
type Stats struct {
	Registrations   uint64 // registrations of a new worker, or of a worker that exited or left before
	Reregistrations uint64 // registrations of a live worker again (a reconnect, an answer to hello)
	Deregistrations uint64 // workers that left
	Exits           uint64 // workers whose connection closed (disconnect advisory), counted when the exit happens
	HeartbeatExits  uint64 // workers deemed gone because their heartbeat stopped
	Forgotten       uint64 // exited workers that left their channels, not back within Options.ReconnectGrace
	Requests        uint64 // requests published
	Accepted        uint64 // acks accepted
	Deferred        uint64 // acks deferred
	Rejected        uint64 // acks rejected
	Responses       uint64 // responses delivered to their conversation
	Cancels         uint64 // cancels published (a conversation closed while its worker ran the activity)
	NoResponders    uint64 // requests no worker subscription took (the worker is gone)
	AckTimeouts     uint64 // requests not acked within Options.AckTimeout
	Hellos          uint64 // hellos said again after a reconnect of Options.Conn
	SlowConsumers   uint64 // slow consumer errors (messages dropped) seen by [Transport.ErrorHandler]
	AsyncErrors     uint64 // other asynchronous errors seen by [Transport.ErrorHandler]

	// Refused messages, each logged.
	WrongContentType       uint64 // a content type other than the subject's
	TooLarge               uint64 // larger than Options.MaxMessageSize
	Malformed              uint64 // not a valid message: bad JSON, unknown or missing fields, bad values, another version
	UnknownConversation    uint64 // an ack or response for a conversation this node does not hold
	AfterClose             uint64 // an ack or response for a conversation closed already
	Stale                  uint64 // an ack or response of another attempt or worker than the conversation's current one, or a duplicate
	DuplicateRegistrations uint64 // a registration of a live worker's id by another instance
	UnknownWorker          uint64 // a status or deregistration of a worker not registered (or of another instance)
}

// Refused returns how many messages were refused, whatever the reason.
func (s Stats) Refused() uint64 {
	return s.WrongContentType + s.TooLarge + s.Malformed + s.UnknownConversation + s.AfterClose + s.Stale +
		s.DuplicateRegistrations + s.UnknownWorker
}

// counters is the live form of Stats.
type counters struct {
	registrations, reregistrations, deregistrations, exits, heartbeatExits   atomic.Uint64
	forgotten                                                                atomic.Uint64
	requests, accepted, deferred, rejected, responses, cancels, noResponders atomic.Uint64
	ackTimeouts, hellos, slowConsumers, asyncErrors                          atomic.Uint64
	wrongContentType, tooLarge, malformed, unknownConversation, afterClose   atomic.Uint64
	stale, duplicateRegistrations, unknownWorker                             atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Registrations: c.registrations.Load(), Reregistrations: c.reregistrations.Load(),
		Deregistrations: c.deregistrations.Load(), Exits: c.exits.Load(), HeartbeatExits: c.heartbeatExits.Load(),
		Forgotten: c.forgotten.Load(),
		Requests:  c.requests.Load(), Accepted: c.accepted.Load(), Deferred: c.deferred.Load(), Rejected: c.rejected.Load(),
		Responses: c.responses.Load(), Cancels: c.cancels.Load(), NoResponders: c.noResponders.Load(), AckTimeouts: c.ackTimeouts.Load(),
		Hellos: c.hellos.Load(), SlowConsumers: c.slowConsumers.Load(), AsyncErrors: c.asyncErrors.Load(),
		WrongContentType: c.wrongContentType.Load(), TooLarge: c.tooLarge.Load(), Malformed: c.malformed.Load(),
		UnknownConversation: c.unknownConversation.Load(), AfterClose: c.afterClose.Load(), Stale: c.stale.Load(),
		DuplicateRegistrations: c.duplicateRegistrations.Load(), UnknownWorker: c.unknownWorker.Load(),
	}
}
