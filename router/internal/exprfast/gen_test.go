package exprfast_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

// gen writes random expr routing scripts from a grammar of the subset and
// of its edges (ints and floats mixed, nil, out-of-range indices, empty
// lists), for the differential tests: whatever it writes that exprrt
// accepts must give the same result both ways.
type gen struct {
	r *rand.Rand
	// inPred: # is a candidate; inReduce: #acc is one too (or nil).
	inPred, inReduce bool
	depth            int
	lets             []string // let names of lists in scope
}

func (g *gen) pick(options ...string) string { return options[g.r.IntN(len(options))] }

func (g *gen) deeper(f func() string) string {
	g.depth++
	defer func() { g.depth-- }()
	return f()
}

func (g *gen) tag() string { return fmt.Sprintf("%q", tagPool[g.r.IntN(len(tagPool))]) }

// pred returns a predicate over candidates: # is a candidate inside it.
func (g *gen) pred() string {
	saved := g.inPred
	g.inPred = true
	defer func() { g.inPred = saved }()
	return g.boolean()
}

func (g *gen) list() string {
	if g.depth > 3 {
		return "candidates"
	}
	return g.deeper(func() string {
		switch g.r.IntN(7) {
		case 0, 1:
			return "candidates"
		case 2:
			return fmt.Sprintf("filter(%s, %s)", g.list(), g.pred())
		case 3:
			return fmt.Sprintf("withTag(%s, %s)", g.list(), g.tag())
		case 4:
			if len(g.lets) > 0 {
				return g.lets[g.r.IntN(len(g.lets))]
			}
		case 5:
			return fmt.Sprintf("healthy(%s, %s)", g.list(), g.pick("0.25", "0", "1", "0.5", g.number(), g.integer()))
		}
		return fmt.Sprintf("filter(candidates, %s in .tags)", g.tag())
	})
}

func (g *gen) cand() string {
	if g.inPred && g.r.IntN(2) == 0 {
		if g.inReduce && g.r.IntN(2) == 0 {
			return "#acc"
		}
		return "#"
	}
	if g.depth > 3 {
		return "candidates[0]"
	}
	return g.deeper(func() string {
		switch g.r.IntN(7) {
		case 0:
			return fmt.Sprintf("%s[%d]", g.list(), g.r.IntN(5)-2)
		case 1:
			return fmt.Sprintf("find(%s, %s)", g.list(), g.pred())
		case 2:
			return fmt.Sprintf("find(%s, %s)", g.list(), g.pred())
		case 3:
			return fmt.Sprintf("first(%s)", g.list())
		case 4:
			return fmt.Sprintf("last(withTag(%s, %s))", g.list(), g.tag())
		case 5:
			saved, savedR := g.inPred, g.inReduce
			g.inPred, g.inReduce = true, true
			body := fmt.Sprintf("%s ? # : #acc", g.boolean())
			g.inPred, g.inReduce = saved, savedR
			return fmt.Sprintf("reduce(%s, %s)", g.list(), body)
		}
		return "candidates[0]"
	})
}

func (g *gen) field() string {
	return g.pick("in_flight", "max_in_flight", "buffer_depth", "available", "exits")
}

func (g *gen) integer() string {
	if g.depth > 4 {
		return fmt.Sprint(g.r.IntN(5))
	}
	return g.deeper(func() string {
		switch g.r.IntN(11) {
		case 0:
			return g.pick("0", "1", "2", "-1", "9223372036854775807", "-9223372036854775808")
		case 1, 2:
			if g.inPred {
				return "." + g.field()
			}
			return fmt.Sprintf("%s.%s", g.cand(), g.field())
		case 3:
			return fmt.Sprintf("len(%s)", g.list())
		case 4:
			return fmt.Sprintf("count(%s, %s)", g.list(), g.pred())
		case 5:
			return fmt.Sprintf("(%s %s %s)", g.integer(), g.pick("+", "-", "*"), g.integer())
		case 6:
			return fmt.Sprintf("%s(%s, %s)", g.pick("max", "min"), g.integer(), g.integer())
		case 7:
			return fmt.Sprintf("abs(%s)", g.integer())
		case 8:
			return "request.attempt"
		case 9:
			return fmt.Sprintf("(%s %% %s)", g.integer(), g.integer())
		}
		if g.r.IntN(2) == 0 {
			return fmt.Sprintf("sum(%s, .%s)", g.list(), g.field())
		}
		return fmt.Sprintf("reduce(%s, #acc + .%s, 0)", g.list(), g.field())
	})
}

func (g *gen) number() string {
	if g.depth > 4 {
		return g.pick("0.5", "1.0", "0.0")
	}
	return g.deeper(func() string {
		switch g.r.IntN(8) {
		case 0:
			return g.pick("0.5", "1.0", "-0.0", "1e300", "0.1")
		case 5: // an observed figure, a float
			f := g.pick("latency_ewma", "latency_peak_ewma", "error_rate")
			if g.inPred {
				return "." + f
			}
			return fmt.Sprintf("%s.%s", g.cand(), f)
		case 1:
			return fmt.Sprintf("(%s / %s)", g.number(), g.number())
		case 2:
			return fmt.Sprintf("(%s %s %s)", g.number(), g.pick("+", "-", "*", "**"), g.number())
		case 3:
			return fmt.Sprintf("%s(%s, %s)", g.pick("max", "min"), g.number(), g.integer())
		case 4:
			return "random()"
		}
		return g.integer()
	})
}

