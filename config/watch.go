package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/regularfile"
	"github.com/aion-dispatch/dispatch/router"
)

// DefaultDebounce is how long a Watcher lets the files settle after an event
// before it reads them, when WatchOptions set none.
const DefaultDebounce = 50 * time.Millisecond

// maxSettle bounds a burst of events: its files are read at the latest
// maxSettle×Debounce after its first event, however many follow.
const maxSettle = 10

// rewatchPeriod is how often a Watcher retries watching a directory that is
// gone (removed, or not created yet).
const rewatchPeriod = 100 * time.Millisecond

// WatchOptions configure a [Watcher].
type WatchOptions struct {
	// Options are used for every load and compile; share the Compiler the
	// first Load used, so that unchanged scripts are not compiled again.
	// The watcher then owns that Compiler: after each reload or failure it
	// drops the programs the config in service does not use.
	Options
	// Apply puts a new config in service in place of the one in service
	// (a node's Apply). An error keeps the old one. Required.
	Apply func(next *Config) error
	// Debounce is how long the files must be quiet after an event before
	// they are read (editors write in several steps); 0 means
	// DefaultDebounce.
	Debounce time.Duration
	// Poll, if positive, also rehashes the files this often, for
	// filesystems that deliver no events (NFS, FUSE) and for files that are
	// symlinks to other directories.
	Poll time.Duration
	// Logger gets a line for each reload and each failure; nil means
	// slog.Default().
	Logger *slog.Logger
	// Notify, if set, is called after every look at the files with what came
	// of it, on the watcher's goroutine. Tests synchronise on it.
	Notify func(Outcome)
	// Gate, if set, is the reload gate: every channel whose routing a
	// reload would change (a script edit, or a config edit of its routing
	// or script timeout; a new channel too) is checked with it before
	// anything is applied. A version it refuses is refused as a compile
	// error is: reported with the failing case, counted, and the last good
	// version keeps serving. A version it lets through is logged with what
	// it would change.
	Gate GateFunc
}

// OutcomeKind says what came of looking at the files.
type OutcomeKind int

// The outcomes.
const (
	// Unchanged: every file hashes as before; nothing was loaded.
	Unchanged OutcomeKind = iota
	// Reloaded: a new config or script is in service.
	Reloaded
	// Failed: a change did not load or apply; the previous version stays.
	Failed
	// Incomplete: a file is empty or missing, as it is halfway through an
	// editor's save; it is read again on the next event.
	Incomplete
)

// String returns the kind's name.
func (k OutcomeKind) String() string {
	switch k {
	case Reloaded:
		return "reloaded"
	case Failed:
		return "failed"
	case Incomplete:
		return "incomplete"
	}
	return "unchanged"
}

// Outcome is what came of one look at the files.
type Outcome struct {
	Kind OutcomeKind
	// Files are the files whose change was loaded (or failed to load).
	Files []string
	// Applied are, for a Failed outcome of several scripts changed at once,
	// those whose change was put in service nonetheless.
	Applied []string
	// Gated says, for a reload, what the reload gate found on each channel
	// whose routing changed.
	Gated []Gated
	// Config is the config in service afterwards.
	Config *Config
	// Err is why a change failed ([Errors] with FILE:LINE:COL for a config
	// or script that does not load), or which file is incomplete.
	Err error
}

// Gated is what the reload gate found on one channel of a reload.
type Gated struct {
	Channel engine.ChannelName
	Source  string // the script's name: its path, or FILE:LINE (inline)
	Version int    // the source's version in this watcher: 1 as loaded, +1 per reload
	Report  router.GateReport
}

// WatchStats count what a Watcher has done.
type WatchStats struct {
	Checks   int // looks at the files
	Reloads  int // changes put in service
	Failures int // changes that did not load or apply, refusals included
	Refusals int // versions the reload gate refused
	// LastError is the last failure's message, or "".
	LastError string
}

