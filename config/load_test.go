package config_test

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// memFS serves files from a map, so tests need no disk.
type memFS map[string]string

func (m memFS) ReadFile(name string) ([]byte, error) {
	s, ok := m[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return []byte(s), nil
}

var scripts = memFS{
	"scripts/ll.lua":      "function route(r, c) return dispatch.least_loaded(c) end",
	"scripts/ll.expr":     "leastLoaded(candidates)",
	"scripts/bad.lua":     "function route(r, c)\n  return c[1.id\nend",
	"scripts/bad.expr":    "leastLoded(candidates)",
	"scripts/noroute.lua": "local x = 1",
}

func load(t *testing.T, yaml string) (*config.Config, error) {
	t.Helper()
	files := memFS{"conf/dispatch.yaml": yaml}
	for k, v := range scripts {
		files[k] = v
	}
	return config.Load("conf/dispatch.yaml", config.Options{ReadFile: files.ReadFile})
}

const good = `version: 1
defaults:
  script_timeout: 40ms
channels:
  - namespace: prod
    task_queue: email
    routing: {lua: ../scripts/ll.lua}
    workers:
      - {id: e1, max_in_flight: 4, tags: [eu, gpu], labels: {region: eu, gpu: a100, spare: ""}, behavior: {latency: 5ms, jitter: 1ms, fail_rate: 0.1, exit_rate: 0.05, restart_after: 1s}}
      - {id: e2}
  - namespace: prod
    task_queue: search
    script_timeout: 10ms
    routing: {expr: ../scripts/ll.expr}
  - namespace: staging
    task_queue: search
    routing:
      lang: lua
      source: |
        function route(r, c)
          return c[1] and c[1].id
        end
`

func TestLoadGood(t *testing.T) {
	cfg, err := load(t, good)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if cfg.Version != 1 || cfg.Defaults.ScriptTimeout != 40*time.Millisecond || len(cfg.Channels) != 3 {
		t.Fatalf("cfg = %+v", cfg)
	}
	email := cfg.Channels[0]
	if email.Name.String() != "aion.dispatch.prod.email" || email.Routing.Lang != router.Lua ||
		email.Routing.Path != "scripts/ll.lua" || email.ScriptTimeout != 40*time.Millisecond || email.Routing.Program == nil {
		t.Errorf("email = %+v", email)
	}
	w := email.Workers[0]
	want := config.Behavior{Latency: 5 * time.Millisecond, Jitter: time.Millisecond, FailRate: 0.1, ExitRate: 0.05, RestartAfter: time.Second}
	if w.ID != "e1" || w.MaxInFlight != 4 || strings.Join(w.Tags, ",") != "eu,gpu" || w.Behavior != want {
		t.Errorf("worker e1 = %+v", w)
	}
	if wantLabels := map[string]string{"region": "eu", "gpu": "a100", "spare": ""}; !maps.Equal(w.Labels, wantLabels) {
		t.Errorf("worker e1 labels = %v, want %v", w.Labels, wantLabels)
	}
	if e2 := email.Workers[1]; e2.MaxInFlight != 1 || e2.Behavior != (config.Behavior{}) || e2.Labels != nil {
		t.Errorf("worker e2 defaults = %+v", e2)
	}
	if s := cfg.Channels[1]; s.ScriptTimeout != 10*time.Millisecond || s.Routing.Lang != router.Expr {
		t.Errorf("search = %+v", s)
	}
	inline := cfg.Channels[2]
	if inline.Routing.Path != "" || inline.Routing.Program == nil {
		t.Errorf("inline = %+v", inline.Routing)
	}
	if got := inline.Router(cfg.File).Version().Source; got != "conf/dispatch.yaml:15 (inline)" {
		t.Errorf("inline source name = %q", got)
	}
}

// TestLoadBacklog: each of max_backlog, when_full and schedule_to_start is
// the channel's own if it sets it, else the one under defaults, else the
// default (engine.DefaultMaxBacklog, wait, none).
func TestLoadBacklog(t *testing.T) {
	const ch = "  - namespace: prod\n    task_queue: q%d\n    routing: {lua: ../scripts/ll.lua}\n"
	for _, tc := range []struct {
		name     string
		defaults string   // the defaults mapping's keys, or ""
		channels []string // each channel's backlog keys, one channel each
		want     []engine.BacklogPolicy
		wantDefs engine.BacklogPolicy
	}{
		{"nothing set: the defaults", "", []string{""},
			[]engine.BacklogPolicy{{MaxBacklog: engine.DefaultMaxBacklog}},
			engine.BacklogPolicy{MaxBacklog: engine.DefaultMaxBacklog}},
		{"a channel's own", "", []string{"max_backlog: 5\n    when_full: fail\n    schedule_to_start: 2s\n", "when_full: wait\n"},
			[]engine.BacklogPolicy{
				{MaxBacklog: 5, FailWhenFull: true, ScheduleToStart: 2 * time.Second},
				{MaxBacklog: engine.DefaultMaxBacklog}},
			engine.BacklogPolicy{MaxBacklog: engine.DefaultMaxBacklog}},
		{"under defaults", "{max_backlog: 100, when_full: fail, schedule_to_start: 1m}", []string{""},
			[]engine.BacklogPolicy{{MaxBacklog: 100, FailWhenFull: true, ScheduleToStart: time.Minute}},
			engine.BacklogPolicy{MaxBacklog: 100, FailWhenFull: true, ScheduleToStart: time.Minute}},
		{"each key overrides its default alone", "{max_backlog: 100, when_full: fail, schedule_to_start: 1m}",
			[]string{"max_backlog: 1\n", "when_full: wait\n", "schedule_to_start: 250ms\n", ""},
			[]engine.BacklogPolicy{
				{MaxBacklog: 1, FailWhenFull: true, ScheduleToStart: time.Minute},
				{MaxBacklog: 100, FailWhenFull: false, ScheduleToStart: time.Minute},
				{MaxBacklog: 100, FailWhenFull: true, ScheduleToStart: 250 * time.Millisecond},
				{MaxBacklog: 100, FailWhenFull: true, ScheduleToStart: time.Minute}},
			engine.BacklogPolicy{MaxBacklog: 100, FailWhenFull: true, ScheduleToStart: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString("version: 1\n")
			if tc.defaults != "" {
				b.WriteString("defaults: " + tc.defaults + "\n")
			}
			b.WriteString("channels:\n")
			for i, keys := range tc.channels {
				fmt.Fprintf(&b, ch, i)
				if keys != "" {
					b.WriteString("    " + keys)
				}
			}
			cfg, err := load(t, b.String())
			if err != nil {
				t.Fatalf("load: %v\n%s", err, b.String())
			}
			if cfg.Defaults.Backlog != tc.wantDefs {
				t.Errorf("defaults: %+v, want %+v", cfg.Defaults.Backlog, tc.wantDefs)
			}
			policies := cfg.BacklogPolicies()
			for i, want := range tc.want {
				got := cfg.Channels[i]
				if got.Backlog != want || policies[got.Name] != want {
					t.Errorf("channel %d: %+v (by name %+v), want %+v", i, got.Backlog, policies[got.Name], want)
				}
			}
			if len(policies) != len(tc.want) {
				t.Errorf("BacklogPolicies has %d channels, want %d", len(policies), len(tc.want))
			}
		})
	}
}

func TestWhenFull(t *testing.T) {
	if got := config.WhenFull(engine.BacklogPolicy{}); got != "wait" {
		t.Errorf("default: %q", got)
	}
	if got := config.WhenFull(engine.BacklogPolicy{FailWhenFull: true}); got != "fail" {
		t.Errorf("FailWhenFull: %q", got)
	}
}

func TestLoadReportsEveryProblemWithItsPlace(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string // each a line of the error, in order
	}{
		{"empty", ``, []string{"conf/dispatch.yaml:1:1: the file is empty"}},
		{"only comments", "# nothing\n", []string{"conf/dispatch.yaml:1:1: the file is empty"}},
		{"not a mapping", "- a\n- b\n", []string{"conf/dispatch.yaml:1:1: the config must be a mapping, got a list"}},
		{"missing everything", "defaults: {}\n", []string{
			`conf/dispatch.yaml:1:1: the config: missing "version"`,
			`conf/dispatch.yaml:1:1: the config: missing "channels"`}},
		{"no channels", "version: 1\nchannels: []\n", []string{"conf/dispatch.yaml:2:11: channels is empty"}},
		{"bad version", "version: 2\nchannels: []\n", []string{
			"conf/dispatch.yaml:1:10: unsupported version 2",
			"conf/dispatch.yaml:2:11: channels is empty"}},
		{"version type", "version: one\nchannels: []\n", []string{
			`conf/dispatch.yaml:1:10: version must be a whole number, got str "one"`,
			"conf/dispatch.yaml:2:11: channels is empty"}},
		{"syntax", "version: 1\nchannels: [\n", []string{"conf/dispatch.yaml:2: did not find expected node content"}},
		// yaml.v3 names the line where the enclosing construct starts, one
		// early for parser errors; the error names the line that broke it.
		{"a tab in the indentation", "version: 1\nchannels:\n  - namespace: prod\n    task_queue: email\n \trouting: {lua: a.lua}\n",
			[]string{"conf/dispatch.yaml:5:2: found a tab character that violates indentation"}},
		{"a tab starting a list item", "version: 1\nchannels:\n\t- namespace: p\n",
			[]string{"conf/dispatch.yaml:3:1: found character that cannot start any token (a tab in the indentation: YAML indents with spaces)"}},
		{"an unclosed flow mapping", "version: 1\nchannels:\n  - namespace: prod\n    task_queue: email\n    routing: {lua: a.lua\n  - namespace: x\n",
			[]string{"conf/dispatch.yaml:5: did not find expected ',' or '}'"}},
		{"an unclosed quote", "version: 1\nchannels:\n  - namespace: prod\n    task_queue: \"email\n    routing: {lua: a.lua}\n",
			[]string{"conf/dispatch.yaml:4: found unexpected end of stream"}},
		{"a line indented wrong", "version: 1\nchannels:\n  - namespace: prod\n    task_queue: email\n   routing: x\n",
			[]string{"conf/dispatch.yaml:5: did not find expected '-' indicator"}},
		{"lines that end in a lone CR, yaml.v3's line then", "version: 1\rchannels:\r  - namespace: \"x\r",
			[]string{"conf/dispatch.yaml:3: found unexpected end of stream"}},
		{"a quote closed lines later, then a real error", "version: 1\nchannels:\n  - namespace: \"prod\n      more\"\n    task_queue: [x\n",
			[]string{"conf/dispatch.yaml:5: did not find expected ',' or ']'"}},
		{"unknown keys at every level", `version: 1
colour: red
defaults: {script_timeout: 5ms, retries: 3}
channels:
  - namespace: prod
    task_queue: email
    queue: x
    routing: {lua: ../scripts/ll.lua, path: y}
    workers:
      - id: e1
        weight: 2
        behavior: {latency: 1ms, speed: fast}
`, []string{
			`conf/dispatch.yaml:2:1: the config: unknown key "colour" (known: channels, defaults, nats, version)`,
			`conf/dispatch.yaml:3:33: defaults: unknown key "retries"`,
			`conf/dispatch.yaml:7:5: channel: unknown key "queue"`,
			`conf/dispatch.yaml:8:39: routing: unknown key "path"`,
			`conf/dispatch.yaml:11:9: worker: unknown key "weight"`,
			`conf/dispatch.yaml:12:34: behavior: unknown key "speed"`}},
		{"duplicates", `version: 1
channels:
  - namespace: prod
    task_queue: email
    routing: {lua: ../scripts/ll.lua}
    workers: [{id: a}, {id: a}]
  - namespace: prod
    task_queue: email
    task_queue: email
    routing: {lua: ../scripts/ll.lua}
  - namespace: prod
    task_queue: email
    routing: {lua: ../scripts/ll.lua}
`, []string{
			`conf/dispatch.yaml:6:29: duplicate worker id "a" in this channel (first at line 6)`,
			`conf/dispatch.yaml:7:5: duplicate channel prod/email (first at line 3)`,
			`conf/dispatch.yaml:9:5: channel: duplicate key "task_queue" (first at line 8)`,
			`conf/dispatch.yaml:11:5: duplicate channel prod/email (first at line 3)`}},
		{"bad channel parts", `version: 1
channels:
  - {namespace: "pr od", task_queue: email, routing: {lua: ../scripts/ll.lua}}
  - {namespace: prod, task_queue: "a.b", routing: {lua: ../scripts/ll.lua}}
  - {namespace: prod, task_queue: "*", routing: {lua: ../scripts/ll.lua}}
`, []string{
			`conf/dispatch.yaml:3:17: invalid channel namespace "pr od": contains whitespace`,
			`conf/dispatch.yaml:4:35: invalid channel task queue "a.b": contains '.'`,
			`conf/dispatch.yaml:5:35: invalid channel task queue "*": contains wildcard '*'`}},
		{"limits and types", `version: 1
defaults: {script_timeout: 0s}
channels:
  - namespace: prod
    task_queue: email
    script_timeout: soon
    routing: {lua: ../scripts/ll.lua}
    workers:
      - {id: a, max_in_flight: 0}
      - {id: b, max_in_flight: -2, tags: eu}
      - {id: d, tags: ["", " gpu"]}
      - {id: c, max_in_flight: many, behavior: {latency: -1ms, fail_rate: 1.5, exit_rate: x, restart_after: 0s}}
      - {max_in_flight: 2}
      - {id: e, behavior: {fail_rate: 0.6, exit_rate: 0.5}}
`, []string{
			`conf/dispatch.yaml:2:28: defaults.script_timeout must be above zero, got 0s`,
			`conf/dispatch.yaml:6:21: script_timeout: "soon" is not a duration`,
			`conf/dispatch.yaml:9:32: max_in_flight must be 1 or more, got 0`,
			`conf/dispatch.yaml:10:32: max_in_flight must be 1 or more, got -2`,
			`conf/dispatch.yaml:10:42: tags must be a list, got str "eu"`,
			`conf/dispatch.yaml:11:24: tag "" must be non-empty`,
			`conf/dispatch.yaml:11:28: tag " gpu" must be non-empty`,
			`conf/dispatch.yaml:12:32: max_in_flight must be a whole number, got str "many"`,
			`conf/dispatch.yaml:12:58: latency cannot be negative, got -1ms`,
			`conf/dispatch.yaml:12:75: fail_rate must be a number from 0 to 1, got 1.5`,
			`conf/dispatch.yaml:12:91: exit_rate must be a number from 0 to 1, got str "x"`,
			`conf/dispatch.yaml:12:109: restart_after must be above zero, got 0s`,
			`conf/dispatch.yaml:13:9: worker: missing "id"`,
			`conf/dispatch.yaml:14:27: fail_rate 0.6 and exit_rate 0.5 add up to more than 1`}},
		{"labels", `version: 1
channels:
  - namespace: prod
    task_queue: email
    routing: {lua: ../scripts/ll.lua}
    workers:
      - {id: a, labels: [eu]}
      - {id: b, labels: {zone: 3, gpu: true, region: , list: [x], ok: "3"}}
      - {id: c, labels: {"": x, " region": eu, tier: "gold ", 7: x}}
      - {id: d, labels: {kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk: x, long: vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv}}
      - {id: e, labels: {k0: v, k1: v, k2: v, k3: v, k4: v, k5: v, k6: v, k7: v, k8: v, k9: v, k10: v, k11: v, k12: v, k13: v, k14: v, k15: v, k16: v, k17: v, k18: v, k19: v, k20: v, k21: v, k22: v, k23: v, k24: v, k25: v, k26: v, k27: v, k28: v, k29: v, k30: v, k31: v, k32: v}}
      - {id: f, labels: {region: eu, region: us}}
`, []string{
			`conf/dispatch.yaml:7:25: labels must be a mapping, got a list`,
			`conf/dispatch.yaml:8:32: label zone must be a string (quote it), got int "3"`,
			`conf/dispatch.yaml:8:40: label gpu must be a string (quote it), got bool "true"`,
			`conf/dispatch.yaml:8:54: label region must be a string (quote it), got nothing`,
			`conf/dispatch.yaml:8:62: label list must be a string (quote it), got a list`,
			`conf/dispatch.yaml:9:26: label key must be non-empty`,
			`conf/dispatch.yaml:9:33: label key " region" must be UTF-8 without surrounding spaces`,
			`conf/dispatch.yaml:9:54: label tier: value "gold " must be UTF-8 without surrounding spaces`,
			`conf/dispatch.yaml:9:63: labels: keys must be strings, got int "7"`,
			`conf/dispatch.yaml:10:26: label key "kkkkkkkkkkkkkkkkkkkk"… is 64 bytes; the limit is 63`,
			`conf/dispatch.yaml:10:101: label long: value is 256 bytes; the limit is 255`,
			`conf/dispatch.yaml:11:25: labels: 33 labels; the limit is 32`,
			`conf/dispatch.yaml:12:38: labels: duplicate key "region" (first at line 12)`}},
		{"worker programs", `version: 1
channels:
  - namespace: prod
    task_queue: email
    routing: {lua: ../scripts/ll.lua}
    workers:
      - {id: a, exec: [], serve: true}
      - {id: b, exec: send.sh}
      - {id: c, exec: [""]}
      - {id: d, exec: [./send.sh], behavior: {latency: 1ms}}
      - {id: e, serve: yes, restart_after: 1s}
      - {id: f, exec: [./send.sh], serve: maybe, restart_after: 0s}
`, []string{
			`conf/dispatch.yaml:7:23: exec must be a list: the program, then its arguments, as in [./send.sh, --fast]`,
			`conf/dispatch.yaml:8:23: exec must be a list: the program, then its arguments, as in [./send.sh, --fast]`,
			`conf/dispatch.yaml:9:24: exec's program must be non-empty`,
			`conf/dispatch.yaml:10:46: behavior is for simulated workers; worker "d" runs a real program (exec)`,
			`conf/dispatch.yaml:11:24: serve must be true or false, got "yes"`,
			`conf/dispatch.yaml:11:24: serve needs exec: the program to keep running`,
			`conf/dispatch.yaml:12:43: serve must be true or false, got "maybe"`,
			`conf/dispatch.yaml:12:65: restart_after must be above zero, got 0s`}},
		{"nats", `version: 1
nats:
  url: localhost:4222
  listen: everywhere
  heartbeat_timeout: 0s
  tls: {cert: c.pem}
channels:
  - namespace: prod
    task_queue: email
    routing: {lua: ../scripts/ll.lua}
`, []string{
			`conf/dispatch.yaml:3:8: nats.url "localhost:4222": want nats://HOST:PORT (or tls://, ws://), several separated by commas`,
			`conf/dispatch.yaml:4:11: nats.listen "everywhere": want HOST:PORT, as in 127.0.0.1:4222 (port 0 picks a free one)`,
			`conf/dispatch.yaml:4:11: nats: url joins a server and listen starts one; give one`,
			`conf/dispatch.yaml:5:22: nats.heartbeat_timeout must be above zero, got 0s`,
			`conf/dispatch.yaml:6:8: nats.tls: cert and key go together`}},
		{"nats: joining settings without a server to join", `version: 1
nats: {creds: app.creds, system_creds: sys.creds}
channels:
  - namespace: prod
    task_queue: email
    routing: {lua: ../scripts/ll.lua}
`, []string{
			`conf/dispatch.yaml:2:15: nats.creds is for joining a server (nats.url); the embedded server needs none`,
			`conf/dispatch.yaml:2:40: nats.system_creds is for joining a server (nats.url); the embedded server needs none`}},
		{"backlog limits, under defaults and in a channel", `version: 1
defaults: {max_backlog: 0, when_full: drop, schedule_to_start: 0s}
channels:
  - namespace: prod
    task_queue: email
    routing: {lua: ../scripts/ll.lua}
    max_backlog: -3
    when_full: [wait]
    schedule_to_start: -1s
  - namespace: prod
    task_queue: sms
    routing: {lua: ../scripts/ll.lua}
    max_backlog: lots
    when_full: Wait
    schedule_to_start: soon
  - {namespace: prod, task_queue: fax, routing: {lua: ../scripts/ll.lua}, max_backlog: 1.5, when_full: , schedule_to_start: 2}
  - {namespace: prod, task_queue: pager, routing: {lua: ../scripts/ll.lua}, max_backlog: 99999999999}
`, []string{
			`conf/dispatch.yaml:2:25: defaults.max_backlog must be 1 or more, got 0`,
			`conf/dispatch.yaml:2:39: defaults.when_full must be wait (the default) or fail, got "drop"`,
			`conf/dispatch.yaml:2:64: defaults.schedule_to_start must be above zero, got 0s`,
			`conf/dispatch.yaml:7:18: max_backlog must be 1 or more, got -3`,
			`conf/dispatch.yaml:8:16: when_full must be a value, got a list`,
			`conf/dispatch.yaml:9:24: schedule_to_start must be above zero, got -1s`,
			`conf/dispatch.yaml:13:18: max_backlog must be a whole number, got str "lots"`,
			`conf/dispatch.yaml:14:16: when_full must be wait (the default) or fail, got "Wait"`,
			`conf/dispatch.yaml:15:24: schedule_to_start: "soon" is not a duration`,
			`conf/dispatch.yaml:16:88: max_backlog must be a whole number, got float "1.5"`,
			`conf/dispatch.yaml:16:104: when_full must be a value, got nothing`,
			`conf/dispatch.yaml:16:125: schedule_to_start: "2" is not a duration`,
			`conf/dispatch.yaml:17:90: max_backlog: "99999999999" is out of range`}},
		{"scripts", `version: 1
channels:
  - {namespace: a, task_queue: missing, routing: {lua: ../scripts/nope.lua}}
  - {namespace: a, task_queue: lua, routing: {lua: ../scripts/bad.lua}}
  - {namespace: a, task_queue: expr, routing: {expr: ../scripts/bad.expr}}
  - {namespace: a, task_queue: noroute, routing: {lua: ../scripts/noroute.lua}}
  - {namespace: a, task_queue: both, routing: {lua: ../scripts/ll.lua, expr: ../scripts/ll.expr}}
  - {namespace: a, task_queue: none, routing: {}}
  - {namespace: a, task_queue: lang, routing: {lang: python, source: "x"}}
  - namespace: a
    task_queue: inline
    routing:
      lang: lua
      source: |
        function route(r, c)
          return c[
        end
  - {namespace: a, task_queue: inline2, routing: {lang: lua, source: "function rout(r, c) return nil end"}}
`, []string{
			`conf/dispatch.yaml:3:56: cannot read script ../scripts/nope.lua: file does not exist`,
			`conf/dispatch.yaml:7:47: routing: give one script file, lua or expr`,
			`conf/dispatch.yaml:8:47: routing: missing the script`,
			`conf/dispatch.yaml:9:54: unknown script language "python"`,
			`conf/dispatch.yaml:17: syntax error near 'end'`,
			`conf/dispatch.yaml:18:70: the script defines no function route`, // an inline script's own error: at its source
			`scripts/bad.expr:1:1: unknown name leastLoded (did you mean leastLoaded?)`,
			`scripts/bad.lua:2:14: syntax error near 'id'`,
			`scripts/noroute.lua: the script defines no function route`}},
		{"two documents", "version: 1\n---\nversion: 1\n", []string{"conf/dispatch.yaml:2:1: a second YAML document"}},
		{"merge key", "version: 1\nx: &a {b: 1}\nchannels:\n  - <<: *a\n", []string{
			`conf/dispatch.yaml:2:1: the config: unknown key "x"`,
			`conf/dispatch.yaml:4:5: merge keys (<<) are not supported`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.yaml)
			var es config.Errors
			if !errors.As(err, &es) {
				t.Fatalf("err = %v (%T), want config.Errors", err, err)
			}
			var lines []string
			for _, e := range es {
				first, _, _ := strings.Cut(e.Error(), "\n")
				lines = append(lines, first)
			}
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(lines), len(tc.want), strings.Join(lines, "\n"))
			}
			for i, want := range tc.want {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("problem %d:\n got %s\nwant %s…", i+1, lines[i], want)
				}
			}
		})
	}
}

