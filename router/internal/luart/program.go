package luart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
	"github.com/aion-dispatch/dispatch/router/internal/luacheck"
)

// Limits bound what a script may do; the router resolves its defaults.
type Limits struct {
	MaxString      int           // bytes of any string a script builds, and of a pattern's subject
	CallStack      int           // Lua call depth
	RegistryMax    int           // slots of the Lua value stack
	PoolSize       int           // idle states a program keeps
	CompileTimeout time.Duration // bounds the chunk's top-level code when it is compiled
}

// Program is a compiled Lua routing script with its pool of states.
// gopher-lua states are not safe for concurrent use: a call borrows one, and
// gives it back only if the call neither failed nor timed out.
type Program struct {
	proto  *lua.FunctionProto // the chunk, after rewriting concatenation
	pure   bool               // one run of the chunk serves every call (see luacheck.Purity)
	direct bool               // the chunk writes only to tables it builds: candidates need no proxies
	fast   fastPath           // the route compiled to Go, when it is in package luafast's subset
	src    []byte
	limits Limits

	mu   sync.Mutex
	free []*luaState

	madeState func() // a test's hook: called when a call has to make a state
}

// luaChunkName is the chunk name the interpreter puts in front of runtime
// errors; Run takes it off and reports the line, and the router names the
// script's path.
const luaChunkName = "script"

// Compile compiles a Lua routing script: it parses it, checks the names it
// reads (package luacheck), rewrites concatenation to the capped host call,
// and runs its top-level code once, so that a missing route function or a
// top-level error is a compile error. An error at a place in the script is
// a [*call.Error].
func Compile(src []byte, limits Limits) (*Program, error) {
	return compile(src, limits, true)
}

// CompileUnchecked is Compile without the check of names, for the tests of
// what the sandbox itself refuses at run time.
func CompileUnchecked(src []byte, limits Limits) (*Program, error) {
	return compile(src, limits, false)
}

// compile compiles, checking the names the script reads unless told not to.
func compile(src []byte, limits Limits, checkNamesFirst bool) (*Program, error) {
	chunk, err := parse.Parse(bytes.NewReader(src), luaChunkName)
	if err != nil {
		var pe *parse.Error
		if errors.As(err, &pe) {
			se := &call.Error{Line: pe.Pos.Line, Column: pe.Pos.Column, Message: pe.Message, Err: err}
			if pe.Token != "" {
				se.Message += " near '" + pe.Token + "'"
			}
			if pe.Pos.Line == parse.EOF {
				last := strings.Count(string(src), "\n") // the last line, if the file ends with a newline
				if !bytes.HasSuffix(src, []byte("\n")) {
					last++
				}
				se.Line, se.Column = max(last, 1), 0
				se.Message = pe.Message + " at end of file: is an end or a closing bracket missing?"
			}
			se.Snippet = call.SourceLine(src, se.Line)
			// gopher-lua places a token at its last character; point at its
			// first (a string's token is its text, the quotes around it).
			if t := pe.Token; t != "" && se.Column > 0 {
				before := se.Snippet[:min(se.Column, len(se.Snippet))]
				for _, form := range []string{t, `"` + t + `"`, "'" + t + "'"} {
					if strings.HasSuffix(before, form) {
						se.Column -= len(form) - 1
						break
					}
				}
			}
			return nil, se
		}
		return nil, &call.Error{Message: err.Error(), Err: err}
	}
	if ps := luacheck.Names(chunk); checkNamesFirst && len(ps) > 0 {
		var errs []*call.Error
		for _, p := range ps {
			snippet := call.SourceLine(src, p.Line)
			errs = append(errs, &call.Error{Line: p.Line, Column: luacheck.TokenColumn(snippet, p.Token), Message: p.Message, Snippet: snippet})
		}
		if len(errs) > 1 {
			errs[0].More = errs[1:]
		}
		return nil, errs[0]
	}
	pure, direct := luacheck.Purity(chunk)
	fast := compileFast(chunk, pure)
	rewriteConcat(chunk)
	proto, err := lua.Compile(chunk, luaChunkName)
	if err != nil {
		se := &call.Error{Message: err.Error(), Err: err}
		var ce *lua.CompileError
		if errors.As(err, &ce) {
			se.Line, se.Message, se.Snippet = ce.Line, ce.Message, call.SourceLine(src, ce.Line)
		}
		return nil, se
	}
	p := &Program{proto: proto, pure: pure, direct: direct, fast: fast, src: src, limits: limits}
	// Run the chunk once now, so that top-level errors and a missing route
	// function are compile errors rather than the first dispatch's failure.
	st, err := p.newState()
	if err != nil {
		return nil, p.scriptError(err)
	}
	cc := st.ctx
	cc.reset(context.Background(), time.Now().Add(limits.CompileTimeout))
	if err := st.prepare(); err != nil {
		if cc.fired() != nil {
			return nil, &call.Error{Message: "top-level code did not finish within " +
				limits.CompileTimeout.String(), Err: call.ErrTimeout}
		}
		return nil, p.scriptError(err)
	}
	p.put(st)
	return p, nil
}

// get borrows a state, making one when none is free.
func (p *Program) get() (*luaState, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		st := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return st, nil
	}
	p.mu.Unlock()
	if p.madeState != nil {
		p.madeState()
	}
	return p.newState()
}

// put returns a clean state to the pool, or drops it when the pool is full.
func (p *Program) put(st *luaState) {
	p.mu.Lock()
	if len(p.free) < p.limits.PoolSize {
		p.free = append(p.free, st)
	}
	p.mu.Unlock()
}

// Run runs the script's route function for one selection, stopping it once
// it has run for timeout: the time counts from the call, once a state is
// borrowed (or made, which takes longer than many calls). A call stopped at
// its timeout fails with [call.ErrTimeout], one whose ctx ended with ctx's
// error, and a script's error is a [*call.Error].
func (p *Program) Run(ctx context.Context, sel engine.Selection, timeout time.Duration) (result call.Result, err error) {
	result, done, err := p.fast.run(ctx, sel, &timeout)
	if done {
		return result, err
	}
	st, err := p.get()
	if err != nil {
		return call.Result{}, err
	}
	clean := false
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("lua interpreter panic: %v", r)
			clean = false
		}
		st.callIn.Release()
		st.callIn, st.in = call.Input{}, nil
		if clean {
			p.put(st)
		}
	}()
	st.callIn.Sel = sel
	st.ctx.reset(ctx, time.Now().Add(timeout))
	result, err = st.call(&st.callIn)
	// The clock is read every 256 instructions; one builtin call (a pattern
	// match, say) can outrun that, so look once more now.
	st.ctx.check()
	if fe := st.ctx.fired(); fe != nil {
		if errors.Is(fe, errDeadline) {
			return call.Result{}, call.ErrTimeout
		}
		return call.Result{}, fe
	}
	if err != nil {
		return call.Result{}, p.scriptError(err)
	}
	clean = true
	return result, nil
}

var luaErrPos = regexp.MustCompile(`^` + luaChunkName + `:(\d+): ?`)

// scriptError turns an interpreter error into a call.Error at the line the
// interpreter named.
func (p *Program) scriptError(err error) error {
	msg := err.Error()
	var ae *lua.ApiError
	if errors.As(err, &ae) && ae.Object != nil {
		msg = ae.Object.String()
	}
	se := &call.Error{Err: err}
	if m := luaErrPos.FindStringSubmatch(msg); m != nil {
		se.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		se.Snippet = call.SourceLine(p.src, se.Line)
	}
	se.Message = strings.TrimSpace(msg)
	return se
}
