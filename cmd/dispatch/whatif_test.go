package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/aion-dispatch/dispatch/engine"
)

// keyPaths collects the object keys of a decoded JSON value as dotted
// paths, arrays seen through ("versions.workers.delta").
func keyPaths(v any, prefix string, into map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			into[prefix+k] = true
			keyPaths(e, prefix+k+".", into)
		}
	case []any:
		for _, e := range v {
			keyPaths(e, prefix, into)
		}
	}
}

// TestWhatIfJSONAsDocumented: replay --what-if --json prints the keys
// docs/scripting.md shows, no more and no fewer (error, which the example
// leaves out, apart).
func TestWhatIfJSONAsDocumented(t *testing.T) {
	ar, err := txtar.ParseFile("testdata/script/replay.txtar")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range ar.Files {
		if f.Name == "versions.jsonl" || f.Name == "mixed.lua" {
			os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644)
		}
	}
	code, stdout, stderr := runCLI(t, "", "replay", "--journal", filepath.Join(dir, "versions.jsonl"),
		"--what-if", filepath.Join(dir, "mixed.lua"), "--channel", "prod/email", "--json")
	if code != exitError { // the script fails on one decision
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	var got any
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}

	doc, err := os.ReadFile("../../docs/scripting.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "`dispatch replay --what-if SCRIPT --channel NS/QUEUE --json`")
	if !ok {
		t.Fatal("docs/scripting.md does not show replay --what-if --json")
	}
	_, rest, _ = strings.Cut(rest, "```json\n")
	block, _, _ := strings.Cut(rest, "```")
	var want any
	if err := json.Unmarshal([]byte(block), &want); err != nil {
		t.Fatalf("the documented document: %v", err)
	}

	gotKeys, wantKeys := map[string]bool{}, map[string]bool{}
	keyPaths(got, "", gotKeys)
	keyPaths(want, "", wantKeys)
	delete(gotKeys, "examples.error")
	var missing, extra []string
	for k := range wantKeys {
		if !gotKeys[k] {
			missing = append(missing, k)
		}
	}
	for k := range gotKeys {
		if !wantKeys[k] {
			extra = append(extra, k)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing)+len(extra) > 0 {
		t.Errorf("documented but not printed: %v; printed but not documented: %v", missing, extra)
	}
}

func TestWhatIfTexts(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{delta(2), "+2"},
		{delta(0), "0"},
		{delta(-3), "-3"},
		{kindsText(0, 0, 0), ""},
		{kindsText(2, 0, 0), ", 2 of them errors"},
		{kindsText(2, 1, 1), ", 2 of them errors (1 timed out), 1 none (no worker, or a full one: the activity would wait)"},
		{versionText(engine.RouterVersion{}), "(not recorded)"},
		{versionText(engine.RouterVersion{Lang: "go"}), "go"},
		{versionText(engine.RouterVersion{Lang: "lua", Hash: "sha256:0123456789abcdef", Source: "a.lua"}), "lua sha256:0123456789ab a.lua"},
		{shortVersion(engine.RouterVersion{}), "-"},
		{shortVersion(engine.RouterVersion{Lang: "go"}), "go"},
		{candidatesText([]engine.ConsumerStateView{{ID: "a", InFlight: 1, MaxInFlight: 4, Tags: []string{"x", "y"}}, {ID: "b"}}), "a 1/4 [x,y], b 0/0"},
		{candidatesText([]engine.ConsumerStateView{{ID: "a", MaxInFlight: 1, Labels: map[string]string{"zone": "b", "region": "eu"}}}), "a 0/1 {region=eu,zone=b}"},
		{candidatesText([]engine.ConsumerStateView{{ID: "a", MaxInFlight: 1, LatencyEWMA: 0.02, LatencyPeakEWMA: 0.0351234, ErrorRate: 0.5, Exits: 1},
			{ID: "b", MaxInFlight: 1, ErrorRate: 1.0 / 3, LatencyEWMA: 1e-7}}), "a 0/1 latency=20ms peak=35.123ms errors=50% exits=1, b 0/1 latency=1e-07s errors=33.3%"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
