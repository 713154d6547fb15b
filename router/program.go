package router

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// Lang is a routing script language.
type Lang string

// The languages a routing script may be written in.
const (
	Lua  Lang = "lua"
	Expr Lang = "expr"
)

// ParseLang returns the language named s ("lua" or "expr").
func ParseLang(s string) (Lang, error) {
	switch Lang(s) {
	case Lua, Expr:
		return Lang(s), nil
	}
	return "", fmt.Errorf("unknown script language %q (want lua or expr)", s)
}

// Limits bound what a script may do. The zero value means the defaults.
type Limits struct {
	// MaxStringBytes caps every string a Lua script builds (string.rep,
	// concatenation, string.format, gsub, table.concat) and the subject of
	// pattern functions. Default 1 MiB.
	MaxStringBytes int
	// CallStackSize is the Lua call depth. Default 200.
	CallStackSize int
	// RegistryMaxSize caps the Lua value stack. Default 65536 slots.
	RegistryMaxSize int
	// CompileTimeout bounds a Lua script's top-level code when it is
	// compiled. Default 1s.
	CompileTimeout time.Duration
	// PoolSize is how many idle Lua states a program keeps. Default
	// 2×GOMAXPROCS.
	PoolSize int
	// ExprMaxNodes caps the size of an expr program. Default 10000.
	ExprMaxNodes uint
	// ExprMemoryBudget caps what one expr run may allocate, in the VM's
	// units. Default 1e6.
	ExprMemoryBudget uint
	// MaxConcurrentCalls, if positive, bounds how many calls of one
	// channel's script ([Script]) run at once; further calls wait (their
	// deadline starts when they run). Whatever it is, a channel whose
	// calls keep timing out (more than about one in five lately) runs one
	// call at a time until its calls finish in time again, so that a
	// script looping into its deadline holds one core, not every core; a
	// call that waits a whole deadline for its turn then fails with
	// ErrScriptThrottled rather than queue. Default 0: no bound but that
	// one.
	MaxConcurrentCalls int
}

func (l Limits) maxString() int       { return orDefault(l.MaxStringBytes, 1<<20) }
func (l Limits) callStack() int       { return orDefault(l.CallStackSize, 200) }
func (l Limits) registryMax() int     { return orDefault(l.RegistryMaxSize, 1<<16) }
func (l Limits) poolSize() int        { return orDefault(l.PoolSize, 2*runtime.GOMAXPROCS(0)) }
func (l Limits) exprMaxNodes() uint   { return orDefault(l.ExprMaxNodes, 10_000) }
func (l Limits) exprMemory() uint     { return orDefault(l.ExprMemoryBudget, 1_000_000) }
func (l Limits) concurrentCalls() int { return max(l.MaxConcurrentCalls, 0) }
func (l Limits) compileTimeout() time.Duration {
	return orDefault(l.CompileTimeout, time.Second)
}

