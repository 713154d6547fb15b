package luapattern

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// stock calls string.<fn>(args...) in a plain gopher-lua state and returns
// what came back as text, or "error".
func stock(L *lua.LState, fn string, args ...lua.LValue) []string {
	f := L.GetField(L.GetGlobal("string"), fn)
	top := L.GetTop()
	if err := L.CallByParam(lua.P{Fn: f, NRet: lua.MultRet, Protect: true}, args...); err != nil {
		L.SetTop(top)
		return []string{"error"}
	}
	var out []string
	for i := top + 1; i <= L.GetTop(); i++ {
		out = append(out, L.Get(i).String())
	}
	L.SetTop(top)
	return out
}

func ours(fn, s, p string) []string {
	ctx := context.Background()
	text := func(caps []Capture) []string {
		var out []string
		for _, c := range caps {
			if c.Position {
				out = append(out, fmt.Sprint(c.Pos))
			} else {
				out = append(out, c.Str)
			}
		}
		return out
	}
	switch fn {
	case "find", "match":
		start, end, caps, err := find(ctx, s, p, 1, false, fn == "find")
		if err != nil {
			return []string{"error"}
		}
		if start == 0 {
			return []string{"nil"}
		}
		if fn == "find" {
			return append([]string{fmt.Sprint(start), fmt.Sprint(end)}, text(caps)...)
		}
		return text(caps)
	case "gsub":
		var b strings.Builder
		n, err := Gsub(ctx, s, p, -1, func(k string) { b.WriteString(k) }, func(gm GsubMatch) error {
			b.WriteString("<" + s[gm.Start:gm.End] + ">")
			return nil
		})
		if err != nil {
			return []string{"error"}
		}
		return []string{b.String(), fmt.Sprint(n)}
	}
	return nil
}

func randomPattern(rng *rand.Rand) string {
	// No %f: gopher-lua does not see a frontier at the very start (Lua
	// does); TestFrontierAndBalance checks it against Lua's answers.
	pieces := []string{"a", "b", ".", "%a", "%d", "%s", "[ab]", "[^a]", "[a-c]", "(", ")", "()", "*", "+", "-", "?", "%b()", "1", " "}
	var b strings.Builder
	if rng.IntN(4) == 0 {
		b.WriteString("^")
	}
	for range 1 + rng.IntN(6) {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	if rng.IntN(5) == 0 {
		b.WriteString("$")
	}
	return b.String()
}

func randomSubject(rng *rand.Rand) string {
	const alphabet = "ab1 ()c"
	n := rng.IntN(12)
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

// TestPatternsMatchGopherLua compares the budgeted matcher with
// gopher-lua's on random patterns and subjects: same matches, same
// captures, errors for the same malformed patterns.
func TestPatternsMatchGopherLua(t *testing.T) {
	L := lua.NewState()
	defer L.Close()
	rng := rand.New(rand.NewPCG(1, 9))
	compared := 0
	for range 20000 {
		s, p := randomSubject(rng), randomPattern(rng)
		for _, fn := range []string{"find", "match"} {
			if fn == "find" && !strings.ContainsAny(p, patternSpecials) {
				continue // a plain search in Lua 5.1, where gopher-lua still parses the pattern
			}
			want := stock(L, fn, lua.LString(s), lua.LString(p))
			got := ours(fn, s, p)
			if len(want) == 0 { // gopher-lua's match returns nothing for no match
				want = []string{"nil"}
			}
			if len(want) == 0 || len(got) == 0 {
				if len(want) != len(got) {
					t.Fatalf("string.%s(%q, %q): gopher-lua %q, ours %q", fn, s, p, want, got)
				}
				continue
			}
			if want[0] == "error" || got[0] == "error" {
				if (want[0] == "error") != (got[0] == "error") {
					t.Fatalf("string.%s(%q, %q): gopher-lua %q, ours %q", fn, s, p, want, got)
				}
				continue
			}
			compared++
			if strings.Join(want, "|") != strings.Join(got, "|") {
				t.Fatalf("string.%s(%q, %q): gopher-lua %q, ours %q", fn, s, p, want, got)
			}
		}
	}
	if compared < 10000 {
		t.Errorf("only %d well-formed comparisons", compared)
	}
}

func TestGsubMatchesGopherLua(t *testing.T) {
	L := lua.NewState()
	defer L.Close()
	wrap := L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LString("<" + L.CheckString(1) + ">"))
		return 1
	})
	rng := rand.New(rand.NewPCG(4, 4))
	for range 5000 {
		s, p := randomSubject(rng), randomPattern(rng)
		if strings.Contains(p, "(") || strings.Contains(p, "%f") {
			continue // with captures the function gets them, not the whole match
		}
		want := stock(L, "gsub", lua.LString(s), lua.LString(p), wrap)
		got := ours("gsub", s, p)
		if (want[0] == "error") != (got[0] == "error") || (want[0] != "error" && strings.Join(want, "|") != strings.Join(got, "|")) {
			t.Fatalf("string.gsub(%q, %q, f): gopher-lua %q, ours %q", s, p, want, got)
		}
	}
}

