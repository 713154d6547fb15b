package config_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	pickV1 = "function route(r, c) return \"w1\" end\n"
	pickV2 = "function route(r, c) return \"w2\" end\n"
	pickV3 = "function route(r, c) return \"w3\" end\n"
	broken = "function route(r, c)\n  return c[1.id\nend\n"
)

func confYAML(script string, extra string) string {
	return fmt.Sprintf(`version: 1
channels:
  - namespace: prod
    task_queue: email
    routing: {lua: %s}
%s`, script, extra)
}

// watchHarness runs a Watcher over real files and collects what it does.
type watchHarness struct {
	t        *testing.T
	dir      string
	conf     string // the config file
	w        *config.Watcher
	outcomes chan config.Outcome

	mu      sync.Mutex
	applied []*config.Config
	failApp error // Apply returns it while set
}

// setApplyError makes Apply fail with err (nil: succeed).
func (h *watchHarness) setApplyError(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failApp = err
}

// startWatch writes files (relative to a new directory), loads conf from it
// and runs a watcher until the test ends.
func startWatch(t *testing.T, files map[string]string, conf string, opts config.WatchOptions) *watchHarness {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		writeFile(t, filepath.Join(dir, name), body)
	}
	return runWatch(t, dir, filepath.Join(dir, conf), opts)
}

func runWatch(t *testing.T, dir, conf string, opts config.WatchOptions) *watchHarness {
	t.Helper()
	h := &watchHarness{t: t, dir: dir, conf: conf, outcomes: make(chan config.Outcome, 1000)}
	cfg, err := config.Load(conf, opts.Options)
	if err != nil {
		t.Fatal(err)
	}
	opts.Apply = func(new *config.Config) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.failApp != nil {
			return h.failApp
		}
		h.applied = append(h.applied, new)
		return nil
	}
	opts.Notify = func(o config.Outcome) { h.outcomes <- o }
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Debounce == 0 {
		opts.Debounce = 10 * time.Millisecond
	}
	h.w, err = config.NewWatcher(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.w.Run(ctx) }()
	select { // a write before the first look would be part of it, not a change after it
	case <-h.w.Ready():
	case err := <-done:
		t.Fatalf("watch ended before it was ready: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor returns the first outcome of kind for which ok holds; any Failed
// outcome on the way fails the test unless Failed is what is awaited. The
// deadline only guards against a hang: nothing is timed.
func (h *watchHarness) waitFor(kind config.OutcomeKind, ok func(config.Outcome) bool) config.Outcome {
	h.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case o := <-h.outcomes:
			if o.Kind == config.Failed && kind != config.Failed {
				h.t.Fatalf("unexpected failure: %v", o.Err)
			}
			if o.Kind == kind && (ok == nil || ok(o)) {
				return o
			}
		case <-deadline:
			h.t.Fatalf("no %s outcome; stats %+v", kind, h.w.Stats())
		}
	}
}

// source returns the script source of the first channel in service.
func source(cfg *config.Config) string { return string(cfg.Channels[0].Routing.Source) }

func hasSource(src string) func(config.Outcome) bool {
	return func(o config.Outcome) bool { return source(o.Config) == src }
}

// appliedSources returns the script source of each config applied so far.
func (h *watchHarness) appliedSources() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, c := range h.applied {
		out = append(out, source(c))
	}
	return out
}

