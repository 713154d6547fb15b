package metrics

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aion-dispatch/dispatch/engine"
)

type fixedRouter engine.Decision

func (f fixedRouter) Select(context.Context, engine.Selection) (engine.Decision, error) {
	return engine.Decision(f), nil
}

// The series an operation or a Select resolves are kept, per channel, per
// worker and per script version, so that the next ones skip the label
// lookup.
func TestSeriesAreCached(t *testing.T) {
	m, err := New(prometheus.NewRegistry(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := engine.DispatchChannel("payments", "charge")
	if err != nil {
		t.Fatal(err)
	}
	op := engine.Operation{Kind: engine.OpWorkerSelected, Channel: ch, WorkerID: "w1", Attempt: 1}
	if err := m.Recorder(nil).Record(t.Context(), op); err != nil {
		t.Fatal(err)
	}
	v, ok := m.channels.Load(ch)
	if !ok {
		t.Fatal("the channel's series were not kept")
	}
	s := v.(*channelSeries)
	if s.label != "payments/charge" {
		t.Errorf("channel label %q", s.label)
	}
	if _, ok := s.decisions.Load("w1"); !ok {
		t.Error("the worker's decision counter was not kept")
	}
	version := engine.RouterVersion{Lang: "lua", Hash: "sha256:0123456789abcdef"}
	if _, err := m.Router(fixedRouter{WorkerID: "w1", Version: version}).Select(t.Context(), engine.Selection{Channel: ch}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.scripts.Load(scriptVersion{lang: "lua", hash: "0123456789ab"}); !ok {
		t.Error("the script version's duration histogram was not kept")
	}
	if m.series(ch) != s {
		t.Error("the channel's series were resolved again")
	}
}
