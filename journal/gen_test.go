package journal_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/journal/internal/gen"
	"github.com/aion-dispatch/dispatch/router"
)

// TestGeneratedJournal: the generator behind the memory benchmark writes
// a journal that checks clean and replays, with every kind of story in it,
// and the same one for the same seed.
func TestGeneratedJournal(t *testing.T) {
	raw, err := io.ReadAll(gen.New(gen.Options{Bytes: 1 << 20, Open: 8, Seed: 7}))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := io.ReadAll(gen.New(gen.Options{Bytes: 1 << 20, Open: 8, Seed: 7}))
	if !bytes.Equal(raw, again) {
		t.Error("two journals generated with the same seed differ")
	}
	for _, kind := range []string{"worker_exited", "worker_timed_out", "NoWorkersAvailable", `"status":"failed"`} {
		if !bytes.Contains(raw, []byte(kind)) {
			t.Errorf("the generated journal has no %s", kind)
		}
	}
	ops, truncated, err := journal.ReadAll(bytes.NewReader(raw))
	if err != nil || truncated != 0 || len(raw) < 1<<20 {
		t.Fatalf("read %d bytes: %v, a torn line at %d", len(raw), err, truncated)
	}
	if p := check(ops); len(p) != 0 {
		t.Fatalf("%d problems, the first: %v", len(p), p[0])
	}
	rep, err := journal.Verify(context.Background(), bytes.NewReader(raw))
	if err != nil || rep.Problems != 0 || len(rep.Unfinished) != 0 || rep.Summary.Operations != len(ops) {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// heapProbe passes a journal through and, as the bytes read cross each
// mark, collects the garbage and notes the live heap: what the reader of
// the journal holds at that point.
type heapProbe struct {
	r     io.Reader
	n     int64
	marks []int64
	live  []uint64
}

func (p *heapProbe) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	for len(p.live) < len(p.marks) && p.n >= p.marks[len(p.live)] {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		p.live = append(p.live, ms.HeapAlloc)
	}
	return n, err
}

// TestMemoryDoesNotGrowWithTheJournal: checking, replaying and what-if
// hold what is open at once (conversations not yet closed, a window of
// recent closes, counts per channel and worker), not the journal: between
// a quarter of a generated journal and its end, the live heap grows by
// less than 1/64 of what was read in between (read whole, the journal took
// 1.6 times its size in live heap; keeping every request of the channel,
// what-if grew by 1/17).
func TestMemoryDoesNotGrowWithTheJournal(t *testing.T) {
	if testing.Short() {
		t.Skip("reads an 8 MiB journal")
	}
	const size = 8 << 20
	ch, err := engine.DispatchChannel("prod", "email")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		read func(io.Reader) error
	}{
		{"verify", func(r io.Reader) error {
			rep, err := journal.Verify(context.Background(), r)
			if err == nil && (rep.Problems != 0 || rep.Summary.Total.Conversations == 0) {
				err = fmt.Errorf("verify: %+v", rep)
			}
			return err
		}},
		{"what-if", func(r io.Reader) error {
			jr := journal.NewReader(r)
			last := router.NewNative("last", func(in engine.Selection) string { return in.Candidates[len(in.Candidates)-1].ID() })
			rep := journal.WhatIf(context.Background(), jr.All(), ch, last, journal.WhatIfOptions{Keep: 5})
			if jr.Err() == nil && rep.Decisions == 0 {
				return fmt.Errorf("what-if: %+v", rep)
			}
			return jr.Err()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &heapProbe{r: gen.New(gen.Options{Bytes: size, Open: 64, Seed: 1}), marks: []int64{size / 4, size - 64<<10}}
			if err := tc.read(p); err != nil {
				t.Fatal(err)
			}
			if len(p.live) != 2 {
				t.Fatalf("read %d bytes, not past the marks", p.n)
			}
			grew := int64(p.live[1]) - int64(p.live[0])
			read := p.marks[1] - p.marks[0]
			t.Logf("live heap %d KiB at %d KiB read, %d KiB at %d KiB", p.live[0]>>10, p.marks[0]>>10, p.live[1]>>10, p.marks[1]>>10)
			if grew > read/64 {
				t.Errorf("the live heap grew by %d KiB while %d KiB of journal were read: it holds the journal", grew>>10, read>>10)
			}
		})
	}
}

// TestCheckerHoldsOnlyOpenConversations: a Checker lets a conversation go
// when it closes, remembering the last 1,024 closed ids only; a step after
// a close is named as such while the close is among them.
func TestCheckerHoldsOnlyOpenConversations(t *testing.T) {
	c := journal.NewChecker()
	r := journal.NewReader(gen.New(gen.Options{Bytes: 1 << 20, Open: 8, Seed: 3}))
	most, n := 0, 0
	for line, op := range r.All() {
		if p := c.Add(line, op); len(p) > 0 {
			t.Fatalf("problems in a generated journal: %v", p)
		}
		most = max(most, c.Open())
		n++
	}
	if r.Err() != nil || n == 0 {
		t.Fatalf("read %d lines: %v", n, r.Err())
	}
	if most > 8 || c.Open() != 0 || len(c.Unfinished()) != 0 {
		t.Errorf("%d conversations open at most, %d at the end (%d unfinished); want at most 8, then none", most, c.Open(), len(c.Unfinished()))
	}

	// Past the window, a step of a closed conversation reads as one before
	// its opening (docs/journal.md says so).
	ch, _ := engine.DispatchChannel("prod", "email")
	op := func(kind engine.OpKind, id string) engine.Operation {
		return engine.Operation{Kind: kind, ConversationID: id, Channel: ch, State: engine.StateScheduled}
	}
	c = journal.NewChecker()
	line := 0
	for i := range 1025 {
		id := fmt.Sprintf("c%d", i)
		line++
		c.Add(line, op(engine.OpConversationOpened, id))
		line++
		c.Add(line, engine.Operation{Kind: engine.OpConversationClosed, ConversationID: id, Channel: ch, Attempt: 1, State: engine.StateFailed(true)})
	}
	for _, tc := range []struct{ id, want string }{
		{"c1", "line 2051: conversation c1: message_sent after conversation_closed (line 4)"},
		{"c0", "line 2052: conversation c0: message_sent before conversation_opened"},
	} {
		line++
		p := c.Add(line, op(engine.OpMessageSent, tc.id))
		if len(p) != 1 || p[0].Error() != tc.want {
			t.Errorf("a step of %s after its close: %v, want %q", tc.id, p, tc.want)
		}
	}
}
