package config_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/aion-dispatch/dispatch/config"
)

// scenarioKeys are the top-level keys a golden scenario adds to its config
// (scenario.Load passes them as ExtraKeys); they are not the config's.
var scenarioKeys = []string{"description", "workers", "steps"}

// compileSchema compiles config.Schema with a real draft 2020-12
// validator.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	data, err := config.Schema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(config.SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(config.SchemaID)
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	return s
}

// validate checks a YAML config against the schema, as an editor would:
// the YAML converted to JSON first, without the keys in drop.
func validate(t *testing.T, s *jsonschema.Schema, data []byte, drop ...string) error {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("not YAML: %v", err)
	}
	if m, ok := v.(map[string]any); ok {
		for _, k := range drop {
			delete(m, k)
		}
	}
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(doc)
}

// TestSchemaFile: the schema the repository ships is the one Schema
// renders.
func TestSchemaFile(t *testing.T) {
	want, err := config.Schema()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Base(config.SchemaPath))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what config.Schema renders; run go generate ./config (or make golden)", config.SchemaPath)
	}
}

// stubScripts reads files from disk, and gives a script that is not there
// a trivial one of its language, so that configs whose scripts are
// elsewhere (a txtar archive's, made at run time) still load.
func stubScripts(files map[string][]byte) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if b, ok := files[filepath.ToSlash(filepath.Clean(name))]; ok {
			return b, nil
		}
		b, err := os.ReadFile(name)
		if err == nil {
			return b, nil
		}
		switch filepath.Ext(name) {
		case ".lua":
			return []byte("function route(r, c) return c[1].id end"), nil
		case ".expr":
			return []byte("candidates[0].id"), nil
		}
		return nil, err
	}
}

// configFile is a config found in the repository.
type configFile struct {
	name  string
	data  []byte
	extra []string // top-level keys that are not the config's
	files map[string][]byte
}

// repositoryConfigs returns every config of the repository: the example,
// the golden scenarios' and the CLI scripts'.
func repositoryConfigs(t *testing.T) []configFile {
	t.Helper()
	var out []configFile
	data, err := os.ReadFile("dispatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, configFile{name: "dispatch.yaml", data: data})
	scenarios, err := filepath.Glob("../testdata/scenarios/*.yaml")
	if err != nil || len(scenarios) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, name := range scenarios {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, configFile{name: name, data: data, extra: scenarioKeys})
	}
	archives, err := filepath.Glob("../cmd/dispatch/testdata/script/*.txtar")
	if err != nil || len(archives) == 0 {
		t.Fatalf("no CLI scripts: %v", err)
	}
	for _, name := range archives {
		a, err := txtar.ParseFile(name)
		if err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{}
		for _, f := range a.Files {
			files[path.Join("archive", f.Name)] = f.Data
		}
		for _, f := range a.Files {
			if !strings.HasSuffix(f.Name, ".yaml") {
				continue
			}
			c := configFile{name: name + ":" + f.Name, data: f.Data, files: files}
			if bytes.Contains(f.Data, []byte("\nsteps:")) {
				c.extra = scenarioKeys
			}
			out = append(out, c)
		}
	}
	return out
}

// TestSchemaAcceptsTheRepositoryConfigs: every config of the repository
// that loads passes the schema. (One that does not load may fail it or
// not: scripts, names and paths are beyond it.)
func TestSchemaAcceptsTheRepositoryConfigs(t *testing.T) {
	s := compileSchema(t)
	loaded := 0
	for _, c := range repositoryConfigs(t) {
		name := c.name
		if c.files != nil {
			name = path.Join("archive", c.name[strings.LastIndex(c.name, ":")+1:])
		}
		_, err := config.Parse(name, c.data, config.Options{ReadFile: stubScripts(c.files), ExtraKeys: c.extra})
		if err != nil {
			t.Logf("%s does not load, not checked: %v", c.name, err)
			continue
		}
		loaded++
		if err := validate(t, s, c.data, c.extra...); err != nil {
			t.Errorf("%s loads but fails the schema: %v", c.name, err)
		}
	}
	if loaded < 20 {
		t.Errorf("only %d configs loaded; the test checks too few", loaded)
	}
}