// Watcher keeps a config in service up to date with its files: the config
// file and every script it names. It watches their directories (not the
// files: editors save by rename), lets a burst of events settle, and rehashes
// the files, so that what matters is content, not event types:
//
//   - the config file changed: the whole file is loaded and validated;
//     success applies it, failure keeps the whole old config;
//   - a script changed: it is compiled; success swaps it into every channel
//     that uses it, failure keeps the last good version.
//
// Failures are logged as FILE:LINE:COL: message and counted. A file that is
// empty or missing is taken as halfway through a save and is not loaded.
// Temporary and backup files of editors are never read: only the files the
// config names are.
type Watcher struct {
	path string
	opts WatchOptions
	log  *slog.Logger
	fw   *fsnotify.Watcher

	closeOnce sync.Once
	closed    chan struct{} // closed by Close
	ready     chan struct{} // closed by Run once it watches and has looked

	rescan chan struct{}

	mu    sync.Mutex
	cur   *Config
	seen  map[string]string // file -> hash of the content last looked at (the config file: last applied)
	stats WatchStats
	// runCtx is Run's context, for the reload gate.
	runCtx context.Context
	// versions counts, per script source, the versions put in service.
	versions map[string]int
	// unreadableErr holds, per file that could not be read (not missing),
	// the error last reported, so that it is reported once.
	unreadableErr map[string]string
	// failedConfig is the hash and error of a config file that did not
	// load; it is tried again on every look (a script it names may appear)
	// but its failure is reported once.
	failedConfig string
	// missing is what the last look found missing ("" when nothing was),
	// so that a file that stays deleted is warned of once.
	missing string
}

// NewWatcher returns a watcher for cfg, which must come from [Load] or
// [Parse] and be the config in service. It fails if the system cannot watch
// files (inotify limits, say). Start it with [Watcher.Run], which releases
// the watch when it returns; a watcher never run must be closed.
func NewWatcher(cfg *Config, opts WatchOptions) (*Watcher, error) {
	if cfg == nil || cfg.File == "" {
		return nil, errors.New("watch: no config loaded from a file")
	}
	if opts.Apply == nil {
		return nil, errors.New("watch: no Apply function")
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Compiler == nil {
		opts.Compiler = router.NewCompiler(router.Limits{})
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", cfg.File, err)
	}
	w := &Watcher{path: cfg.File, opts: opts, log: opts.Logger, fw: fw, closed: make(chan struct{}), ready: make(chan struct{}),
		rescan: make(chan struct{}, 1), cur: cfg}
	if w.log == nil {
		w.log = slog.Default()
	}
	w.seen = seenOf(cfg)
	w.unreadableErr = map[string]string{}
	w.versions = map[string]int{}
	w.runCtx = context.Background()
	return w, nil
}

// Close releases the watch. Run does it when it returns; Close is for a
// watcher that is never run, and is safe to call more than once.
func (w *Watcher) Close() error {
	var err error
	w.closeOnce.Do(func() {
		close(w.closed)
		err = w.fw.Close()
	})
	return err
}

// seenOf returns the hashes of the files of cfg as it was loaded.
func seenOf(cfg *Config) map[string]string {
	seen := map[string]string{cfg.File: cfg.hash}
	for _, ch := range cfg.Channels {
		if p := ch.Routing.Path; p != "" {
			seen[p] = contentHash(ch.Routing.Source)
		}
	}
	return seen
}

// Config returns the config in service.
func (w *Watcher) Config() *Config {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

// Stats returns the watcher's counters.
func (w *Watcher) Stats() WatchStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Ready returns a channel that Run closes once its watches are in place
// and it has looked at the files a first time: a change made after that is
// seen.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Rescan asks the running watcher to rehash every file now and re-add its
// watches, as on SIGHUP. It does not wait.
func (w *Watcher) Rescan() {
	select {
	case w.rescan <- struct{}{}:
	default: // one is already due
	}
}

// Run watches until ctx ends, then releases the watch. Once its watches are
// in place it looks at the files, so that a change made since the config
// was loaded is not missed. It returns an error only if the watcher was
// closed before it ran.
func (w *Watcher) Run(ctx context.Context) error {
	fw := w.fw
	defer w.Close()
	w.mu.Lock()
	w.runCtx = ctx
	w.mu.Unlock()
	select {
	case <-w.closed:
		return fmt.Errorf("watch %s: the watcher is closed", w.path)
	default:
	}

	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	// A burst settles once Debounce passes without an event, or at the
	// latest maxSettle after its first event: a file written without pause
	// in a watched directory (a journal beside the config) must not put
	// the look off for good.
	var burst time.Time // when the burst's first event came; zero: no burst
	unsettled := func() {
		now := time.Now()
		if burst.IsZero() {
			burst = now
		}
		settle.Reset(min(w.opts.Debounce, burst.Add(maxSettle*w.opts.Debounce).Sub(now)))
	}
	var poll <-chan time.Time
	if w.opts.Poll > 0 {
		t := time.NewTicker(w.opts.Poll)
		defer t.Stop()
		poll = t.C
	}
	rewatch := time.NewTicker(rewatchPeriod)
	defer rewatch.Stop()

	watched := map[string]bool{}
	missing := w.watch(fw, watched)
	w.check() // what changed between the load and the first watch
	close(w.ready)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if w.relevant(ev, watched) {
				unsettled()
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.log.Warn("file events overflowed; rescanning everything", "config", w.path)
				clear(watched)
				unsettled()
			} else {
				w.log.Warn("file watch error", "config", w.path, "err", err)
			}
		case <-w.rescan:
			clear(watched)
			missing = w.watch(fw, watched)
			w.check()
		case <-poll:
			w.check()
		case <-rewatch.C:
			if !missing {
				continue
			}
			if missing = w.watch(fw, watched); !missing {
				w.check() // the directory came back; what is in it now?
			}
		case <-settle.C:
			burst = time.Time{}
			// Watch first: a directory recreated during the burst must be
			// watched before its files are read, or a write right after the
			// read would go unseen.
			missing = w.watch(fw, watched)
			w.check()
		}
	}
}

