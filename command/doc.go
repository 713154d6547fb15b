// Package command runs a program as an activity handler: any executable, in
// any language, becomes the code behind a worker.
//
// It has two modes, each a type whose Handle method has the shape of a
// worker library's handler, func(ctx, engine.ActivityRequest)
// (engine.ActivityResult, error):
//
//   - A [Runner] starts the program once per activity: the activity's input
//     on its stdin, its stdout the completed output, a non-zero exit a
//     failure carrying the tail of its stderr. Its metadata is in
//     environment variables (DISPATCH_WORKFLOW_ID and the others listed at
//     [Runner.Handle]).
//   - A [Server] keeps one program running and speaks JSON lines with it:
//     one request line per activity on its stdin, one response line per
//     activity on its stdout, several activities in flight at once told
//     apart by an id, a cancel line when an activity's context ends. It
//     restarts the program, with a backoff, on the next activity after the
//     program exits.
//
// Both run the program in a process group of its own, and end it (SIGTERM
// to the group, then SIGKILL after a grace) when an activity's context ends
// or the server shuts down; nothing the program started outlives it in that
// group. docs/workers.md in the repository describes the environment, the
// line format and the failures with examples.
package command