// full uses every key the schema declares, across its documents, each a
// valid config.
var full = []string{`version: 1
defaults: {script_timeout: 40ms, max_backlog: 100, when_full: fail, schedule_to_start: 2s}
channels:
  - namespace: prod
    task_queue: email
    routing: {lua: ll.lua}
    script_timeout: 10ms
    max_backlog: 5
    when_full: wait
    schedule_to_start: 1m30s
    workers:
      - {id: e1, max_in_flight: 4, tags: [eu, gpu], labels: {region: eu, gpu: a100, spare: ""}, behavior: {latency: 0, jitter: 1ms, fail_rate: 0.1, exit_rate: 0.05, restart_after: 1s}}
      - {id: e2, exec: [./send.sh, --fast], serve: true, restart_after: 50ms}
  - namespace: prod
    task_queue: search
    routing: {expr: ll.expr}
  - namespace: prod
    task_queue: inline
    routing: {lang: lua, source: "function route(r, c) return c[1].id end"}
nats:
  url: tls://nats-1:4222,tls://nats-2:4222
  creds: a.creds
  system_creds: sys.creds
  tls: {ca: ca.pem, cert: c.pem, key: k.pem}
  heartbeat_timeout: 15s
`, `version: 1
channels:
  - {namespace: prod, task_queue: email, routing: {lang: expr, source: "candidates[0].id"}}
nats: {listen: "127.0.0.1:0"}
`}

// keyPaths returns every key path of m's declarations, as "channels.workers.id".
func keyPaths(m *config.Mapping, prefix string) []string {
	var out []string
	for _, f := range m.Fields {
		out = append(out, prefix+f.Key)
		if f.Fields != nil {
			out = append(out, keyPaths(f.Fields, prefix+f.Key+".")...)
		}
	}
	return out
}

// usedPaths adds to used every key path of the YAML value v.
func usedPaths(v any, prefix string, used map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			used[prefix+k] = true
			if strings.HasSuffix(prefix+k, ".labels") {
				continue // its keys are the labels, not keys of the config
			}
			usedPaths(x, prefix+k+".", used)
		}
	case []any:
		for _, x := range v {
			usedPaths(x, prefix, used)
		}
	}
}

// TestSchemaMatchesTheLoader: the loader and the schema know the same keys.
// The loader reads each mapping by its declaration (config.RootKeys) and
// panics on one whose handlers differ from it; full loads every mapping, and
// uses every declared key, so a key the loader reads and the schema lacks,
// or the reverse, fails here. Then a key added anywhere is refused by both.
func TestSchemaMatchesTheLoader(t *testing.T) {
	s := compileSchema(t)
	used := map[string]bool{}
	for i, doc := range full {
		if _, err := config.Parse(fmt.Sprintf("full%d.yaml", i), []byte(doc), config.Options{ReadFile: stubScripts(nil)}); err != nil {
			t.Fatalf("full[%d] does not load: %v", i, err)
		}
		if err := validate(t, s, []byte(doc)); err != nil {
			t.Fatalf("full[%d] fails the schema: %v", i, err)
		}
		var v any
		if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
			t.Fatal(err)
		}
		usedPaths(v, "", used)
	}
	declared := keyPaths(config.RootKeys, "")
	for _, p := range declared {
		if !used[p] {
			t.Errorf("full uses no %s: add it, so that the loader's table for it is checked", p)
		}
	}
	for p := range used {
		if !slices.Contains(declared, p) {
			t.Errorf("full uses %s, which is not declared", p)
		}
	}

	// An unknown key in each mapping, in every place it is in.
	for _, p := range mappingPaths(config.RootKeys, "") {
		t.Run("unknown key in "+cmp.Or(p, "the config"), func(t *testing.T) {
			var v any
			if err := yaml.Unmarshal([]byte(full[0]), &v); err != nil {
				t.Fatal(err)
			}
			if !addKey(v, p, "bogus") {
				t.Fatalf("%s is not in full[0]", p)
			}
			data, err := yaml.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			_, err = config.Parse("full.yaml", data, config.Options{ReadFile: stubScripts(nil)})
			if err == nil || !strings.Contains(err.Error(), `unknown key "bogus"`) {
				t.Errorf("the loader took a bogus key: %v", err)
			}
			if err := validate(t, s, data); err == nil {
				t.Errorf("the schema took a bogus key")
			}
		})
	}
}