// TestWatchEditorSaves changes a script the ways editors and tools do and
// checks that the new version is loaded and nothing in between ever is.
func TestWatchEditorSaves(t *testing.T) {
	editors := []struct {
		name string
		save func(h *watchHarness, path, body string)
	}{
		{"in place", func(h *watchHarness, path, body string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			must(h.t, err)
			_, err = f.WriteString(body)
			must(h.t, errors.Join(err, f.Close()))
		}},
		{"truncate then write (VS Code)", func(h *watchHarness, path, body string) {
			must(h.t, os.Truncate(path, 0))
			h.w.Rescan() // look at the empty file, as a slow write would let it
			h.waitFor(config.Incomplete, nil)
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			must(h.t, err)
			_, err = f.WriteString(body)
			must(h.t, errors.Join(err, f.Close()))
		}},
		{"sed -i (temp file renamed over)", func(h *watchHarness, path, body string) {
			tmp := filepath.Join(filepath.Dir(path), "sedX4bZ9q")
			writeFile(h.t, tmp, body)
			must(h.t, os.Rename(tmp, path))
		}},
		{"JetBrains safe write", func(h *watchHarness, path, body string) {
			tmp, old := path+"___jb_tmp___", path+"___jb_old___"
			writeFile(h.t, tmp, body)
			must(h.t, os.Rename(path, old))
			h.w.Rescan() // look while the file is missing
			h.waitFor(config.Incomplete, nil)
			must(h.t, os.Rename(tmp, path))
			must(h.t, os.Remove(old))
		}},
		{"vim backup and rename", func(h *watchHarness, path, body string) {
			dir := filepath.Dir(path)
			writeFile(h.t, filepath.Join(dir, "4913"), "") // vim's probe
			must(h.t, os.Remove(filepath.Join(dir, "4913")))
			must(h.t, os.Rename(path, path+"~"))
			writeFile(h.t, path, body)
			must(h.t, os.Remove(path+"~"))
		}},
		{"delete then recreate", func(h *watchHarness, path, body string) {
			must(h.t, os.Remove(path))
			h.w.Rescan()
			h.waitFor(config.Incomplete, nil)
			writeFile(h.t, path, body)
		}},
		{"script directory removed and recreated", func(h *watchHarness, path, body string) {
			must(h.t, os.RemoveAll(filepath.Dir(path)))
			h.waitFor(config.Incomplete, nil)
			writeFile(h.t, path, body)
		}},
	}
	for _, ed := range editors {
		t.Run(ed.name, func(t *testing.T) {
			h := startWatch(t, map[string]string{
				"conf/dispatch.yaml":  confYAML("../scripts/pick.lua", ""),
				"scripts/pick.lua":    pickV1,
				"scripts/unused.lua":  "not lua at all (",
				"scripts/README.txt":  "notes",
				"conf/other-file.txt": "x",
			}, "conf/dispatch.yaml", config.WatchOptions{})
			path := filepath.Join(h.dir, "scripts/pick.lua")
			for _, v := range []string{pickV2, pickV3} {
				ed.save(h, path, v)
				o := h.waitFor(config.Reloaded, hasSource(v))
				if !slices.Equal(o.Files, []string{path}) {
					t.Errorf("reloaded files %v, want [%s]", o.Files, path)
				}
			}
			for _, src := range h.appliedSources() {
				if src != pickV2 && src != pickV3 {
					t.Errorf("applied a version that was never saved: %q", src)
				}
			}
			if s := h.w.Stats(); s.Failures != 0 {
				t.Errorf("stats %+v: want no failures", s)
			}
		})
	}
}

