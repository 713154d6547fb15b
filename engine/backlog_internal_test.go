package engine

import "testing"

// turns returns the order in which one round would offer turns, until none
// is left: nextUntried as round calls it, with its budgets.
func (b *backlog) turns() []*waiter {
	var out []*waiter
	declines, ahead := 0, 0
	for {
		w, jumped := b.nextUntried(ahead < roundAhead, declines < roundDeclines)
		if w == nil {
			return out
		}
		if jumped {
			ahead++
		}
		if w.in == &b.held {
			declines++
		}
		out = append(out, w)
	}
}

// A held-back activity that joined before fresh ones is offered a turn
// ahead of them (one a round), so a stream of newer activities cannot
// starve it (a re-routed activity waited 4.6 s behind a load of 64 at a
// time under dispatch serve when held-back ones came after every fresh
// one); the other held-back ones follow the fresh ones.
func TestBacklogTurnsByAge(t *testing.T) {
	b := newBacklog()
	join := func() *waiter {
		w := b.join(100, false, func() {})
		if w == nil {
			t.Fatal("backlog full")
		}
		return w
	}
	old1, old2 := join(), join()
	b.holdBack(old1)
	b.holdBack(old2)
	new1, new2 := join(), join()
	names := map[*waiter]string{old1: "old1", old2: "old2", new1: "new1", new2: "new2"}
	order := func() []string {
		var out []string
		for _, w := range b.turns() {
			out = append(out, names[w])
		}
		return out
	}
	check := func(what string, got []string, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: turns %v, want %v", what, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: turns %v, want %v", what, got, want)
			}
		}
	}
	check("first round", order(), "old1", "new1", "new2", "old2")
	b.gen++ // a capacity change: everyone may be tried again
	b.holdBack(old1)
	check("after old1 was held back again", order(), "old2", "new1", "new2", "old1")
	b.gen++
	b.leave(new1)
	b.leave(new2)
	check("no fresh ones", order(), "old2", "old1")
}