func TestLoadRefusesExcessiveAliasing(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		b.WriteString("a" + itoa(i) + ": &a" + itoa(i) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + itoa(i-1))
		}
		b.WriteString("]\n")
	}
	b.WriteString("channels:\n  - namespace: a\n    task_queue: b\n    routing: {lua: ../scripts/ll.lua}\n    workers: *a11\n")
	start := time.Now()
	_, err := load(t, b.String())
	if err == nil || !strings.Contains(err.Error(), "excessive aliasing") {
		t.Fatalf("err = %v", err)
	}
	t.Logf("refused in %v", time.Since(start))
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestLoadFileErrors(t *testing.T) {
	_, err := config.Load("does/not/exist.yaml", config.Options{})
	if err == nil || !strings.Contains(err.Error(), "does/not/exist.yaml: cannot read config") {
		t.Errorf("err = %v", err)
	}
	big := "version: 1\n#" + strings.Repeat("x", config.MaxConfigBytes) + "\n"
	if _, err := load(t, big); err == nil || !strings.Contains(err.Error(), "the limit is") {
		t.Errorf("oversized: %v", err)
	}
}

func TestParseChannelFlag(t *testing.T) {
	for _, good := range []string{"prod/email", "aion.dispatch.prod.email"} { // the engine's form, as journals show it
		ch, err := config.ParseChannelFlag(good)
		if err != nil || ch.String() != "aion.dispatch.prod.email" {
			t.Errorf("%q = %v, %v", good, ch, err)
		}
	}
	for _, bad := range []string{"prod", "prod/", "/email", "prod/e.mail", "aion.dispatch.prod", "aion.dispatch.prod/email"} {
		if _, err := config.ParseChannelFlag(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("version: 1\nchannels:\n  - &c {namespace: a, task_queue: b, routing: {expr: x}}\n  - *c\n"))
	f.Add([]byte("[[[[[[[[[["))
	f.Add([]byte("version: 1\nchannels: !!binary aGVsbG8=\n"))
	files := memFS{}
	for k, v := range scripts {
		files[k] = v
	}
	c := router.NewCompiler(router.Limits{})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse("conf/dispatch.yaml", data, config.Options{Compiler: c, ReadFile: files.ReadFile})
		if err == nil && (cfg == nil || len(cfg.Channels) == 0) {
			t.Fatalf("accepted a config with no channels: %q", data)
		}
		var es config.Errors
		if err != nil && (!errors.As(err, &es) || len(es) == 0) {
			t.Fatalf("error is not a non-empty config.Errors: %v", err)
		}
	})
}

