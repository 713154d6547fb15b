package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// DefaultMaxOutput is the bound on a [Runner]'s stdout when
// RunnerOptions.MaxOutput is 0.
const DefaultMaxOutput = 8 << 20

// RunnerOptions configures a [Runner].
type RunnerOptions struct {
	Program
	// MaxOutput bounds the program's stdout, in bytes; a program that
	// writes more is killed and its activity fails saying so. 0 means
	// [DefaultMaxOutput].
	MaxOutput int
	// OutputContentType is the content type of a completed output; ""
	// means the input's content type (a filter such as tr keeps it).
	OutputContentType string
}

// Runner runs a program once per activity. It holds no process between
// activities and may run any number of activities at once.
type Runner struct {
	opts RunnerOptions
}

// NewRunner checks opts (the program must be found) and returns a Runner.
func NewRunner(opts RunnerOptions) (*Runner, error) {
	if err := opts.Program.validate(); err != nil {
		return nil, err
	}
	if opts.MaxOutput < 0 {
		return nil, fmt.Errorf("program %s: max output %d is negative", opts.Path, opts.MaxOutput)
	}
	if opts.MaxOutput == 0 {
		opts.MaxOutput = DefaultMaxOutput
	}
	opts.Args = append([]string(nil), opts.Args...)
	opts.Env = append([]string(nil), opts.Env...)
	return &Runner{opts: opts}, nil
}

// Handle runs the program for one activity and returns when the program
// and its process group are gone.
//
// The program gets the input's bytes on its stdin as they are, whatever
// the content type (a JSON input is its JSON text), then EOF. It runs in
// the caller's environment plus Program.Env plus these variables:
//
//	DISPATCH_WORKFLOW_ID       the activity's workflow id
//	DISPATCH_ACTIVITY_TYPE     its activity type
//	DISPATCH_TASK_QUEUE        its task queue ("" if none)
//	DISPATCH_CONTENT_TYPE      the input's content type ("" if none)
//	DISPATCH_START_TO_CLOSE_MS its start-to-close bound in milliseconds, if any
//	DISPATCH_DEADLINE          ctx's deadline, RFC 3339 in UTC, if any
//
// There is no attempt number: a handler's request does not carry one.
//
// Exit status 0 completes the activity with the program's stdout as its
// output (content type RunnerOptions.OutputContentType, or the input's).
// Any other end fails it, with a message naming the program, saying how it
// ended (exit status or signal) and ending with the tail of its stderr. A
// stdout longer than MaxOutput fails it too. When ctx ends first, the
// program's group gets SIGTERM, then SIGKILL after KillGrace, and the
// activity fails saying it timed out or was cancelled. Whatever is left in
// the group when the program exits is killed.
//
// The error is not nil only when the program could not be started; it
// names the program.
func (r *Runner) Handle(ctx context.Context, req engine.ActivityRequest) (engine.ActivityResult, error) {
	name := r.opts.name()
	if err := ctx.Err(); err != nil {
		return engine.Failed(fmt.Sprintf("program %s was not started: %s", name, endedBy(ctx))), nil
	}
	p, err := start(&r.opts.Program, activityEnv(ctx, req))
	if err != nil {
		return engine.ActivityResult{}, err
	}
	go p.wait()

	stdinDone := make(chan struct{})
	go func() { // ends when the input is written or the pipe breaks or closes
		defer close(stdinDone)
		_, _ = p.stdin.Write(req.Input.Data)
		_ = p.stdin.Close()
	}()
	out := &boundedBuffer{max: r.opts.MaxOutput, over: make(chan struct{})}
	readDone := make(chan struct{})
	go func() { // ends at EOF on both pipes, or when drain closes them
		defer close(readDone)
		stderrDone := make(chan struct{})
		go func() { defer close(stderrDone); p.copyStderr() }()
		_, _ = io.Copy(out, p.stdout)
		<-stderrDone
	}()

	var why string // why the program was stopped, if it was
	select {
	case <-p.exited:
	case <-ctx.Done():
		why = endedBy(ctx)
		p.terminate()
	case <-out.over:
		why = fmt.Sprintf("wrote more than %d bytes to stdout", r.opts.MaxOutput)
		p.terminate()
	}
	p.killLeftovers()
	p.drain(readDone)
	<-stdinDone

	switch {
	case out.overflowed():
		return engine.Failed(p.failure(fmt.Sprintf("wrote more than %d bytes to stdout; %s", r.opts.MaxOutput, stopped(p)))), nil
	case why != "":
		return engine.Failed(p.failure(fmt.Sprintf("%s; %s", why, stopped(p)))), nil
	case p.err == nil && p.state.Success():
		ct := r.opts.OutputContentType
		if ct == "" {
			ct = req.Input.ContentType
		}
		return engine.Completed(engine.Payload{ContentType: ct, Data: out.buf.Bytes()}), nil
	default:
		return engine.Failed(p.failure(p.describeExit())), nil
	}
}

// stopped says how a program that was stopped ended.
func stopped(p *process) string {
	sig := p.lastSignal()
	if sig == "SIGKILL" {
		return fmt.Sprintf("sent SIGTERM to its process group, then SIGKILL after %v; it %s", p.prog.killGrace(), p.describeExit())
	}
	return fmt.Sprintf("sent %s to its process group; it %s", sig, p.describeExit())
}

// endedBy says why ctx ended, e.g. "timed out (context deadline exceeded)".
func endedBy(ctx context.Context) string {
	cause := context.Cause(ctx)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("timed out (%v)", cause)
	}
	return fmt.Sprintf("was cancelled (%v)", cause)
}

// activityEnv returns the DISPATCH_* variables of an activity.
func activityEnv(ctx context.Context, req engine.ActivityRequest) []string {
	env := []string{
		"DISPATCH_WORKFLOW_ID=" + req.WorkflowID,
		"DISPATCH_ACTIVITY_TYPE=" + req.ActivityType,
		"DISPATCH_TASK_QUEUE=" + req.TaskQueue,
		"DISPATCH_CONTENT_TYPE=" + req.Input.ContentType,
	}
	if req.StartToClose > 0 {
		env = append(env, "DISPATCH_START_TO_CLOSE_MS="+strconv.FormatInt(req.StartToClose.Milliseconds(), 10))
	}
	if d, ok := ctx.Deadline(); ok {
		env = append(env, "DISPATCH_DEADLINE="+d.UTC().Format(time.RFC3339Nano))
	}
	return env
}

// boundedBuffer keeps up to max bytes and closes over at the first byte
// beyond; it discards the rest, so that the writer is never blocked.
type boundedBuffer struct {
	buf  bytes.Buffer
	max  int
	over chan struct{}
	done bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if b.done {
		return len(p), nil
	}
	if b.buf.Len()+len(p) > b.max {
		b.buf.Write(p[:b.max-b.buf.Len()])
		b.done = true
		close(b.over)
		return len(p), nil
	}
	b.buf.Write(p)
	return len(p), nil
}

// overflowed reports whether more than max bytes were written; call it
// once the writing goroutine has returned.
func (b *boundedBuffer) overflowed() bool { return b.done }