// dirs returns the directories to watch: the config file's and every
// script's.
func (w *Watcher) dirs() []string {
	cfg := w.Config()
	dirs := []string{filepath.Dir(cfg.File)}
	for _, ch := range cfg.Channels {
		if p := ch.Routing.Path; p != "" {
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	slices.Sort(dirs)
	return slices.Compact(dirs)
}

// watch adds a watch on every directory not yet watched, drops those no
// longer needed, and reports whether some directory could not be watched.
func (w *Watcher) watch(fw *fsnotify.Watcher, watched map[string]bool) (missing bool) {
	want := w.dirs()
	for dir := range watched {
		if !slices.Contains(want, dir) {
			_ = fw.Remove(dir) // it may be gone already
			delete(watched, dir)
		}
	}
	for _, dir := range want {
		if watched[dir] {
			continue
		}
		if err := fw.Add(dir); err != nil {
			missing = true
			continue
		}
		watched[dir] = true
	}
	return missing
}

// relevant reports whether ev may change what the config reads: an event on
// one of its files, on a watched directory itself (removed or renamed, so
// its watch is gone), or on the "..data" links through which Kubernetes
// swaps a ConfigMap's files.
func (w *Watcher) relevant(ev fsnotify.Event, watched map[string]bool) bool {
	name := filepath.Clean(ev.Name)
	if watched[name] {
		delete(watched, name) // re-added after the settle
		return true
	}
	if strings.HasPrefix(filepath.Base(name), "..") {
		return true
	}
	w.mu.Lock()
	_, ok := w.seen[name]
	pending := w.failedConfig != ""
	w.mu.Unlock()
	return ok || pending // a config that failed may be waiting for any file
}

// check rehashes the files and loads what changed.
func (w *Watcher) check() {
	out := w.load()
	if out.Kind != Unchanged {
		w.forgetUnused()
	}
	w.mu.Lock()
	w.stats.Checks++
	switch out.Kind {
	case Reloaded:
		w.stats.Reloads++
	case Failed:
		w.stats.Failures++
		w.stats.LastError = out.Err.Error()
		w.stats.Refusals += refusals(out.Err)
		if len(out.Applied) > 0 {
			w.stats.Reloads++
		}
	}
	out.Config = w.cur
	missing := ""
	if out.Kind == Incomplete && errors.Is(out.Err, fs.ErrNotExist) {
		missing = out.Err.Error()
	}
	newlyMissing := missing != "" && missing != w.missing
	w.missing = missing
	w.mu.Unlock()
	applied := out.Files
	if out.Kind == Failed {
		applied = out.Applied
	}
	if len(applied) > 0 {
		w.log.Info("reloaded", "files", strings.Join(applied, ", "))
		for _, g := range out.Gated {
			msg := fmt.Sprintf("%s v%d in service", g.Source, g.Version)
			level := slog.LevelInfo
			if w.opts.Gate != nil {
				msg += "; " + g.Report.String()
				if g.Report.Synthetic {
					msg += " (no traffic yet)"
				}
				if g.Report.Worrying() {
					level = slog.LevelWarn // its dispatches will find no worker
				}
			}
			w.log.Log(context.Background(), level, msg, "channel", g.Channel.Short())
		}
	}
	switch out.Kind {
	case Failed:
		w.log.Error("reload failed; keeping the version in service", "files", strings.Join(out.Files, ", "), "err", oneLine(out.Err))
	case Incomplete:
		if newlyMissing { // deleted, or renamed away: it may not come back; said once
			w.log.Warn("a file of the config is missing; the version in service keeps serving until it is back", "err", out.Err)
		} else {
			w.log.Debug("waiting for a file being written", "err", out.Err)
		}
	}
	if w.opts.Notify != nil {
		w.opts.Notify(out)
	}
}

// missingError is an incomplete load because a file does not exist: it
// matches fs.ErrNotExist.
type missingError struct{ msg string }

func (e missingError) Error() string { return e.msg }
func (e missingError) Unwrap() error { return fs.ErrNotExist }

// load reads the config file and, if it did not change, the scripts, and
// puts what changed in service.
func (w *Watcher) load() Outcome {
	cur := w.Config()
	data, err := w.opts.readFile(w.path, MaxConfigBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Outcome{Kind: Incomplete, Err: missingError{fmt.Sprintf("config %s: %s", w.path, errText(err))}}
	case err != nil:
		if !w.unreadable(w.path, err) {
			return Outcome{Kind: Unchanged}
		}
		return Outcome{Kind: Failed, Files: []string{w.path}, Err: Errors{readError(w.path, "config", err)}}
	case len(data) == 0:
		return Outcome{Kind: Incomplete, Err: fmt.Errorf("config %s is empty", w.path)}
	}
	w.readable(w.path)
	if h := contentHash(data); h != w.seenHash(w.path) {
		out := w.loadConfig(cur, data, h)
		if out.Kind != Unchanged {
			return out
		}
		// The same failure as before: scripts of the config in service
		// still reload.
	}
	return w.loadScripts(cur)
}

// unreadable records that file cannot be read (for a reason other than
// being missing, which is a save in progress) and reports whether that is
// news: the same error on the same file is reported once, until the file
// reads again.
func (w *Watcher) unreadable(file string, err error) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.unreadableErr[file] == err.Error() {
		return false
	}
	w.unreadableErr[file] = err.Error()
	return true
}

// readable forgets that file could not be read.
func (w *Watcher) readable(file string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.unreadableErr, file)
}

