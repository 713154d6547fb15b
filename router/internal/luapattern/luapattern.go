// Package luapattern matches Lua 5.1 patterns with a step budget: the
// matching behind string.find, string.match, string.gmatch and string.gsub
// in the routing sandbox.
//
// gopher-lua's matcher backtracks without bound inside one call into Go,
// where the deadline cannot reach: ("a"):rep(300):match(".-.-.-b") runs for
// seconds. This one is the same backtracking algorithm (the reference
// implementation's structure: match, max/min expand, captures), but every
// step counts, the call's context is consulted every few thousand steps,
// and a match past the budget fails with an error. It is tested
// differentially against gopher-lua's matcher.
//
// The package knows nothing of Lua values: subjects, patterns and captures
// are Go strings and positions, and the caller turns them into its
// interpreter's values.
package luapattern

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

const (
	maxCaptures     = 32
	capUnfinished   = -1
	capPosition     = -2
	patternSpecials = "^$*+?.([%-"
	checkSteps      = 4096
)

// maxPatternSteps bounds one pattern call even without a deadline.
const maxPatternSteps = 50_000_000

// ErrTooComplex is the error of a match stopped by the step budget.
var ErrTooComplex = errors.New("pattern too complex (it would backtrack too long); simplify it or shorten the subject")

// patternError is raised inside the matcher and returned by its entry points.
type patternError struct{ err error }

type capture struct{ init, len int }

type matcher struct {
	src, pat string
	level    int
	capture  [maxCaptures]capture
	steps    int
	budget   int // steps allowed; 0 means maxPatternSteps
	ctx      context.Context
}

func (m *matcher) fail(format string, args ...any) {
	panic(patternError{fmt.Errorf(format, args...)})
}

// step counts one unit of work and checks the budget and the context.
func (m *matcher) step() {
	m.steps++
	if m.steps%checkSteps != 0 {
		return
	}
	if budget := m.budget; m.steps > maxPatternSteps || (budget > 0 && m.steps > budget) {
		panic(patternError{ErrTooComplex})
	}
	if m.ctx != nil {
		if err := m.ctx.Err(); err != nil {
			panic(patternError{err})
		}
	}
}

func (m *matcher) classEnd(p int) int {
	c := m.pat[p]
	p++
	switch c {
	case '%':
		if p >= len(m.pat) {
			m.fail("malformed pattern (ends with '%%')")
		}
		return p + 1
	case '[':
		if p < len(m.pat) && m.pat[p] == '^' {
			p++
		}
		for { // look for a ']'
			if p >= len(m.pat) {
				m.fail("malformed pattern (missing ']')")
			}
			c := m.pat[p]
			p++
			if c == '%' && p < len(m.pat) {
				p++ // skip escapes such as %]
			}
			if p < len(m.pat) && m.pat[p] == ']' {
				return p + 1
			}
		}
	}
	return p
}

