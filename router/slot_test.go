package router_test

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// blockingRouter answers only when released, to hold a call mid-selection.
type blockingRouter struct {
	entered, release chan struct{}
	version          engine.RouterVersion
}

func (b *blockingRouter) Select(ctx context.Context, in engine.Selection) (engine.Decision, error) {
	b.entered <- struct{}{}
	<-b.release
	return engine.Decision{WorkerID: in.Candidates[0].ID(), Version: b.version}, nil
}

func TestSlotSwapDoesNotDisturbACallInFlight(t *testing.T) {
	old := &blockingRouter{entered: make(chan struct{}), release: make(chan struct{}), version: engine.RouterVersion{Lang: "go", Hash: "v1"}}
	slot := router.NewSlot(old)
	in := selection(t, worker("w1", 0, 1, 0))

	got := make(chan engine.Decision)
	go func() {
		d, err := slot.Select(context.Background(), in)
		if err != nil {
			t.Error(err)
		}
		got <- d
	}()
	<-old.entered
	next := compile(t, router.Lua, `function route(r, c) return c[1].id end`)
	if prev := slot.Swap(next); prev != old {
		t.Fatalf("Swap returned %v, want the old router", prev)
	}
	close(old.release)
	if d := <-got; d.Version.Hash != "v1" {
		t.Errorf("the call in flight finished with %+v, want the version it started with", d.Version)
	}
	d, err := slot.Select(context.Background(), in)
	if err != nil || d.Version != next.Version() {
		t.Errorf("the next call used %+v, %v; want the new version", d.Version, err)
	}
}

func TestTable(t *testing.T) {
	tbl := router.NewTable()
	in := selection(t, worker("w1", 0, 1, 0))
	if _, err := tbl.Select(context.Background(), in); !errors.Is(err, engine.ErrUnknownChannel) {
		t.Fatalf("empty table: %v", err)
	}
	s := compile(t, router.Expr, `candidates[0].id`)
	slot := tbl.Set(in.Channel, s)
	if again := tbl.Set(in.Channel, s); again != slot {
		t.Error("Set on an existing channel made a new slot")
	}
	if d, err := tbl.Select(context.Background(), in); err != nil || d.WorkerID != "w1" {
		t.Fatalf("select = %v, %v", d, err)
	}
	if chs := tbl.Channels(); len(chs) != 1 || chs[0] != in.Channel {
		t.Errorf("channels = %v", chs)
	}
	tbl.Remove(in.Channel)
	if _, err := tbl.Select(context.Background(), in); !errors.Is(err, engine.ErrUnknownChannel) {
		t.Errorf("after remove: %v", err)
	}
}

// Channels set or removed together: a channel already in the table keeps
// its slot (a dispatch holding it sees the new router), and a name given
// twice or unknown is harmless.
func TestTableSetAllAndRemoveMany(t *testing.T) {
	name := func(q string) engine.ChannelName {
		ch, err := engine.DispatchChannel("prod", q)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	a, b, c, unknown := name("a"), name("b"), name("c"), name("unknown")
	r1 := compile(t, router.Expr, `candidates[0].id`)
	r2 := compile(t, router.Lua, `function route(r, c) return c[1].id end`)
	tbl := router.NewTable()
	slotA := tbl.Set(a, r1)
	tbl.SetAll(map[engine.ChannelName]engine.Router{a: r2, b: r1, c: r2})
	if s, ok := tbl.Slot(a); !ok {
		t.Fatal("a is gone after SetAll")
	} else if s != slotA || s.Load() != r2 {
		t.Errorf("a after SetAll: slot %p (had %p), router %v; want the same slot with the new router", s, slotA, s.Load())
	}
	for ch, want := range map[engine.ChannelName]engine.Router{b: r1, c: r2} {
		if s, ok := tbl.Slot(ch); !ok || s.Load() != want {
			t.Errorf("%s after SetAll: %v, %v", ch.Short(), s, ok)
		}
	}
	tbl.SetAll(nil)
	tbl.Remove(c, a, unknown, a)
	if chs := tbl.Channels(); len(chs) != 1 || chs[0] != b {
		t.Errorf("after Remove(c, a, unknown, a): channels %v, want [b]", chs)
	}
	in := selection(t, worker("w1", 0, 1, 0))
	in.Channel = a
	if _, err := tbl.Select(context.Background(), in); !errors.Is(err, engine.ErrUnknownChannel) {
		t.Errorf("a removed channel: %v", err)
	}
	tbl.Remove()
	if len(tbl.Channels()) != 1 {
		t.Error("Remove() removed something")
	}
}

// A slot keeps its channel's recent decisions, but a channel that has made
// none costs next to nothing: a node may start thousands of channels before
// any traffic comes.
func TestIdleSlotIsSmall(t *testing.T) {
	r := compile(t, router.Expr, `candidates[0].id`)
	const n = 100
	slots := make([]*router.Slot, n)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range slots {
		slots[i] = router.NewSlot(r, router.KeepRecent(router.DefaultRecentDecisions))
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 1<<10 {
		t.Errorf("a slot with no decisions yet allocates %d bytes", per)
	}
	// The first decision makes the ring.
	if _, err := slots[0].Select(context.Background(), selection(t, worker("w1", 0, 1, 0))); err != nil {
		t.Fatal(err)
	}
	if got := slots[0].Recent(); len(got) != 1 || got[0].Chosen != "w1" {
		t.Errorf("after one decision, Recent() = %+v", got)
	}
}