// readError is the reload failure of a file (what: "config" or "script")
// that could not be read: a directory, a named pipe or a device where the
// file should be, or a file over its limit.
func readError(file, what string, err error) *Error {
	if errors.Is(err, regularfile.ErrTooLarge) {
		return &Error{File: file, Msg: what + " " + errText(err), Err: err}
	}
	return &Error{File: file, Msg: "cannot read " + what + ": " + errText(err), Err: err}
}

func (w *Watcher) seenHash(file string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[file]
}

func (w *Watcher) setSeen(file, hash string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen[file] = hash
}

// loadConfig loads a changed config file (content hash h) whole and applies
// it. A failure it already reported is Unchanged.
func (w *Watcher) loadConfig(cur *Config, data []byte, h string) Outcome {
	files := []string{w.path}
	next, err := Parse(w.path, data, w.opts.Options)
	var gated []Gated
	if err == nil {
		gated, err = w.gateConfig(cur, next)
		var es Errors
		if err != nil && !errors.As(err, &es) {
			return Outcome{Kind: Incomplete, Err: err} // stopped: look again next time
		}
	}
	if err == nil {
		err = w.apply(cur, next)
	}
	if err != nil {
		key := h + "\n" + err.Error()
		w.mu.Lock()
		again := w.failedConfig == key
		w.failedConfig = key
		w.mu.Unlock()
		if again {
			return Outcome{Kind: Unchanged}
		}
		return Outcome{Kind: Failed, Files: files, Err: err}
	}
	w.mu.Lock()
	w.failedConfig = ""
	for file, h := range seenOf(next) {
		w.seen[file] = h
	}
	w.mu.Unlock()
	w.numberVersions(gated)
	return Outcome{Kind: Reloaded, Files: files, Gated: gated}
}