func orDefault[T int | uint | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Program is a compiled routing script. It is immutable and safe for
// concurrent use; identical sources share one Program (see [Compiler]).
type Program struct {
	lang   Lang
	hash   string // "sha256:<hex>" of language and source
	limits Limits
	lua    *luaProgram
	expr   *exprProgram
}

// Lang returns the script's language.
func (p *Program) Lang() Lang { return p.lang }

// Hash returns "sha256:<hex>" of the language and the source.
func (p *Program) Hash() string { return p.hash }

// callInput is what one call of a script sees.
type callInput struct {
	sel     engine.Selection           // a copy: a pointer would make every caller's Selection escape
	views   []engine.ConsumerStateView // sel.Candidates' states, once a helper needs them
	viewBuf *[]engine.ConsumerStateView
}

// viewPool recycles the candidate views helpers work on.
var viewPool = sync.Pool{New: func() any { return new([]engine.ConsumerStateView) }}

// allViews returns the candidates' states, ids filled in, in order. They are
// built on first use: scripts that read candidates directly never need them.
func (in *callInput) allViews() []engine.ConsumerStateView {
	if in.views == nil && len(in.sel.Candidates) > 0 {
		in.viewBuf = viewPool.Get().(*[]engine.ConsumerStateView)
		in.views = views(in.sel.Candidates, *in.viewBuf)
	}
	return in.views
}

// view returns candidate i's state with its id filled in.
func (in *callInput) view(i int) engine.ConsumerStateView {
	w := &in.sel.Candidates[i]
	v := w.State
	v.ID = w.ID
	return v
}

// release returns the views to their pool.
func (in *callInput) release() {
	if in.viewBuf != nil {
		clear(in.views)
		*in.viewBuf = in.views[:0]
		viewPool.Put(in.viewBuf)
		in.viewBuf, in.views = nil, nil
	}
}

// rawResult is what a script returned, before it is checked.
type rawResult struct {
	id        string // the chosen id, when the script returned one
	none      bool   // the script returned nil
	candidate bool   // the script returned a candidate rather than an id
	other     string // what came back when it was neither an id nor nil
}

// describe says what the script returned, for error messages.
func (r rawResult) describe() string {
	switch {
	case r.other != "":
		return r.other
	case r.candidate:
		return fmt.Sprintf("candidate %q", r.id)
	case r.id == "":
		return `"", an empty worker id`
	}
	return fmt.Sprintf("%q", r.id)
}

// Hash returns the content hash a Program of lang and source gets.
func Hash(lang Lang, source []byte) string {
	h := sha256.New()
	h.Write([]byte(lang))
	h.Write([]byte{0})
	h.Write(source)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Compiler compiles routing scripts once: compiling a source it has already
// compiled returns the same Program. It is safe for concurrent use.
type Compiler struct {
	limits Limits
	mu     sync.Mutex
	progs  map[string]*Program
}

// NewCompiler returns a compiler whose programs run under limits.
func NewCompiler(limits Limits) *Compiler {
	return &Compiler{limits: limits, progs: make(map[string]*Program)}
}

// Compile compiles source in lang. name (usually the file's path) is used in
// error messages only. A compile error is a [*ScriptError].
func (c *Compiler) Compile(lang Lang, name string, source []byte) (_ *Program, err error) {
	hash := Hash(lang, source)
	c.mu.Lock()
	p, ok := c.progs[hash]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = &ScriptError{Lang: lang, File: name, Message: fmt.Sprintf("compiler panic: %v", r)}
		}
	}()
	p = &Program{lang: lang, hash: hash, limits: c.limits}
	switch lang {
	case Lua:
		p.lua, err = compileLua(name, source, c.limits)
	case Expr:
		p.expr, err = compileExpr(name, source, c.limits)
	default:
		_, err = ParseLang(string(lang))
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.progs[hash]; ok {
		return prev, nil // compiled concurrently; keep the first
	}
	c.progs[hash] = p
	return p, nil
}

// Forget drops the program with hash from the cache, so that its memory is
// freed once no router uses it.
func (c *Compiler) Forget(hash string) {
	c.mu.Lock()
	delete(c.progs, hash)
	c.mu.Unlock()
}

// Retain drops from the cache every program whose hash keep rejects: what a
// reload compiled and then did not put in service (a config that failed
// after some of its scripts compiled, say) is freed too.
func (c *Compiler) Retain(keep func(hash string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for hash := range c.progs {
		if !keep(hash) {
			delete(c.progs, hash)
		}
	}
}

// Len returns how many compiled programs the cache holds.
func (c *Compiler) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.progs)
}

// run calls the program once on sel, bounded by timeout.
func (p *Program) run(ctx context.Context, sel *engine.Selection, timeout time.Duration) (rawResult, error) {
	if p.lua != nil {
		return p.lua.route(ctx, sel, timeout)
	}
	return p.expr.route(ctx, sel, timeout)
}
