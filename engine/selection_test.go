package engine_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
)

func worker(id string, inFlight, max int) engine.Worker {
	return engine.Worker{State: engine.ConsumerStateView{ID: id, InFlight: inFlight, MaxInFlight: max}}
}

func TestNewSelection(t *testing.T) {
	ch, err := engine.DispatchChannel("prod", "email")
	if err != nil {
		t.Fatal(err)
	}
	req := engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "send", TaskQueue: "email"}
	a, b, c := worker("a", 0, 1), worker("b", 1, 2), worker("c", 0, 1)
	tests := []struct {
		name     string
		ws       []engine.Worker
		excluded []string
		want     []engine.Worker
	}{
		{"nothing excluded", []engine.Worker{a, b, c}, nil, []engine.Worker{a, b, c}},
		{"one excluded, order kept", []engine.Worker{a, b, c}, []string{"b"}, []engine.Worker{a, c}},
		{"excluded id not a worker", []engine.Worker{a, b}, []string{"z"}, []engine.Worker{a, b}},
		{"all excluded", []engine.Worker{a, b}, []string{"b", "a"}, []engine.Worker{}},
		{"no workers", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel := engine.NewSelection(ch, "conv-1", 2, req, tt.ws, tt.excluded)
			want := engine.Selection{WorkflowID: "wf-1", Channel: ch, ConversationID: "conv-1", Attempt: 2,
				Request: req, Candidates: tt.want, Excluded: tt.excluded}
			if !reflect.DeepEqual(sel, want) {
				t.Errorf("NewSelection = %+v, want %+v", sel, want)
			}
			// A router that appends to what it was handed does not write
			// into the caller's slices.
			if cap(sel.Candidates) != len(sel.Candidates) || cap(sel.Excluded) != len(sel.Excluded) {
				t.Errorf("candidates or excluded not clipped: cap %d/%d, len %d/%d",
					cap(sel.Candidates), cap(sel.Excluded), len(sel.Candidates), len(sel.Excluded))
			}
		})
	}
}

func TestNewSelectionAllocatesNothingWithoutExclusions(t *testing.T) {
	ws := []engine.Worker{worker("a", 0, 1), worker("b", 0, 1)}
	req := engine.ActivityRequest{WorkflowID: "wf-1"}
	ch, err := engine.DispatchChannel("prod", "email")
	if err != nil {
		t.Fatal(err)
	}
	var sel engine.Selection
	allocs := testing.AllocsPerRun(100, func() {
		sel = engine.NewSelection(ch, "conv-1", 1, req, ws, nil)
	})
	if allocs != 0 {
		t.Errorf("NewSelection with nothing excluded: %v allocations, want 0", allocs)
	}
	if len(sel.Candidates) != 2 || &sel.Candidates[0] != &ws[0] {
		t.Errorf("NewSelection with nothing excluded did not hand over the workers themselves")
	}
}

func TestWorkersOf(t *testing.T) {
	tests := []struct {
		name  string
		views []engine.ConsumerStateView
		want  []engine.Worker
	}{
		{"none", nil, nil},
		{"empty", []engine.ConsumerStateView{}, nil},
		{"two", []engine.ConsumerStateView{{ID: "a", InFlight: 1, MaxInFlight: 2, Tags: []string{"eu"}}, {ID: "b", MaxInFlight: 1}},
			[]engine.Worker{
				{State: engine.ConsumerStateView{ID: "a", InFlight: 1, MaxInFlight: 2, Tags: []string{"eu"}}},
				{State: engine.ConsumerStateView{ID: "b", MaxInFlight: 1}},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := engine.WorkersOf(tt.views); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("WorkersOf = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCheckDecision(t *testing.T) {
	script := engine.RouterVersion{Lang: "lua", Source: "route.lua", Hash: "sha256:ab12"}
	goRouter := engine.RouterVersion{Lang: "go", Source: "least-loaded"}
	a, b, full := worker("a", 0, 1), worker("b", 1, 2), worker("f", 2, 2)
	cands := []engine.Worker{a, b, full}
	tests := []struct {
		name    string
		cands   []engine.Worker
		dec     engine.Decision
		want    engine.Worker
		is      error // what the error wraps, nil for none
		wantErr string
	}{
		{"chose a free candidate", cands, engine.Decision{WorkerID: "b", Version: script}, b, nil, ""},
		{"script chose none", cands, engine.Decision{Version: script}, engine.Worker{}, engine.ErrNoWorkers,
			"NoWorkersAvailable: the script lua route.lua sha256:ab12 chose none of 3 candidates (a, b, f)"},
		{"router chose none of one", []engine.Worker{a}, engine.Decision{Version: goRouter}, engine.Worker{}, engine.ErrNoWorkers,
			"NoWorkersAvailable: the router go least-loaded chose none of 1 candidate (a)"},
		{"not a candidate", cands, engine.Decision{WorkerID: "z", Version: goRouter}, engine.Worker{}, engine.ErrRouting,
			`routing failed: router go least-loaded chose "z", which is not a candidate (candidates: a, b, f)`},
		{"unversioned router, not a candidate", []engine.Worker{a}, engine.Decision{WorkerID: "z"}, engine.Worker{}, engine.ErrRouting,
			`routing failed: router (unversioned) chose "z", which is not a candidate (candidates: a)`},
		{"chose a full worker", cands, engine.Decision{WorkerID: "f", Version: script}, full, engine.ErrNoWorkers,
			"NoWorkersAvailable: the script lua route.lua sha256:ab12 chose worker f, which is full (2 of 2 slots in flight)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := engine.CheckDecision(tt.cands, tt.dec)
			if !reflect.DeepEqual(w, tt.want) {
				t.Errorf("worker = %+v, want %+v", w, tt.want)
			}
			switch {
			case tt.is == nil && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tt.is == nil:
				return
			case err == nil:
				t.Fatalf("err = nil, want %q", tt.wantErr)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("err = %v, does not wrap %v", err, tt.is)
			}
			if other := map[error]error{engine.ErrNoWorkers: engine.ErrRouting, engine.ErrRouting: engine.ErrNoWorkers}[tt.is]; errors.Is(err, other) {
				t.Errorf("err = %v, wraps %v too", err, other)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("err = %q\nwant  %q", err, tt.wantErr)
			}
		})
	}
}
