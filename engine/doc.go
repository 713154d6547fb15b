// Package engine runs the dispatch conversation that sends one activity of a
// durable workflow to one worker.
//
// It holds the domain types (requests, results, worker state views, recorded
// operations), the small interfaces the conversation needs from the outside
// world (a worker pool, a router, a conversation factory, a recorder and an
// id source), and the [Dispatcher] that drives them through the lifecycle:
// select, link, send, receive, re-route when a linked worker exits, close.
//
// A worker's max in flight is a capacity: an activity is sent only into a
// free slot (Link takes it). When no worker can take an activity now — no
// candidate has a free slot, the router chooses none, or it chooses a full
// worker — the activity waits in its channel's backlog, oldest first, and
// is tried again when the pool's [CapacitySignal] says capacity may have
// grown; [BacklogPolicy] bounds the queue and can make a channel fail at
// once instead. An activity held back on its turn (the router chose none
// or a full worker, or the workers it may still use were full) goes
// behind those never held back, so it blocks no one; the held-back ones
// are asked again the longest-ago first, at most 16 at each capacity
// change, however many wait. The wait is a context-aware wait on that signal: no
// polling, no I/O.
//
// The package does no I/O and imports no scripting or transport package;
// routers, journals and workers live in packages that import this one.
package engine