// TestWatchConfigMapSwap swaps a symlinked directory as Kubernetes does for
// a mounted ConfigMap: the events name "..data", never the files.
func TestWatchConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	gen := func(name, script string) {
		writeFile(t, filepath.Join(dir, name, "dispatch.yaml"), confYAML("pick.lua", ""))
		writeFile(t, filepath.Join(dir, name, "pick.lua"), script)
	}
	gen("..2026_11_25_01", pickV1)
	must(t, os.Symlink("..2026_11_25_01", filepath.Join(dir, "..data")))
	must(t, os.Symlink("..data/dispatch.yaml", filepath.Join(dir, "dispatch.yaml")))
	must(t, os.Symlink("..data/pick.lua", filepath.Join(dir, "pick.lua")))
	h := runWatch(t, dir, filepath.Join(dir, "dispatch.yaml"), config.WatchOptions{})

	gen("..2026_11_25_02", pickV2)
	must(t, os.Symlink("..2026_11_25_02", filepath.Join(dir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	must(t, os.RemoveAll(filepath.Join(dir, "..2026_11_25_01")))
	h.waitFor(config.Reloaded, hasSource(pickV2))
}

func TestWatchBrokenScriptKeepsTheLastGoodVersion(t *testing.T) {
	var logs lockedBuffer
	h := startWatch(t, map[string]string{
		"dispatch.yaml": confYAML("pick.lua", "  - namespace: prod\n    task_queue: sms\n    routing: {lua: pick.lua}\n"),
		"pick.lua":      pickV1,
	}, "dispatch.yaml", config.WatchOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	path := filepath.Join(h.dir, "pick.lua")
	writeFile(t, path, broken)
	o := h.waitFor(config.Failed, nil)
	if want := path + ":2:"; !strings.HasPrefix(o.Err.Error(), want) {
		t.Errorf("error %q, want it to start with %q", o.Err, want)
	}
	// The log line names the place; the source line and caret, which a log
	// line would print escaped, are left to dispatch validate.
	if want := fmt.Sprintf("err=\"%s:2:14: syntax error near 'id'\"", path); !strings.Contains(logs.String(), want) {
		t.Errorf("log %q lacks %q", logs.String(), want)
	}
	for _, ch := range o.Config.Channels {
		if string(ch.Routing.Source) != pickV1 {
			t.Errorf("channel %s serves %q after a failed reload, want the last good version", ch.Name, ch.Routing.Source)
		}
	}
	if s := h.w.Stats(); s.Failures != 1 || !strings.Contains(s.LastError, "pick.lua:2:") {
		t.Errorf("stats %+v: want one failure naming pick.lua:2", s)
	}
	if len(h.appliedSources()) != 0 {
		t.Errorf("a broken script was applied: %q", h.appliedSources())
	}

	writeFile(t, path, pickV2)
	o = h.waitFor(config.Reloaded, nil)
	for _, ch := range o.Config.Channels {
		if string(ch.Routing.Source) != pickV2 {
			t.Errorf("channel %s serves %q, want the fixed version in every channel that uses it", ch.Name, ch.Routing.Source)
		}
	}
}

func TestWatchBrokenConfigKeepsTheWholeOldConfig(t *testing.T) {
	h := startWatch(t, map[string]string{
		"dispatch.yaml": confYAML("pick.lua", ""),
		"pick.lua":      pickV1,
		"v2.lua":        pickV2,
	}, "dispatch.yaml", config.WatchOptions{})
	// A new script and a bad key: nothing of it may be applied.
	writeFile(t, h.conf, confYAML("v2.lua", "    colour: blue\n"))
	o := h.waitFor(config.Failed, nil)
	if want := h.conf + ":6:5: "; !strings.HasPrefix(o.Err.Error(), want) {
		t.Errorf("error %q, want it to start with %q", o.Err, want)
	}
	if source(o.Config) != pickV1 || len(h.appliedSources()) != 0 {
		t.Errorf("a broken config changed what is in service")
	}

	// Fixed: the new script and a new channel come in together.
	writeFile(t, h.conf, confYAML("v2.lua", "  - namespace: prod\n    task_queue: sms\n    routing: {lua: pick.lua}\n"))
	o = h.waitFor(config.Reloaded, nil)
	if len(o.Config.Channels) != 2 || source(o.Config) != pickV2 {
		t.Fatalf("after the fix: %d channels, first serving %q", len(o.Config.Channels), source(o.Config))
	}
	// The new script's directory is watched and its changes load.
	// (Continued below: a config that names a missing script.)
	writeFile(t, filepath.Join(h.dir, "v2.lua"), pickV3)
	h.waitFor(config.Reloaded, hasSource(pickV3))
}

// TestWatchAppliesABacklogChangeWithoutTheGate: a config edit that changes
// only a channel's backlog policy is applied (no script changed, so the
// gate does not run); a bad value keeps the whole old config.
func TestWatchAppliesABacklogChangeWithoutTheGate(t *testing.T) {
	var gated atomic.Int32
	h := startWatch(t, map[string]string{"dispatch.yaml": confYAML("pick.lua", ""), "pick.lua": pickV1},
		"dispatch.yaml", config.WatchOptions{
			Gate: func(ctx context.Context, ch config.Channel, file string) (router.GateReport, error) {
				gated.Add(1)
				return ch.Gate(ctx, file, nil)
			},
		})
	writeFile(t, h.conf, confYAML("pick.lua", "    max_backlog: 5\n    when_full: fail\n    schedule_to_start: 2s\n"))
	o := h.waitFor(config.Reloaded, nil)
	want := engine.BacklogPolicy{MaxBacklog: 5, FailWhenFull: true, ScheduleToStart: 2 * time.Second}
	if got := o.Config.Channels[0].Backlog; got != want {
		t.Errorf("backlog after the edit %+v, want %+v", got, want)
	}
	if n := gated.Load(); n != 0 || len(o.Gated) != 0 {
		t.Errorf("the gate ran %d times (gated %v) on an edit that changed no routing", n, o.Gated)
	}

	writeFile(t, h.conf, confYAML("pick.lua", "    max_backlog: 0\n"))
	o = h.waitFor(config.Failed, nil)
	if msg := h.conf + ":6:18: max_backlog must be 1 or more, got 0"; o.Err == nil || o.Err.Error() != msg {
		t.Errorf("err = %v, want %s", o.Err, msg)
	}
	if got := o.Config.Channels[0].Backlog; got != want {
		t.Errorf("backlog in service after a bad edit %+v, want the last good %+v", got, want)
	}
}

func TestWatchIgnoresSavesThatChangeNothing(t *testing.T) {
	h := startWatch(t, map[string]string{"dispatch.yaml": confYAML("pick.lua", ""), "pick.lua": pickV1},
		"dispatch.yaml", config.WatchOptions{})
	h.waitFor(config.Unchanged, nil) // the look when the watch starts
	writeFile(t, filepath.Join(h.dir, "pick.lua"), pickV1)
	writeFile(t, h.conf, confYAML("pick.lua", ""))
	h.w.Rescan()
	h.waitFor(config.Unchanged, nil) // a look after the saves: the rescan's, or an event's
	if got := h.appliedSources(); len(got) != 0 || h.w.Stats().Reloads != 0 {
		t.Errorf("identical saves were applied: %q", got)
	}
}

// An apply that fails keeps the old config and is tried again on the next
// look.
func TestWatchApplyErrorKeepsTheOldConfigAndRetries(t *testing.T) {
	h := startWatch(t, map[string]string{"dispatch.yaml": confYAML("pick.lua", ""), "pick.lua": pickV1},
		"dispatch.yaml", config.WatchOptions{})
	h.setApplyError(errors.New("no room for it"))
	writeFile(t, filepath.Join(h.dir, "pick.lua"), pickV2)
	o := h.waitFor(config.Failed, nil)
	if !strings.Contains(o.Err.Error(), "no room for it") || source(o.Config) != pickV1 {
		t.Errorf("outcome %v serving %q: want the apply error and the old version", o.Err, source(o.Config))
	}
	h.setApplyError(nil)
	h.w.Rescan()
	h.waitFor(config.Reloaded, hasSource(pickV2))
}

// A script that is a symlink into a directory nobody watches changes
// without an event: only a poll or a rescan (SIGHUP) sees it.
func TestWatchPollAndRescanSeeChangesWithoutEvents(t *testing.T) {
	for _, how := range []string{"poll", "rescan"} {
		t.Run(how, func(t *testing.T) {
			elsewhere := filepath.Join(t.TempDir(), "pick.lua")
			writeFile(t, elsewhere, pickV1)
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "dispatch.yaml"), confYAML("pick.lua", ""))
			must(t, os.Symlink(elsewhere, filepath.Join(dir, "pick.lua")))
			opts := config.WatchOptions{}
			if how == "poll" {
				opts.Poll = 5 * time.Millisecond
			}
			h := runWatch(t, dir, filepath.Join(dir, "dispatch.yaml"), opts)
			writeFile(t, elsewhere, pickV2)
			if how == "rescan" {
				h.w.Rescan()
			}
			h.waitFor(config.Reloaded, hasSource(pickV2))
		})
	}
}

func TestNewWatcherNeedsApply(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "dispatch.yaml"), confYAML("pick.lua", ""))
	writeFile(t, filepath.Join(dir, "pick.lua"), pickV1)
	cfg, err := config.Load(filepath.Join(dir, "dispatch.yaml"), config.Options{})
	must(t, err)
	if _, err := config.NewWatcher(cfg, config.WatchOptions{}); err == nil {
		t.Error("NewWatcher without Apply: no error")
	}
	if _, err := config.NewWatcher(nil, config.WatchOptions{Apply: func(*config.Config) error { return nil }}); err == nil {
		t.Error("NewWatcher without a config: no error")
	}
}

