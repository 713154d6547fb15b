package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// TestBuildVersion: the module version, the Go version, the VCS settings
// and the named dependencies (replacements shown) are read from the build
// information; without any, what the runtime knows.
func TestBuildVersion(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.99.1",
		Main:      debug.Module{Path: "github.com/aion-dispatch/dispatch", Version: "v0.4.0"},
		Deps: []*debug.Module{
			{Path: "github.com/yuin/gopher-lua", Version: "v1.1.2"},
			{Path: "github.com/expr-lang/expr", Version: "v1.17.8", Replace: &debug.Module{Path: "../expr", Version: "(devel)"}},
			{Path: "golang.org/x/sys", Version: "v0.40.0"},
		},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-11-30T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}},
	}
	got := buildVersion(bi, true)
	if got.Version != "v0.4.0" || got.Go != "go1.99.1" || got.Revision != "abc123" || got.Time != "2026-11-30T10:00:00Z" || !got.Modified {
		t.Errorf("version %+v", got)
	}
	if len(got.Dependencies) != 2 || got.Dependencies["github.com/yuin/gopher-lua"] != "v1.1.2" ||
		got.Dependencies["github.com/expr-lang/expr"] != "v1.17.8 => ../expr (devel)" {
		t.Errorf("dependencies %v, want gopher-lua's and expr's (replaced), not x/sys", got.Dependencies)
	}
	if none := buildVersion(nil, false); none.Version != "(unknown)" || none.Go != runtime.Version() || len(none.Dependencies) != 0 {
		t.Errorf("without build information: %+v", none)
	}
}
