package peers

import (
	"context"
	"fmt"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/aion-dispatch/dispatch/engine"
)

// StarlarkLazy runs the same policy in go.starlark.net over Go-backed
// values, the fastest way we know to hand Starlark the candidates: the list
// and each candidate are views of the selection, and a field is made into
// a Starlark value only when the script reads it. Nothing is copied per
// call but the list's header.
type StarlarkLazy struct {
	thread *starlark.Thread
	route  starlark.Callable
	list   lazyList
}

// NewStarlarkLazy compiles the policy.
func NewStarlarkLazy() (*StarlarkLazy, error) {
	thread := &starlark.Thread{Name: "peers-lazy"}
	globals, err := starlark.ExecFileOptions(&syntax.FileOptions{}, thread, "peers.star", starlarkSrc, nil)
	if err != nil {
		return nil, err
	}
	route, ok := globals["route"].(starlark.Callable)
	if !ok {
		return nil, fmt.Errorf("starlark: no function route")
	}
	return &StarlarkLazy{thread: thread, route: route}, nil
}

// Choose implements [Chooser].
func (s *StarlarkLazy) Choose(_ context.Context, in engine.Selection) (string, error) {
	s.list.ws = in.Candidates
	ret, err := starlark.Call(s.thread, s.route, starlark.Tuple{&s.list}, nil)
	s.list.ws = nil
	if err != nil {
		return "", err
	}
	switch ret := ret.(type) {
	case starlark.String:
		return string(ret), nil
	case starlark.NoneType:
		return "", nil
	default:
		return "", fmt.Errorf("starlark: route returned %s", ret.Type())
	}
}

// lazyList is the candidates as a Starlark sequence over the selection.
type lazyList struct{ ws []engine.Worker }

var (
	_ starlark.Indexable = (*lazyList)(nil)
	_ starlark.Iterable  = (*lazyList)(nil)
)

func (l *lazyList) String() string        { return fmt.Sprintf("candidates(%d)", len(l.ws)) }
func (l *lazyList) Type() string          { return "candidates" }
func (l *lazyList) Freeze()               {}
func (l *lazyList) Truth() starlark.Bool  { return len(l.ws) > 0 }
func (l *lazyList) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: candidates") }
func (l *lazyList) Len() int              { return len(l.ws) }
func (l *lazyList) Index(i int) starlark.Value {
	return lazyCandidate{&l.ws[i].State}
}
func (l *lazyList) Iterate() starlark.Iterator { return &lazyIter{l: l} }

type lazyIter struct {
	l *lazyList
	i int
}

func (it *lazyIter) Next(p *starlark.Value) bool {
	if it.i >= len(it.l.ws) {
		return false
	}
	*p = lazyCandidate{&it.l.ws[it.i].State}
	it.i++
	return true
}
func (it *lazyIter) Done() {}

// lazyCandidate is one candidate; its fields are read from the view.
type lazyCandidate struct{ v *engine.ConsumerStateView }

var _ starlark.HasAttrs = lazyCandidate{}

func (c lazyCandidate) String() string        { return "candidate(" + c.v.ID + ")" }
func (c lazyCandidate) Type() string          { return "candidate" }
func (c lazyCandidate) Freeze()               {}
func (c lazyCandidate) Truth() starlark.Bool  { return true }
func (c lazyCandidate) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: candidate") }
func (c lazyCandidate) AttrNames() []string {
	return []string{"buffer_depth", "id", "in_flight", "max_in_flight", "tags"}
}
func (c lazyCandidate) Attr(name string) (starlark.Value, error) {
	switch name {
	case "id":
		return starlark.String(c.v.ID), nil
	case "in_flight":
		return starlark.MakeInt(c.v.InFlight), nil
	case "max_in_flight":
		return starlark.MakeInt(c.v.MaxInFlight), nil
	case "buffer_depth":
		return starlark.MakeInt(c.v.BufferDepth), nil
	case "tags":
		return lazyTags(c.v.Tags), nil
	}
	return nil, nil
}

// lazyTags answers `"gpu" in c.tags` without building a list.
type lazyTags []string

var _ starlark.Indexable = lazyTags(nil)

func (t lazyTags) String() string        { return fmt.Sprint([]string(t)) }
func (t lazyTags) Type() string          { return "tags" }
func (t lazyTags) Freeze()               {}
func (t lazyTags) Truth() starlark.Bool  { return len(t) > 0 }
func (t lazyTags) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: tags") }
func (t lazyTags) Len() int              { return len(t) }
func (t lazyTags) Index(i int) starlark.Value {
	return starlark.String(t[i])
}

var _ starlark.HasBinary = lazyTags(nil)

// Binary answers x in tags (and not in) for a string x.
func (t lazyTags) Binary(op syntax.Token, y starlark.Value, side starlark.Side) (starlark.Value, error) {
	s, ok := y.(starlark.String)
	if side != starlark.Right || !ok || (op != syntax.IN && op != syntax.NOT_IN) {
		return nil, nil
	}
	found := false
	for _, tag := range t {
		if tag == string(s) {
			found = true
			break
		}
	}
	return starlark.Bool(found == (op == syntax.IN)), nil
}