// A config that fails because a script it names is missing loads as soon
// as the script appears, without the config file changing again; its
// failure is reported once.
func TestWatchRetriesAFailedConfig(t *testing.T) {
	h := startWatch(t, map[string]string{"dispatch.yaml": confYAML("pick.lua", ""), "pick.lua": pickV1},
		"dispatch.yaml", config.WatchOptions{})
	writeFile(t, h.conf, confYAML("new.lua", ""))
	o := h.waitFor(config.Failed, nil)
	if !strings.Contains(o.Err.Error(), "cannot read script new.lua") {
		t.Fatalf("failure %v, want the missing script named", o.Err)
	}
	writeFile(t, filepath.Join(h.dir, "new.lua"), pickV2)
	h.waitFor(config.Reloaded, hasSource(pickV2))
	if s := h.w.Stats(); s.Failures != 1 {
		t.Errorf("stats %+v: want the failure counted once", s)
	}
}

// TestWatchForgetsProgramsNotInService: the compiler keeps only the programs
// of the config in service, whether a reload replaced a version or a config
// failed after some of its scripts compiled.
func TestWatchForgetsProgramsNotInService(t *testing.T) {
	compiler := router.NewCompiler(router.Limits{})
	two := func(first, second string) string {
		return confYAML(first, "  - namespace: prod\n    task_queue: sms\n    routing: {lua: "+second+"}\n")
	}
	h := startWatch(t, map[string]string{
		"dispatch.yaml": confYAML("pick.lua", ""),
		"pick.lua":      pickV1,
		"v2.lua":        pickV2,
		"broken.lua":    broken,
	}, "dispatch.yaml", config.WatchOptions{Options: config.Options{Compiler: compiler}})
	if n := compiler.Len(); n != 1 {
		t.Fatalf("after the first load the compiler holds %d programs, want 1", n)
	}
	// v2.lua compiles, broken.lua does not: the config fails as a whole.
	writeFile(t, h.conf, two("v2.lua", "broken.lua"))
	h.waitFor(config.Failed, nil)
	if n := compiler.Len(); n != 1 {
		t.Errorf("after a failed config the compiler holds %d programs, want 1 (the one in service)", n)
	}
	writeFile(t, h.conf, two("v2.lua", "pick.lua"))
	h.waitFor(config.Reloaded, hasSource(pickV2))
	if n := compiler.Len(); n != 2 {
		t.Errorf("with two scripts in service the compiler holds %d programs, want 2", n)
	}
	writeFile(t, filepath.Join(h.dir, "pick.lua"), pickV3) // replaces pickV1
	h.waitFor(config.Reloaded, nil)
	if n := compiler.Len(); n != 2 {
		t.Errorf("after a script was replaced the compiler holds %d programs, want 2", n)
	}
}

