package config_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/router"
)

// The deadline lets a good version pass under -race on a loaded machine.
const gateWorkers = "    script_timeout: 200ms\n    workers: [{id: w1, max_in_flight: 2}, {id: w2, max_in_flight: 2}]\n"

// TestWatchGateRefusesVersionsThatFailWhenTheyRun: versions that compile
// but fail when they run (an index of nil, an id that is no candidate, a
// loop) are refused like compile errors, counted, and the last good version
// keeps serving; a version that works goes in with what the gate found.
func TestWatchGateRefusesVersionsThatFailWhenTheyRun(t *testing.T) {
	var log lockedBuffer
	good := "function route(r, c) return c[1].id end\n"
	h := startWatch(t, map[string]string{"dispatch.yaml": confYAML("pick.lua", gateWorkers), "pick.lua": good},
		"dispatch.yaml", config.WatchOptions{
			Gate: func(ctx context.Context, ch config.Channel, file string) (router.GateReport, error) {
				return ch.Gate(ctx, file, nil)
			},
			Logger: slog.New(slog.NewTextHandler(&log, nil)),
		})
	path := filepath.Join(h.dir, "pick.lua")
	for _, tc := range []struct{ name, src, want string }{
		{"nil index", "function route(r, c)\n  return c[9].id\nend\n",
			path + ":2: prod/email: refused by the reload gate: attempt to index a non-table object(nil) with key 'id' (lua "},
		{"unknown id", "function route(r, c) return \"w9\" end\n",
			path + ": prod/email: refused by the reload gate: lua "},
		{"loop", "function route(r, c) while true do end end\n",
			path + ": prod/email: refused by the reload gate: lua "},
		{"id of an excluded worker", "function route(r, c, x) return x[1] or c[1].id end\n",
			path + ": prod/email: refused by the reload gate: lua "},
	} {
		writeFile(t, path, tc.src)
		o := h.waitFor(config.Failed, nil)
		if !errors.Is(o.Err, router.ErrRefused) || !strings.HasPrefix(o.Err.Error(), tc.want) ||
			!strings.Contains(o.Err.Error(), ", on synthetic decision ") {
			t.Errorf("%s: err = %v\nwant a refusal starting %q", tc.name, o.Err, tc.want)
		}
		if source(o.Config) != good {
			t.Fatalf("%s: in service %q, want the last good version", tc.name, source(o.Config))
		}
	}
	if s := h.w.Stats(); s.Refusals != 4 || s.Failures != 4 || s.Reloads != 0 {
		t.Errorf("stats %+v: want 4 refusals", s)
	}
	next := "function route(r, c) return c[#c].id end\n"
	writeFile(t, path, next)
	o := h.waitFor(config.Reloaded, hasSource(next))
	if len(o.Gated) != 1 || o.Gated[0].Version != 2 || !o.Gated[0].Report.Synthetic || o.Gated[0].Report.Decisions != 5 {
		t.Errorf("gated %+v", o.Gated)
	}
	if want := "pick.lua v2 in service; passed 5 synthetic decisions (no traffic yet)"; !strings.Contains(log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, log.String())
	}

	// Choosing no worker is a decision, not a failure; but one made on
	// every decision is said louder.
	none := "function route(r, c) return nil end\n"
	writeFile(t, path, none)
	h.waitFor(config.Reloaded, hasSource(none))
	if want := `level=WARN msg="` + path + ` v3 in service; passed 5 synthetic decisions, choosing no worker on 5 of them (no traffic yet)"`; !strings.Contains(log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, log.String())
	}
}

// TestWatchGateRefusesAConfigWhoseRoutingFails: a config edit whose new
// routing fails when it runs keeps the whole old config.
func TestWatchGateRefusesAConfigWhoseRoutingFails(t *testing.T) {
	h := startWatch(t, map[string]string{"dispatch.yaml": confYAML("pick.lua", gateWorkers), "pick.lua": "function route(r, c) return c[1].id end\n"},
		"dispatch.yaml", config.WatchOptions{
			Gate: func(ctx context.Context, ch config.Channel, file string) (router.GateReport, error) {
				return ch.Gate(ctx, file, nil)
			},
		})
	inline := `version: 1
channels:
  - namespace: prod
    task_queue: email
    routing: {lang: expr, source: "candidates[5].id"}
` + gateWorkers
	writeFile(t, h.conf, inline)
	o := h.waitFor(config.Failed, nil)
	if want := h.conf + ":3:5: prod/email: refused by the reload gate: "; !errors.Is(o.Err, router.ErrRefused) || !strings.HasPrefix(o.Err.Error(), want) {
		t.Errorf("err = %v\nwant a refusal starting %q", o.Err, want)
	}
	if len(o.Config.Channels) != 1 || o.Config.Channels[0].Routing.Lang != router.Lua {
		t.Errorf("the old config is not the one in service")
	}
}

// TestWatchGateWithSeveralScriptsAtOnce: scripts saved together are put in
// service or refused each on its own, and every version is counted.
func TestWatchGateWithSeveralScriptsAtOnce(t *testing.T) {
	conf := `version: 1
channels:
  - namespace: prod
    task_queue: a
    routing: {lua: a.lua}
` + gateWorkers + `  - namespace: prod
    task_queue: b
    routing: {lua: b.lua}
` + gateWorkers
	good := "function route(r, c) return c[1].id end\n"
	h := startWatch(t, map[string]string{"dispatch.yaml": conf, "a.lua": good, "b.lua": good}, "dispatch.yaml",
		config.WatchOptions{
			Gate: func(ctx context.Context, ch config.Channel, file string) (router.GateReport, error) {
				return ch.Gate(ctx, file, nil)
			},
			Debounce: time.Hour, // only Rescan looks, so both saves are seen in one look
		})
	a, b := filepath.Join(h.dir, "a.lua"), filepath.Join(h.dir, "b.lua")
	next := "function route(r, c) return c[#c].id end\n"
	broken := "function route(r, c) return \"zz\" end\n"

	// One good, one broken: the good one goes in, the broken one does not.
	writeFile(t, a, next)
	writeFile(t, b, broken)
	h.w.Rescan()
	o := h.waitFor(config.Failed, nil)
	if !slices.Equal(o.Applied, []string{a}) || !slices.Equal(o.Files, []string{b}) || len(o.Gated) != 1 || o.Gated[0].Version != 2 {
		t.Errorf("applied %v, failed %v, gated %+v; want a.lua v2 in and b.lua refused", o.Applied, o.Files, o.Gated)
	}
	if got := o.Config.Channels; string(got[0].Routing.Source) != next || string(got[1].Routing.Source) != good {
		t.Errorf("in service: %q and %q", got[0].Routing.Source, got[1].Routing.Source)
	}
	if s := h.w.Stats(); s.Reloads != 1 || s.Refusals != 1 {
		t.Errorf("stats %+v: want the reload and the refusal counted", s)
	}

	// Two broken: two refusals.
	writeFile(t, a, broken+"-- a\n")
	writeFile(t, b, broken+"-- b\n")
	h.w.Rescan()
	h.waitFor(config.Failed, nil)
	if s := h.w.Stats(); s.Refusals != 3 {
		t.Errorf("stats %+v: want 3 refusals in all", s)
	}
}