// mappingPaths returns the key path of m ("" for the top) and of every
// mapping under it.
func mappingPaths(m *config.Mapping, p string) []string {
	out := []string{p}
	for _, f := range m.Fields {
		if f.Fields != nil {
			out = append(out, mappingPaths(f.Fields, strings.TrimPrefix(p+"."+f.Key, "."))...)
		}
	}
	return out
}

// addKey adds key to every mapping at the key path p of v ("" for the top).
func addKey(v any, p, key string) bool {
	switch x := v.(type) {
	case []any:
		added := false
		for _, e := range x {
			added = addKey(e, p, key) || added
		}
		return added
	case map[string]any:
		if p == "" {
			x[key] = "x"
			return true
		}
		head, rest, _ := strings.Cut(p, ".")
		if c, ok := x[head]; ok {
			return addKey(c, rest, key)
		}
	}
	return false
}

// TestSchemaRejects: configs the loader refuses for their shape, which the
// schema refuses too.
func TestSchemaRejects(t *testing.T) {
	s := compileSchema(t)
	const ch = "\n  - {namespace: prod, task_queue: email, routing: {lua: ll.lua}"
	tests := []struct{ name, yaml string }{
		{"unknown top-level key", "version: 1\nchannel:" + ch + "}\n"},
		{"no channels", "version: 1\n"},
		{"empty channels", "version: 1\nchannels: []\n"},
		{"version 2", "version: 2\nchannels:" + ch + "}\n"},
		{"version as a string", "version: \"1\"\nchannels:" + ch + "}\n"},
		{"no routing", "version: 1\nchannels:\n  - {namespace: prod, task_queue: email}\n"},
		{"two script files", "version: 1\nchannels:\n  - {namespace: p, task_queue: q, routing: {lua: a.lua, expr: a.expr}}\n"},
		{"a file and a source", "version: 1\nchannels:\n  - {namespace: p, task_queue: q, routing: {lua: a.lua, lang: lua, source: x}}\n"},
		{"lang without source", "version: 1\nchannels:\n  - {namespace: p, task_queue: q, routing: {lang: lua}}\n"},
		{"unknown lang", "version: 1\nchannels:\n  - {namespace: p, task_queue: q, routing: {lang: python, source: x}}\n"},
		{"when_full sometimes", "version: 1\nchannels:" + ch + ", when_full: sometimes}\n"},
		{"max_backlog 0", "version: 1\ndefaults: {max_backlog: 0}\nchannels:" + ch + "}\n"},
		{"max_backlog a word", "version: 1\nchannels:" + ch + ", max_backlog: many}\n"},
		{"script_timeout 0s", "version: 1\ndefaults: {script_timeout: 0s}\nchannels:" + ch + "}\n"},
		{"script_timeout without unit", "version: 1\nchannels:" + ch + ", script_timeout: 5}\n"},
		{"schedule_to_start not a duration", "version: 1\nchannels:" + ch + ", schedule_to_start: soon}\n"},
		{"worker without id", "version: 1\nchannels:" + ch + ", workers: [{max_in_flight: 2}]}\n"},
		{"max_in_flight 0", "version: 1\nchannels:" + ch + ", workers: [{id: w, max_in_flight: 0}]}\n"},
		{"tag with a space", "version: 1\nchannels:" + ch + ", workers: [{id: w, tags: [' eu']}]}\n"},
		{"labels a list", "version: 1\nchannels:" + ch + ", workers: [{id: w, labels: [eu]}]}\n"},
		{"label a number", "version: 1\nchannels:" + ch + ", workers: [{id: w, labels: {zone: 3}}]}\n"},
		{"label key with a space", "version: 1\nchannels:" + ch + ", workers: [{id: w, labels: {' zone': a}}]}\n"},
		{"label value with a space", "version: 1\nchannels:" + ch + ", workers: [{id: w, labels: {zone: ' a'}}]}\n"},
		{"label key too long", "version: 1\nchannels:" + ch + ", workers: [{id: w, labels: {" + strings.Repeat("k", 64) + ": a}}]}\n"},
		{"label value too long", "version: 1\nchannels:" + ch + ", workers: [{id: w, labels: {k: " + strings.Repeat("v", 256) + "}}]}\n"},
		{"tags not a list", "version: 1\nchannels:" + ch + ", workers: [{id: w, tags: eu}]}\n"},
		{"negative latency", "version: 1\nchannels:" + ch + ", workers: [{id: w, behavior: {latency: -1s}}]}\n"},
		{"fail_rate above 1", "version: 1\nchannels:" + ch + ", workers: [{id: w, behavior: {fail_rate: 1.5}}]}\n"},
		{"exec and behavior", "version: 1\nchannels:" + ch + ", workers: [{id: w, exec: [x], behavior: {}}]}\n"},
		{"serve without exec", "version: 1\nchannels:" + ch + ", workers: [{id: w, serve: true}]}\n"},
		{"empty exec", "version: 1\nchannels:" + ch + ", workers: [{id: w, exec: []}]}\n"},
		{"nats url and listen", "version: 1\nchannels:" + ch + "}\nnats: {url: nats://a:4222, listen: ':0'}\n"},
		{"nats creds without url", "version: 1\nchannels:" + ch + "}\nnats: {creds: a.creds}\n"},
		{"nats tls cert without key", "version: 1\nchannels:" + ch + "}\nnats: {url: nats://a:4222, tls: {cert: c.pem}}\n"},
		{"nats heartbeat_timeout 0s", "version: 1\nchannels:" + ch + "}\nnats: {heartbeat_timeout: 0s}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := config.Parse("bad.yaml", []byte(tt.yaml), config.Options{ReadFile: stubScripts(nil)}); err == nil {
				t.Errorf("the loader took it")
			}
			if err := validate(t, s, []byte(tt.yaml)); err == nil {
				t.Errorf("the schema took it")
			}
		})
	}
}

// TestSchemaDurations: the schema's duration pattern agrees with the loader
// on what a duration is.
func TestSchemaDurations(t *testing.T) {
	s := compileSchema(t)
	for _, d := range []string{"50ms", "2s", "1m30s", "1.5h", ".5s", "1.s", "+3us", "4µs", "1h2m3s4ms5us6ns", "0.0001s", "x", "5", "1d", ".s", "-1s", "s", "0s", "0.0ms", "0", "+0s"} {
		t.Run(d, func(t *testing.T) {
			doc := fmt.Sprintf("version: 1\nchannels:\n  - {namespace: p, task_queue: q, routing: {lua: a.lua}, script_timeout: %q, workers: [{id: w, behavior: {latency: %q}}]}\n", d, d)
			_, loadErr := config.Parse("d.yaml", []byte(doc), config.Options{ReadFile: stubScripts(nil)})
			schemaErr := validate(t, s, []byte(doc))
			if (loadErr == nil) != (schemaErr == nil) {
				t.Errorf("loader: %v; schema: %v", loadErr, schemaErr)
			}
		})
	}
}
