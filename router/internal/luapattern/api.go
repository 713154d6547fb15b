package luapattern

import (
	"context"
	"strings"
)

// The entry points of the string library's pattern functions, and the
// captures they return.

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