// loadScripts compiles every script whose content changed and swaps those
// that compile into the channels that use them.
func (w *Watcher) loadScripts(cur *Config) Outcome {
	next := *cur
	next.Channels = slices.Clone(cur.Channels)
	var changed, failedFiles, incomplete []string
	missing := false // a script file does not exist
	var errs Errors
	var gated []Gated
	before := map[string]string{} // hashes of the changed files, to restore if the apply fails
	for _, file := range scriptFiles(cur) {
		src, err := w.opts.readFile(file, MaxScriptBytes)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			incomplete = append(incomplete, fmt.Sprintf("script %s: %v", file, errText(err)))
			missing = true
			continue
		case err != nil:
			if w.unreadable(file, err) {
				errs = append(errs, readError(file, "script", err))
				failedFiles = append(failedFiles, file)
			}
			continue
		case len(src) == 0:
			incomplete = append(incomplete, fmt.Sprintf("script %s is empty", file))
			continue
		}
		w.readable(file)
		h := contentHash(src)
		prev := w.seenHash(file)
		if h == prev {
			continue
		}
		before[file] = prev
		w.setSeen(file, h)
		if len(src) > MaxScriptBytes {
			errs = append(errs, &Error{File: file, Msg: fmt.Sprintf("script is %d bytes; the limit is %d", len(src), MaxScriptBytes)})
			failedFiles = append(failedFiles, file)
			continue
		}
		ok := true
		for i := range next.Channels {
			r := &next.Channels[i].Routing
			if r.Path != file {
				continue
			}
			prog, err := w.opts.Compiler.Compile(r.Lang, file, src)
			if err != nil {
				errs = append(errs, ScriptErrors(err, file, 0)...)
				ok = false
				break
			}
			r.Source, r.Program = src, prog
		}
		var fileGated []Gated
		stopped := false
		for i := range next.Channels {
			if !ok || next.Channels[i].Routing.Path != file {
				continue
			}
			g, err := w.gate(next.Channels[i], next.File)
			var refused *Error
			switch {
			case errors.As(err, &refused):
				errs = append(errs, refused)
				ok = false
			case err != nil: // the watcher is stopping: look again next time
				w.setSeen(file, prev)
				incomplete = append(incomplete, fmt.Sprintf("script %s: %v", file, err))
				ok, stopped = false, true
			default:
				fileGated = append(fileGated, g)
			}
			if !ok {
				break
			}
		}
		if !ok {
			// Keep the last good version in every channel.
			for i := range next.Channels {
				if next.Channels[i].Routing.Path == file {
					next.Channels[i].Routing = cur.Channels[i].Routing
				}
			}
			if !stopped {
				failedFiles = append(failedFiles, file)
			}
			continue
		}
		changed = append(changed, file)
		gated = append(gated, fileGated...)
	}
	if len(changed) > 0 {
		if err := w.apply(cur, &next); err != nil {
			for _, file := range changed {
				w.setSeen(file, before[file]) // try them again on the next look
			}
			if len(errs) > 0 {
				err = errors.Join(err, errs)
			}
			return Outcome{Kind: Failed, Files: append(changed, failedFiles...), Err: err}
		}
	}
	switch {
	case len(errs) > 0:
		errs.sort()
		if len(changed) > 0 { // put in service beside the failures
			w.numberVersions(gated)
		}
		return Outcome{Kind: Failed, Files: failedFiles, Applied: changed, Gated: gated, Err: errs}
	case len(changed) > 0:
		w.numberVersions(gated)
		return Outcome{Kind: Reloaded, Files: changed, Gated: gated}
	case len(incomplete) > 0:
		var err error = errors.New(strings.Join(incomplete, "; "))
		if missing {
			err = missingError{err.Error()}
		}
		return Outcome{Kind: Incomplete, Err: err}
	}
	return Outcome{Kind: Unchanged}
}