func matchClass(c, cl byte) bool {
	var res bool
	switch lower(cl) {
	case 'a':
		res = isAlpha(c)
	case 'c':
		res = c < 32 || c == 127
	case 'd':
		res = c >= '0' && c <= '9'
	case 'g':
		res = c > 32 && c < 127
	case 'l':
		res = c >= 'a' && c <= 'z'
	case 'p':
		res = isPunct(c)
	case 's':
		res = c == ' ' || (c >= '\t' && c <= '\r')
	case 'u':
		res = c >= 'A' && c <= 'Z'
	case 'w':
		res = isAlpha(c) || (c >= '0' && c <= '9')
	case 'x':
		res = (c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'f')
	case 'z':
		res = c == 0
	default:
		return cl == c
	}
	if cl >= 'A' && cl <= 'Z' {
		return !res
	}
	return res
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

func isAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func isPunct(c byte) bool {
	return c > 32 && c < 127 && !isAlpha(c) && !(c >= '0' && c <= '9')
}

// matchBracketClass reports whether c is in the set from p ('[') to ec (']').
func (m *matcher) matchBracketClass(c byte, p, ec int) bool {
	sig := true
	if m.pat[p+1] == '^' {
		sig = false
		p++
	}
	for p++; p < ec; p++ {
		switch {
		case m.pat[p] == '%':
			p++
			if matchClass(c, m.pat[p]) {
				return sig
			}
		case p+2 < ec && m.pat[p+1] == '-':
			p += 2
			if m.pat[p-2] <= c && c <= m.pat[p] {
				return sig
			}
		case m.pat[p] == c:
			return sig
		}
	}
	return !sig
}

func (m *matcher) singleMatch(s, p, ep int) bool {
	if s >= len(m.src) {
		return false
	}
	c := m.src[s]
	switch m.pat[p] {
	case '.':
		return true
	case '%':
		return matchClass(c, m.pat[p+1])
	case '[':
		return m.matchBracketClass(c, p, ep-1)
	}
	return m.pat[p] == c
}

// match returns where a match of pat[p:] starting at src[s] ends, or -1.
func (m *matcher) match(s, p int) int {
	for {
		m.step()
		if p == len(m.pat) {
			return s
		}
		switch m.pat[p] {
		case '(':
			if p+1 < len(m.pat) && m.pat[p+1] == ')' {
				return m.startCapture(s, p+2, capPosition)
			}
			return m.startCapture(s, p+1, capUnfinished)
		case ')':
			return m.endCapture(s, p+1)
		case '$':
			if p+1 == len(m.pat) {
				if s == len(m.src) {
					return s
				}
				return -1
			}
		case '%':
			if p+1 < len(m.pat) {
				switch c := m.pat[p+1]; {
				case c == 'b':
					s = m.matchBalance(s, p+2)
					if s == -1 {
						return -1
					}
					p += 4
					continue
				case c == 'f':
					p += 2
					if p >= len(m.pat) || m.pat[p] != '[' {
						m.fail("missing '[' after '%%f' in pattern")
					}
					ep := m.classEnd(p)
					var prev, cur byte
					if s > 0 {
						prev = m.src[s-1]
					}
					if s < len(m.src) {
						cur = m.src[s]
					}
					if !m.matchBracketClass(prev, p, ep-1) && m.matchBracketClass(cur, p, ep-1) {
						p = ep
						continue
					}
					return -1
				case c >= '0' && c <= '9':
					s = m.matchCapture(s, c)
					if s == -1 {
						return -1
					}
					p += 2
					continue
				}
			}
		}
		// A single-character class, maybe with a quantifier.
		ep := m.classEnd(p)
		matched := m.singleMatch(s, p, ep)
		if ep < len(m.pat) {
			switch m.pat[ep] {
			case '?':
				if matched {
					if r := m.match(s+1, ep+1); r != -1 {
						return r
					}
				}
				p = ep + 1
				continue
			case '*':
				return m.maxExpand(s, p, ep)
			case '+':
				if !matched {
					return -1
				}
				return m.maxExpand(s+1, p, ep)
			case '-':
				return m.minExpand(s, p, ep)
			}
		}
		if !matched {
			return -1
		}
		s, p = s+1, ep
	}
}

func (m *matcher) maxExpand(s, p, ep int) int {
	i := 0
	for m.singleMatch(s+i, p, ep) {
		m.step()
		i++
	}
	for ; i >= 0; i-- {
		if r := m.match(s+i, ep+1); r != -1 {
			return r
		}
	}
	return -1
}

func (m *matcher) minExpand(s, p, ep int) int {
	for {
		if r := m.match(s, ep+1); r != -1 {
			return r
		}
		if !m.singleMatch(s, p, ep) {
			return -1
		}
		s++
	}
}

func (m *matcher) startCapture(s, p, what int) int {
	if m.level >= maxCaptures {
		m.fail("too many captures")
	}
	m.capture[m.level] = capture{init: s, len: what}
	m.level++
	r := m.match(s, p)
	if r == -1 {
		m.level--
	}
	return r
}

func (m *matcher) endCapture(s, p int) int {
	l := m.captureToClose()
	m.capture[l].len = s - m.capture[l].init
	r := m.match(s, p)
	if r == -1 {
		m.capture[l].len = capUnfinished
	}
	return r
}

func (m *matcher) captureToClose() int {
	for l := m.level - 1; l >= 0; l-- {
		if m.capture[l].len == capUnfinished {
			return l
		}
	}
	m.fail("invalid pattern capture")
	return 0
}

func (m *matcher) matchBalance(s, p int) int {
	if p+1 >= len(m.pat) {
		m.fail("missing arguments to '%%b'")
	}
	if s >= len(m.src) || m.src[s] != m.pat[p] {
		return -1
	}
	b, e := m.pat[p], m.pat[p+1]
	depth := 1
	for i := s + 1; i < len(m.src); i++ {
		m.step()
		switch m.src[i] {
		case e:
			depth--
			if depth == 0 {
				return i + 1
			}
		case b:
			depth++
		}
	}
	return -1
}

func (m *matcher) checkCapture(c byte) int {
	l := int(c - '1')
	if l < 0 || l >= m.level || m.capture[l].len == capUnfinished {
		m.fail("invalid capture index %%%d", l+1)
	}
	return l
}

func (m *matcher) matchCapture(s int, c byte) int {
	l := m.checkCapture(c)
	n := m.capture[l].len
	if n < 0 {
		return -1 // a position capture matches no text (as in Lua)
	}
	if len(m.src)-s >= n && m.src[m.capture[l].init:m.capture[l].init+n] == m.src[s:s+n] {
		return s + n
	}
	return -1
}

// Capture is one capture of a match: a string, or a 1-based position.
type Capture struct {
	Str      string // the captured text, unless Position
	Pos      int    // the 1-based position captured by (), when Position
	Position bool   // the capture is a position, not text
}

// captures returns the captures of the match s..e, or the whole match when
// the pattern has none and whole is true.
func (m *matcher) captures(s, e int, whole bool) []Capture {
	n := m.level
	if n == 0 && whole {
		return []Capture{{Str: m.src[s:e]}}
	}
	out := make([]Capture, n)
	for i := range n {
		c := m.capture[i]
		switch c.len {
		case capUnfinished:
			m.fail("unfinished capture")
		case capPosition:
			out[i] = Capture{Pos: c.init + 1, Position: true}
		default:
			out[i] = Capture{Str: m.src[c.init : c.init+c.len]}
		}
	}
	return out
}

// Find implements string.find: the start and end (1-based) of the first
// match of pat in src at or after init (1-based; negative counts from the
// end), with its captures; start 0 when there is none. With plain, pat is
// looked for as text.
func Find(ctx context.Context, src, pat string, init int, plain bool) (start, end int, caps []Capture, err error) {
	return find(ctx, src, pat, init, plain, true)
}

// Match implements string.match: the start and end (1-based) of the first
// match at or after init, as in [Find], and its captures, or the whole
// match when the pattern has none; start 0 when there is none.
func Match(ctx context.Context, src, pat string, init int) (start, end int, caps []Capture, err error) {
	return find(ctx, src, pat, init, false, false)
}

// find implements Find (find true) and Match (find false).
func find(ctx context.Context, src, pat string, init int, plain, find bool) (start, end int, caps []Capture, err error) {
	defer recoverPattern(&err)
	if init < 0 {
		init = len(src) + init + 1
	}
	if init < 1 {
		init = 1
	}
	if init > len(src)+1 {
		return 0, 0, nil, nil
	}
	if find && (plain || !strings.ContainsAny(pat, patternSpecials)) {
		i := strings.Index(src[init-1:], pat)
		if i < 0 {
			return 0, 0, nil, nil
		}
		return init + i, init + i + len(pat) - 1, nil, nil
	}
	m := &matcher{src: src, ctx: ctx}
	anchor := strings.HasPrefix(pat, "^")
	if anchor {
		pat = pat[1:]
	}
	m.pat = pat
	m.validate()
	for s := init - 1; s <= len(src); s++ {
		m.level = 0
		if e := m.match(s, 0); e != -1 {
			return s + 1, e, m.captures(s, e, !find), nil
		}
		if anchor {
			break
		}
	}
	return 0, 0, nil, nil
}

// Gmatch walks the matches of a pattern, as string.gmatch does.
type Gmatch struct {
	src, pat string
	pos      int // where the next search starts, 0-based
}

// NewGmatch returns a walk over the matches of pat in src.
func NewGmatch(src, pat string) *Gmatch { return &Gmatch{src: src, pat: pat} }

// Next returns the captures of the next match, or nil at the end.
func (g *Gmatch) Next(ctx context.Context) (caps []Capture, err error) {
	defer recoverPattern(&err)
	m := &matcher{src: g.src, pat: g.pat, ctx: ctx}
	m.validate()
	for s := g.pos; s <= len(g.src); s++ {
		m.level = 0
		if e := m.match(s, 0); e != -1 {
			g.pos = e
			if e == s {
				g.pos++ // an empty match: move on at least one position
			}
			return m.captures(s, e, true), nil
		}
	}
	g.pos = len(g.src) + 1
	return nil, nil
}

// GsubMatch is one match of [Gsub]: its bounds (0-based, end exclusive)
// and the matcher that holds its captures.
type GsubMatch struct {
	Start, End int
	m          *matcher
}

// Captures returns the match's captures, or the whole match when the
// pattern has none. Call it only inside the callback of [Gsub] that was
// given the match.
func (gm GsubMatch) Captures() []Capture { return gm.m.captures(gm.Start, gm.End, true) }

// Gsub calls each for the matches string.gsub replaces, at most
// limit of them (limit < 0: all), and returns how many there were. Text
// between matches is handed to keep.
func Gsub(ctx context.Context, src, pat string, limit int, keep func(string), each func(GsubMatch) error) (n int, err error) {
	defer recoverPattern(&err)
	anchor := strings.HasPrefix(pat, "^")
	if anchor {
		pat = pat[1:]
	}
	m := &matcher{src: src, pat: pat, ctx: ctx}
	m.validate()
	s := 0
	for limit < 0 || n < limit {
		m.level = 0
		e := m.match(s, 0)
		if e != -1 {
			n++
			if err := each(GsubMatch{Start: s, End: e, m: m}); err != nil {
				return n, err
			}
		}
		switch {
		case e != -1 && e > s:
			s = e
		case s < len(src):
			keep(src[s : s+1])
			s++
		default:
			keep(src[s:])
			return n, nil
		}
		if anchor {
			break
		}
	}
	keep(src[s:])
	return n, nil
}

// validate rejects a malformed pattern before matching, so that the error
// does not depend on how far the subject lets the matcher get.
func (m *matcher) validate() {
	depth := 0
	for p := 0; p < len(m.pat); {
		switch c := m.pat[p]; {
		case c == '(':
			depth++
			p++
		case c == ')':
			if depth == 0 {
				m.fail("invalid pattern capture")
			}
			depth--
			p++
		case c == '%' && p+1 < len(m.pat) && m.pat[p+1] == 'b':
			if p+3 >= len(m.pat) {
				m.fail("missing arguments to '%%b'")
			}
			p += 4
		case c == '%' && p+1 < len(m.pat) && m.pat[p+1] == 'f':
			if p+2 >= len(m.pat) || m.pat[p+2] != '[' {
				m.fail("missing '[' after '%%f' in pattern")
			}
			p = m.classEnd(p + 2)
		default:
			p = m.classEnd(p)
		}
	}
	if depth > 0 {
		m.fail("unfinished capture")
	}
}

func recoverPattern(err *error) {
	if r := recover(); r != nil {
		pe, ok := r.(patternError)
		if !ok {
			panic(r)
		}
		*err = pe.err
	}
}