// TestSyntaxSearchIsBounded: in a large file whose error leaves every prefix
// unparseable, the search for the line gives up within its budget and the
// error keeps yaml.v3's line.
func TestSyntaxSearchIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nchannels: [\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "  {namespace: n%d, task_queue: q, routing: {lua: a.lua}},\n", i)
	}
	_, err := config.Parse("big.yaml", []byte(b.String()), config.Options{ReadFile: memFS{}.ReadFile})
	if err == nil || !strings.HasPrefix(err.Error(), "big.yaml:5002: did not find expected node content") {
		t.Fatalf("err = %v", err)
	}
}

// TestExecPathIsTheConfigDirectorys: a program path with a slash is taken
// from the config file's directory, as an absolute path, even when the
// config is in the working directory ("./x.sh" must not become "x.sh",
// which would be looked up in PATH).
func TestExecPathIsTheConfigDirectorys(t *testing.T) {
	t.Chdir(t.TempDir())
	src := []byte("version: 1\nchannels:\n  - namespace: prod\n    task_queue: p\n    routing: {lang: lua, source: \"function route(r, c) return c[1] end\"}\n    workers:\n      - {id: a, exec: [./x.sh, --fast]}\n      - {id: b, exec: [cat]}\n")
	cfg, err := config.Parse("dispatch.yaml", src, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	ws := cfg.Channels[0].Workers
	if got, want := ws[0].Exec, []string{filepath.Join(wd, "x.sh"), "--fast"}; !slices.Equal(got, want) {
		t.Errorf("exec %q, want %q", got, want)
	}
	if got := ws[1].Exec; !slices.Equal(got, []string{"cat"}) {
		t.Errorf("exec %q, want a bare name left to PATH", got)
	}
}

// A script's compile error stays a *router.ScriptError under the config's
// error, and the config error keeps its source line as data: Error shows
// it below the message, Short leaves it out.
func TestLoadKeepsScriptErrors(t *testing.T) {
	_, err := load(t, `version: 1
channels:
  - namespace: prod
    task_queue: email
    routing: {lua: ../scripts/bad.lua}
  - namespace: prod
    task_queue: sms
    routing:
      lang: lua
      source: |
        function route(r, c)
          return c[1.id
        end
`)
	var es config.Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("err = %v, want two config.Errors", err)
	}
	for _, tc := range []struct {
		line, column, scriptLine int
		short, full              string
	}{
		{12, 0, 2, "conf/dispatch.yaml:12: syntax error near 'id'", "\n\t  return c[1.id"},                  // inline: YAML lines, no caret
		{2, 14, 2, "scripts/bad.lua:2:14: syntax error near 'id'", "\n\t  return c[1.id\n\t             ^"}, // a file: its own lines
	} {
		var e *config.Error
		for _, x := range es {
			if x.Line == tc.line {
				e = x
			}
		}
		if e == nil {
			t.Fatalf("no error at line %d in %v", tc.line, err)
		}
		var se *router.ScriptError
		if !errors.As(e, &se) || se.Line != tc.scriptLine || se.Snippet != "  return c[1.id" {
			t.Errorf("%v: script error %+v, want one at script line %d", e, se, tc.scriptLine)
		}
		if e.Column != tc.column || e.Short() != tc.short || e.Error() != tc.short+tc.full {
			t.Errorf("column %d, Short %q, Error %q; want %d, %q, %q", e.Column, e.Short(), e.Error(), tc.column, tc.short, tc.short+tc.full)
		}
	}
	if strings.Contains(es.Short(), "\n") || !strings.Contains(es.Short(), "; ") {
		t.Errorf("Short() = %q, want the problems on one line", es.Short())
	}
}

