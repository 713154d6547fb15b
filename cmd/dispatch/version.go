package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
)

const versionUsage = `Usage: dispatch version [--json]

Prints what this dispatch was built from: its module version, the Go
version, the versions of the engines its scripts run on (gopher-lua and
expr) and of its NATS libraries, and the VCS revision and time it was built
at, with "+dirty" when the tree had changes. A binary built with go run or
go test has no module version ("(devel)") and, outside a checkout, no
revision.

Flags:
  --json   print {"version", "go", "revision", "time", "modified", "dependencies": {PATH: VERSION}}

Example:
  dispatch version
`

// versionInfo is what dispatch version prints.
type versionInfo struct {
	Version      string            `json:"version"`
	Go           string            `json:"go"`
	Revision     string            `json:"revision,omitempty"`
	Time         string            `json:"time,omitempty"`
	Modified     bool              `json:"modified,omitempty"`
	Dependencies map[string]string `json:"dependencies"`
}

// versionDependencies are the modules whose versions decide how a script
// runs or how a worker talks: the ones worth naming in a bug report.
var versionDependencies = []string{
	"github.com/yuin/gopher-lua",
	"github.com/expr-lang/expr",
	"github.com/nats-io/nats.go",
	"github.com/nats-io/nats-server/v2",
	"go.yaml.in/yaml/v3",
}

func runVersion(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("version", versionUsage, stderr)
	asJSON := fs.Bool("json", false, "")
	if code := parseFlags(fs, versionUsage, args, stdout); code >= 0 {
		return code
	}
	info := buildVersion(debug.ReadBuildInfo())
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(info); err != nil {
			fmt.Fprintf(stderr, "dispatch version: %v\n", err)
			return exitError
		}
		return exitOK
	}
	rev := info.Revision
	if rev == "" {
		rev = "unknown"
	} else if info.Modified {
		rev += "+dirty"
	}
	fmt.Fprintf(stdout, "dispatch %s (%s, revision %s", info.Version, info.Go, rev)
	if info.Time != "" {
		fmt.Fprintf(stdout, ", %s", info.Time)
	}
	fmt.Fprintln(stdout, ")")
	for _, path := range versionDependencies {
		if v, ok := info.Dependencies[path]; ok {
			fmt.Fprintf(stdout, "  %s %s\n", path, v)
		}
	}
	return exitOK
}

// buildVersion reads what bi says of the binary; ok false (no build
// information, which only a binary built without module support lacks)
// gives what the runtime knows.
func buildVersion(bi *debug.BuildInfo, ok bool) versionInfo {
	info := versionInfo{Version: "(unknown)", Go: runtime.Version(), Dependencies: map[string]string{}}
	if !ok {
		return info
	}
	info.Version, info.Go = bi.Main.Version, bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	for _, d := range bi.Deps {
		if slices.Contains(versionDependencies, d.Path) {
			v := d.Version
			if d.Replace != nil {
				v += " => " + d.Replace.Path + " " + d.Replace.Version
			}
			info.Dependencies[d.Path] = v
		}
	}
	return info
}