func (g *gen) str() string {
	switch g.r.IntN(6) {
	case 0:
		return g.tag()
	case 1:
		return "request." + g.pick("activity_type", "conversation_id", "namespace", "channel")
	case 2:
		if g.inPred {
			return ".id"
		}
		return g.cand() + ".id"
	case 3:
		return fmt.Sprintf("excluded[%d]", g.r.IntN(3)-1)
	case 4:
		return g.pick("first(excluded)", "find(excluded, # != \"w0\")", "request.input")
	}
	return fmt.Sprintf("%q", g.pick("w0", "w1", "w2", "x", ""))
}

func (g *gen) boolean() string {
	if g.depth > 4 {
		return g.pick("true", "false")
	}
	return g.deeper(func() string {
		switch g.r.IntN(12) {
		case 0, 1:
			return fmt.Sprintf("%s %s %s", g.number(), g.pick("<", ">", "<=", ">=", "==", "!="), g.number())
		case 2:
			return fmt.Sprintf("%s %s %s", g.integer(), g.pick("<", ">", "==", "!="), g.integer())
		case 3:
			if g.inPred {
				return fmt.Sprintf("%s in .tags", g.tag())
			}
			return fmt.Sprintf("%s in %s.tags", g.tag(), g.cand())
		case 4:
			return fmt.Sprintf("%s in excluded", g.str())
		case 5:
			if g.inPred {
				return fmt.Sprintf("hasTag(#, %s)", g.tag())
			}
			return fmt.Sprintf("hasTag(%s, %s)", g.cand(), g.tag())
		case 6:
			return fmt.Sprintf("!(%s)", g.boolean())
		case 7:
			return fmt.Sprintf("(%s %s %s)", g.boolean(), g.pick("&&", "||", "and", "or"), g.boolean())
		case 8:
			return fmt.Sprintf("%s(%s, %s)", g.pick("any", "all", "none", "one"), g.list(), g.pred())
		case 9:
			return fmt.Sprintf("%s %s %s", g.str(), g.pick("==", "!=", "<", "startsWith", "contains"), g.str())
		case 10:
			return fmt.Sprintf("%s == nil", g.cand())
		}
		return g.pick("true", "false")
	})
}

// result returns a whole script: its result an id, a candidate or nil (or,
// now and then, something else the VM refuses).
func (g *gen) result() string {
	if g.depth > 3 {
		return g.pick("nil", `"w1"`, "candidates[0]")
	}
	return g.deeper(func() string {
		switch g.r.IntN(15) {
		case 12:
			return fmt.Sprintf("p2cEwma(%s)", g.list())
		case 13:
			return fmt.Sprintf("leastLatency(%s)", g.list())
		case 0:
			return g.cand()
		case 1:
			return g.cand() + ".id"
		case 2:
			return fmt.Sprintf("leastLoaded(%s)", g.list())
		case 3:
			return fmt.Sprintf("leastLoaded(%s, %s)", g.list(), g.tag())
		case 4:
			return fmt.Sprintf("p2c(%s)", g.list())
		case 5:
			return fmt.Sprintf("rendezvous(%s, request.conversation_id)", g.list())
		case 6, 7:
			return fmt.Sprintf("%s ? %s : %s", g.boolean(), g.result(), g.result())
		case 8:
			return fmt.Sprintf("(%s ?? %s)", g.result(), g.result())
		case 9:
			name := fmt.Sprintf("l%d", len(g.lets))
			value := g.list()
			g.lets = append(g.lets, name)
			body := g.result()
			g.lets = g.lets[:len(g.lets)-1]
			return fmt.Sprintf("let %s = %s; %s", name, value, body)
		case 10:
			return g.str()
		case 11:
			return fmt.Sprintf("find(%s, %s)?.id", g.list(), g.pred())
		}
		return "nil"
	})
}

// TestGenerated runs generated scripts both ways on random selections.
func TestGenerated(t *testing.T) {
	scripts, selections := 400, 25
	if n := os.Getenv("EXPRFAST_GEN"); n != "" {
		scripts, _ = strconv.Atoi(n)
	}
	if testing.Short() {
		scripts = 100
	}
	r := rand.New(rand.NewPCG(7, 8))
	var compiled, fast, calls, decided int
	for range scripts {
		g := &gen{r: r}
		src := g.result()
		p := compilePair(t, src)
		if p == nil {
			continue
		}
		compiled++
		if p.fast != nil {
			fast++
		} else {
			t.Logf("off the fast path: %s: %v", src, p.why)
		}
		for range selections {
			calls++
			if p.check(t, randomSelection(r)) {
				decided++
			}
		}
	}
	t.Logf("%d scripts compiled of %d, %d on the fast path; %d of %d calls decided there", compiled, scripts, fast, decided, calls)
	if fast < compiled*9/10 || decided < calls/2 {
		t.Errorf("the fast path took %d of %d scripts and decided %d of %d calls: the grammar is its subset", fast, compiled, decided, calls)
	}
}

// FuzzGenerated runs the script generated from each seed both ways.
func FuzzGenerated(f *testing.F) {
	for _, seed := range []uint64{1, 2, 3, 42} {
		f.Add(seed, seed+1)
	}
	f.Fuzz(func(t *testing.T, seed, selSeed uint64) {
		r := rand.New(rand.NewPCG(seed, selSeed))
		src := (&gen{r: r}).result()
		p := compilePair(t, src)
		if p == nil {
			return
		}
		for range 10 {
			p.check(t, randomSelection(r))
		}
	})
}
