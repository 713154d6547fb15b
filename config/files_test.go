package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/config"
)

// TestLoadReadsOnlyRegularFilesWithinTheirLimit: a config or script that is
// a named pipe, a device or a directory is refused at once (a read of a
// pipe without a writer would block for good, one of /dev/zero would never
// end), and a file over its limit is refused without being read whole.
func TestLoadReadsOnlyRegularFilesWithinTheirLimit(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	must(t, syscall.Mkfifo(fifo, 0o644))
	big := filepath.Join(dir, "big")
	f, err := os.Create(big)
	must(t, err)
	must(t, errors.Join(f.Truncate(200<<20), f.Close())) // 200 MB, sparse
	conf := filepath.Join(dir, "dispatch.yaml")
	for _, tc := range []struct {
		name   string
		config string // the path given to Load
		script string // the script the config at conf names, if config is conf
		want   string
	}{
		{"config is a named pipe", fifo, "", fifo + ": cannot read config: is a named pipe, not a regular file"},
		{"config is /dev/zero", "/dev/zero", "", "/dev/zero: cannot read config: is a character device, not a regular file"},
		{"config is a directory", dir, "", dir + ": cannot read config: is a directory, not a regular file"},
		{"config of 200 MB", big, "", big + ": the file is 209715200 bytes; the limit is 1048576"},
		{"script is a named pipe", conf, fifo, conf + ":5:20: cannot read script " + fifo + ": is a named pipe, not a regular file"},
		{"script is /dev/zero", conf, "/dev/zero", conf + ":5:20: cannot read script /dev/zero: is a character device, not a regular file"},
		{"script of 200 MB", conf, big, conf + ":5:20: script " + big + " is 209715200 bytes; the limit is 1048576"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.script != "" {
				writeFile(t, conf, confYAML(tc.script, ""))
			}
			_, err := config.Load(tc.config, config.Options{})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestLoadAcceptsAByteOrderMark: editors on Windows start files with one.
func TestLoadAcceptsAByteOrderMark(t *testing.T) {
	dir := t.TempDir()
	const bom = "\uFEFF"
	writeFile(t, filepath.Join(dir, "dispatch.yaml"), bom+"version: 1\nchannels:\n  - namespace: prod\n    task_queue: email\n    routing: {lua: pick.lua}\n")
	writeFile(t, filepath.Join(dir, "pick.lua"), bom+pickV1)
	cfg, err := config.Load(filepath.Join(dir, "dispatch.yaml"), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(cfg.Channels[0].Routing.Source); got != pickV1 {
		t.Errorf("script source %q, want it without the mark", got)
	}

	// Problems are still placed where they are, columns included.
	writeFile(t, filepath.Join(dir, "bad.yaml"), bom+"version: 1\nchannels: 7\n")
	_, err = config.Load(filepath.Join(dir, "bad.yaml"), config.Options{})
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:2:11:") {
		t.Errorf("err = %v, want it at 2:11", err)
	}
}

// TestWatchRefusesAScriptThatBecomesAPipe: the watcher reports a script
// replaced by a named pipe once, keeps the version in service, still stops
// when asked (a blocking read would hold it for good), and loads the script
// when it is a file again.
func TestWatchRefusesAScriptThatBecomesAPipe(t *testing.T) {
	h := startWatch(t, map[string]string{"dispatch.yaml": confYAML("pick.lua", ""), "pick.lua": pickV1},
		"dispatch.yaml", config.WatchOptions{})
	path := filepath.Join(h.dir, "pick.lua")
	must(t, os.Remove(path))
	must(t, syscall.Mkfifo(path, 0o644))
	o := h.waitFor(config.Failed, nil)
	if want := path + ": cannot read script: is a named pipe, not a regular file"; o.Err == nil || o.Err.Error() != want {
		t.Errorf("failure %v, want %s", o.Err, want)
	}
	if source(o.Config) != pickV1 {
		t.Errorf("in service: %q, want the last good version", source(o.Config))
	}
	h.w.Rescan()
	h.waitFor(config.Unchanged, nil)
	if s := h.w.Stats(); s.Failures != 1 {
		t.Errorf("stats %+v: want the pipe reported once", s)
	}
	must(t, os.Remove(path))
	writeFile(t, path, pickV2)
	h.waitFor(config.Reloaded, hasSource(pickV2))
}

// TestWatchLooksWhileAFileBesideKeepsChanging: a journal written without
// pause beside the config must not put off the look at a fixed config for
// good (after a failed config every event in its directory counts).
func TestWatchLooksWhileAFileBesideKeepsChanging(t *testing.T) {
	h := startWatch(t, map[string]string{"dispatch.yaml": confYAML("pick.lua", ""), "pick.lua": pickV1},
		"dispatch.yaml", config.WatchOptions{Debounce: 20 * time.Millisecond})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the journal
		defer close(done)
		f, err := os.Create(filepath.Join(h.dir, "journal.jsonl"))
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				f.WriteString("{}\n")
			}
		}
	}()
	defer func() { close(stop); <-done }()
	writeFile(t, h.conf, confYAML("pick.lua", "    bogus: 1\n"))
	h.waitFor(config.Failed, nil)
	writeFile(t, h.conf, confYAML("pick.lua", "    script_timeout: 30ms\n"))
	o := h.waitFor(config.Reloaded, nil)
	if o.Config.Channels[0].ScriptTimeout != 30*time.Millisecond {
		t.Errorf("in service: timeout %s, want the fixed config's 30ms", o.Config.Channels[0].ScriptTimeout)
	}
}
