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
	"github.com/aion-dispatch/dispatch/router/internal/call"
	"github.com/aion-dispatch/dispatch/router/internal/exprrt"
	"github.com/aion-dispatch/dispatch/router/internal/luart"
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

// lua returns the limits of the Lua runtime, defaults resolved.
func (l Limits) lua() luart.Limits {
	return luart.Limits{MaxString: l.maxString(), CallStack: l.callStack(), RegistryMax: l.registryMax(),
		PoolSize: l.poolSize(), CompileTimeout: l.compileTimeout()}
}

// expr returns the limits of the expr runtime, defaults resolved.
func (l Limits) expr() exprrt.Limits {
	return exprrt.Limits{MaxNodes: l.exprMaxNodes(), MemoryBudget: l.exprMemory(), PoolSize: l.poolSize()}
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
	rt     runner
	// expr is rt when it is expr's: called directly, it is given the
	// caller's Selection by address, where the interface needs a copy.
	expr *exprrt.Program
}

// runner is a compiled script as its language's runtime runs it: Lua's
// (package router/internal/luart) or expr's (router/internal/exprrt).
type runner interface {
	// Run calls the script once on sel, stopping it once it has run for
	// timeout: the script's own time, counted from when it starts, not
	// from when the call waited for an interpreter. A call stopped at its
	// timeout fails with call.ErrTimeout, one whose ctx ended with ctx's
	// error; an error of the script's is a *call.Error. sel is passed
	// by value: through an interface, a pointer would make every caller's
	// Selection escape to the heap.
	Run(ctx context.Context, sel engine.Selection, timeout time.Duration) (call.Result, error)
}

// Lang returns the script's language.
func (p *Program) Lang() Lang { return p.lang }

// Hash returns "sha256:<hex>" of the language and the source.
func (p *Program) Hash() string { return p.hash }

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
		var lp *luart.Program
		lp, err = luart.Compile(source, c.limits.lua())
		p.rt = lp
	case Expr:
		var ep *exprrt.Program
		ep, err = exprrt.Compile(source, c.limits.expr())
		p.rt, p.expr = ep, ep
	default:
		_, err = ParseLang(string(lang))
	}
	if err != nil {
		return nil, located(lang, name, err)
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
func (p *Program) run(ctx context.Context, sel *engine.Selection, timeout time.Duration) (call.Result, error) {
	res, err := p.rt.Run(ctx, *sel, timeout)
	if err != nil {
		return res, located(p.lang, "", err)
	}
	return res, nil
}

// runExpr is run for an expr program, which is given sel by address.
func (p *Program) runExpr(ctx context.Context, sel *engine.Selection, timeout time.Duration) (call.Result, error) {
	res, err := p.expr.RunSelection(ctx, sel, timeout)
	if err != nil {
		return res, located(p.lang, "", err)
	}
	return res, nil
}