// TestPatternBudget checks the two things that stop a backtracking match
// inside one call into Go: the call's context (its deadline) and the step
// budget. Each must be the cause of the stop it is tested for; the matcher
// would otherwise still end, later, on the other one.
func TestPatternBudget(t *testing.T) {
	src, pattern := strings.Repeat("a", 300), ".-.-.-b"
	backtrack := func(ctx context.Context, budget int) (*matcher, error) {
		m := &matcher{src: src, pat: pattern, budget: budget, ctx: ctx}
		err := func() (err error) {
			defer recoverPattern(&err)
			m.match(0, 0)
			return nil
		}()
		return m, err
	}

	// The context is consulted every checkSteps steps: one that has ended
	// stops the match at the first check, whatever the budget.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m, err := backtrack(ctx, 0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("under an ended context: %v, want context.Canceled", err)
	} else if m.steps > checkSteps {
		t.Errorf("under an ended context the match ran %d steps, want at most %d", m.steps, checkSteps)
	}

	// A deadline stops it soon after it passes, through Match as the
	// string library calls it. The bound is generous (a loaded machine, the
	// race detector); without the context check the match runs on until the
	// step budget ends it with ErrTooComplex.
	const deadline = 20 * time.Millisecond
	dctx, dcancel := context.WithTimeout(context.Background(), deadline)
	defer dcancel()
	start := time.Now()
	_, _, _, err = Match(dctx, src, pattern, 1)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("under a %v deadline: %v after %v, want context.DeadlineExceeded", deadline, err, took)
	} else if limit := 100 * deadline; took > limit {
		t.Errorf("stopped %v after the start, more than %v for a %v deadline", took, limit, deadline)
	}

	// Without a deadline, the step budget stops it (a small one here), and
	// no later than the first check past it.
	const budget = 100_000
	m, err = backtrack(context.Background(), budget)
	if err != ErrTooComplex {
		t.Errorf("without a deadline: %v, want the step budget", err)
	} else if m.steps > budget+checkSteps {
		t.Errorf("a budget of %d steps stopped the match after %d", budget, m.steps)
	}
}

// Answers of the reference Lua 5.1 interpreter.
func TestFrontierAndBalance(t *testing.T) {
	for _, tc := range []struct {
		fn, s, p string
		want     string
	}{
		{"find", "THE (quick) fox", "%f[%a]%a+", "1|3"},
		{"match", "THE (quick) fox", "%f[%l]%a+", "quick"},
		{"find", "THE (quick) fox", "%f[%a]", "1|0"},
		{"match", "f(a(b)c) x", "%b()", "(a(b)c)"},
		{"match", "key = value", "(%w+)%s*=%s*(%w+)", "key|value"},
		{"match", "hello", "()ll()", "3|5"},
		{"find", "a.b", ".", "1|1"},
		{"find", "a.b", "%.", "2|2"},
		{"match", "2026-11-25", "^(%d+)-(%d+)-(%d+)$", "2026|11|25"},
		{"match", "aaa", "^a-$", "aaa"},
		{"match", "[x]", "[]]", "]"},
		{"match", "a-b", "[a%-]+", "a-"},
	} {
		if got := strings.Join(ours(tc.fn, tc.s, tc.p), "|"); got != tc.want {
			t.Errorf("string.%s(%q, %q) = %s, want %s", tc.fn, tc.s, tc.p, got, tc.want)
		}
	}
}

// FuzzPattern feeds arbitrary patterns and subjects to the matcher: it may
// fail with an error, never panic or run on.
func FuzzPattern(f *testing.F) {
	for _, seed := range [][2]string{{"key = value", "(%w+)%s*=%s*(%w+)"}, {"f(a(b)c)", "%b()"}, {"aaa", ".-.-.-b"}, {"x", "[%"}, {"THE", "%f[%a]"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, s, p string) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		Find(ctx, s, p, 1, false)
		Match(ctx, s, p, 1)
		g := NewGmatch(s, p)
		for i := 0; i <= len(s)+1; i++ {
			caps, err := g.Next(ctx)
			if err != nil || caps == nil {
				break
			}
		}
		Gsub(ctx, s, p, -1, func(string) {}, func(GsubMatch) error { return nil })
	})
}