// TestInlineRunTimeErrorsAtYAMLLines: an inline script's run-time errors
// name the config file and its line there, as its compile errors do; a
// script file's name the file and the script's own line.
func TestInlineRunTimeErrorsAtYAMLLines(t *testing.T) {
	cfg, err := load(t, `version: 1
channels:
  - namespace: prod
    task_queue: email
    routing:
      lang: lua
      source: |
        function route(r, c)
          local x = nil
          return x.id
        end
  - namespace: prod
    task_queue: sms
    routing:
      lang: expr
      source: |
        let tag = fromJSON("3");
        leastLoaded(candidates, tag)
  - namespace: prod
    task_queue: push
    routing: {lang: lua, source: "function route(r, c) return c.nope.id end"}
`)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{
		"conf/dispatch.yaml:10: ",
		"conf/dispatch.yaml:18: ",
		"conf/dispatch.yaml:21: ",
	} {
		ch := cfg.Channels[i]
		_, err := ch.Router(cfg.File).Select(t.Context(), engine.Selection{})
		var se *router.ScriptError
		if !errors.As(err, &se) {
			t.Fatalf("%s: err = %v, want a *router.ScriptError", ch.Name, err)
		}
		if !strings.HasPrefix(se.Short(), want) || se.Column != 0 || se.Snippet == "" {
			t.Errorf("%s: %q (column %d, snippet %q), want it to start %q, with no column and the line", ch.Name, se.Short(), se.Column, se.Snippet, want)
		}
	}
}

// TestLoadListsEveryExprProblem: an expr script with three typos is three
// problems, each at its line of the config file, with its suggestion.
func TestLoadListsEveryExprProblem(t *testing.T) {
	_, err := load(t, `version: 1
channels:
  - namespace: prod
    task_queue: sms
    routing:
      lang: expr
      source: |
        let gpus = withTag(candidatess, "gpu");
        len(gpus) > 0
          ? leastLoad(gpus)
          : p2c(candidtes)
`)
	var es config.Errors
	if !errors.As(err, &es) {
		t.Fatalf("err = %v, want config.Errors", err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Short())
	}
	want := []string{
		"conf/dispatch.yaml:8: unknown name candidatess (did you mean candidates?)",
		"conf/dispatch.yaml:10: unknown name leastLoad (did you mean leastLoaded?)",
		"conf/dispatch.yaml:11: unknown name candidtes (did you mean candidates?)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