// lockedBuffer is a bytes.Buffer for a logger and a test to share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A script that is deleted is a warning, with the version in service kept;
// one caught half written (empty) is not worth one: its write will end.
func TestWatchDeletedScriptIsAWarning(t *testing.T) {
	var logs lockedBuffer
	h := startWatch(t, map[string]string{
		"dispatch.yaml": confYAML("pick.lua", ""),
		"pick.lua":      pickV1,
	}, "dispatch.yaml", config.WatchOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	path := filepath.Join(h.dir, "pick.lua")

	must(t, os.Truncate(path, 0))
	h.w.Rescan()
	o := h.waitFor(config.Incomplete, nil)
	if errors.Is(o.Err, fs.ErrNotExist) || strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("an empty script: %v; log %q", o.Err, logs.String())
	}

	must(t, os.Remove(path))
	h.w.Rescan()
	o = h.waitFor(config.Incomplete, func(o config.Outcome) bool { return errors.Is(o.Err, fs.ErrNotExist) })
	if source(o.Config) != pickV1 && source(h.w.Config()) != pickV1 {
		t.Errorf("the version in service changed")
	}
	if want := "level=WARN msg=\"a file of the config is missing; the version in service keeps serving until it is back\""; !strings.Contains(logs.String(), want) {
		t.Errorf("log %q lacks %q", logs.String(), want)
	}
	// Looked at again, still missing: not warned of again.
	h.w.Rescan()
	h.waitFor(config.Incomplete, func(o config.Outcome) bool { return errors.Is(o.Err, fs.ErrNotExist) })
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings after two looks at the same missing file, want 1:\n%s", n, logs.String())
	}
}
