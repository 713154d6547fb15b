// Package engine runs the dispatch conversation that sends one activity of a
// durable workflow to one worker.
//
// It holds the domain types (requests, results, worker state views, recorded
// operations), the small interfaces the conversation needs from the outside
// world (a worker pool, a router, a conversation factory, a recorder and an
// id source), and the [Dispatcher] that drives them through the lifecycle:
// select, link, send, receive, re-route when a linked worker exits, close.
//
// The package does no I/O and imports no scripting or transport package;
// routers, journals and workers live in packages that import this one.
package engine