// gate runs the reload gate, if there is one, on ch as file would put it
// in service. Its error is the refusal, an *Error, or the watcher's
// context's error if it stopped first.
func (w *Watcher) gate(ch Channel, file string) (Gated, error) {
	g := Gated{Channel: ch.Name, Source: ch.Routing.SourceName(ch, file)}
	if w.opts.Gate == nil {
		return g, nil
	}
	w.mu.Lock()
	ctx := w.runCtx
	w.mu.Unlock()
	rep, err := w.opts.Gate(ctx, ch, file)
	switch {
	case err != nil && ctx.Err() != nil:
		return g, fmt.Errorf("the reload gate was stopped: %w", ctx.Err())
	case err != nil:
		return g, ch.Refusal(file, err)
	}
	g.Report = rep
	return g, nil
}

// refusals counts the versions the reload gate refused in a failure.
func refusals(err error) int {
	var es Errors
	if !errors.As(err, &es) {
		if errors.Is(err, router.ErrRefused) {
			return 1
		}
		return 0
	}
	n := 0
	for _, e := range es {
		if errors.Is(e, router.ErrRefused) {
			n++
		}
	}
	return n
}

// gateConfig runs the reload gate on every channel of next whose routing
// differs from cur's (or is new), and refuses next if it refuses one.
func (w *Watcher) gateConfig(cur, next *Config) ([]Gated, error) {
	var gated []Gated
	var errs Errors
	for _, ch := range next.Channels {
		old, had := cur.Channel(ch.Name)
		if had && old.Routing.Program.Hash() == ch.Routing.Program.Hash() && old.ScriptTimeout == ch.ScriptTimeout &&
			old.Routing.SourceName(old, cur.File) == ch.Routing.SourceName(ch, next.File) {
			continue
		}
		g, err := w.gate(ch, next.File)
		var refused *Error
		switch {
		case errors.As(err, &refused):
			errs = append(errs, refused)
		case err != nil:
			return nil, err
		default:
			gated = append(gated, g)
		}
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return gated, nil
}

// numberVersions gives each gated source its version number: 1 is the
// version loaded first, each reload that puts it in service adds one.
func (w *Watcher) numberVersions(gated []Gated) {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := map[string]bool{}
	for i, g := range gated {
		if !seen[g.Source] {
			seen[g.Source] = true
			w.versions[g.Source] = max(w.versions[g.Source], 1) + 1
		}
		gated[i].Version = w.versions[g.Source]
	}
}

// apply puts next in service.
func (w *Watcher) apply(cur, next *Config) error {
	if err := w.opts.Apply(next); err != nil {
		return fmt.Errorf("apply %s: %w", w.path, err)
	}
	w.mu.Lock()
	w.cur = next
	w.mu.Unlock()
	return nil
}

// forgetUnused lets the compiler forget every program the config in service
// does not use: the versions a reload replaced, and those a failed reload
// compiled (a retry compiles them again).
func (w *Watcher) forgetUnused() {
	inUse := map[string]bool{}
	for _, ch := range w.Config().Channels {
		if p := ch.Routing.Program; p != nil {
			inUse[p.Hash()] = true
		}
	}
	w.opts.Compiler.Retain(func(hash string) bool { return inUse[hash] })
}

// scriptFiles returns the script files cfg names, each once, in order.
func scriptFiles(cfg *Config) []string {
	var files []string
	for _, ch := range cfg.Channels {
		if p := ch.Routing.Path; p != "" && !slices.Contains(files, p) {
			files = append(files, p)
		}
	}
	return files
}

// contentHash identifies a file's content.
func contentHash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// oneLine is err's text for a log line: its problems joined by "; ",
// each in its Short form, without the source lines and carets under them
// (dispatch validate shows those), which a log line would print as
// escaped text.
func oneLine(err error) string {
	switch e := err.(type) {
	case interface{ Short() string }: // *Error, Errors, *router.ScriptError
		return e.Short()
	case interface{ Unwrap() []error }: // errors.Join
		parts := make([]string, 0, len(e.Unwrap()))
		for _, err := range e.Unwrap() {
			parts = append(parts, oneLine(err))
		}
		return strings.Join(parts, "; ")
	}
	return err.Error()
}
