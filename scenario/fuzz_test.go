package scenario_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/aion-dispatch/dispatch/scenario"
)

// FuzzLoad feeds arbitrary scenario files to the loader: it must never
// panic, and it either loads a scenario with steps or returns an error.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"hot_reload", "membership_change", "affinity_lua", "replay"} {
		data, err := os.ReadFile(filepath.Join("../testdata/scenarios", name+".yaml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("steps:\n  - replay: true\n"))
	f.Add([]byte("version: 1\nchannels: [{namespace: a, task_queue: b, routing: {lang: expr, source: x}}]\nworkers: [{}]\nsteps: [{request: {}}]\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "s.yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := scenario.Load(path)
		if err == nil && (s == nil || len(s.Steps) == 0 || s.Config == nil) {
			t.Fatalf("loaded without error but incomplete: %+v", s)
		}
	})
}
