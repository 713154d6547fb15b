package scenario_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aion-dispatch/dispatch/scenario"
)

// TestScenarioFilesAreReadSafely: a scenario, a swapped-in script or a
// golden journal that is a named pipe is an error at once, not a read that
// blocks for good.
func TestScenarioFilesAreReadSafely(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := scenario.Load(fifo); err == nil ||
		err.Error() != fifo+": cannot read scenario: is a named pipe, not a regular file" {
		t.Errorf("scenario: err = %v", err)
	}

	swap := filepath.Join(dir, "swap.yaml")
	writeScenario(t, swap, oneStep("swap: {channel: prod/email, lua: fifo.yaml}"))
	if _, err := scenario.Load(swap); err == nil ||
		!strings.Contains(err.Error(), "swap: cannot read script fifo.yaml: is a named pipe, not a regular file") {
		t.Errorf("swap: err = %v", err)
	}

	ok := filepath.Join(dir, "ok.yaml")
	writeScenario(t, ok, oneStep("request: {channel: prod/email, workflow_id: wf-1, activity_type: send}"))
	if err := syscall.Mkfifo(scenario.GoldenPath(ok), 0o644); err != nil {
		t.Fatal(err)
	}
	res := scenario.Check(context.Background(), ok, false)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "is a named pipe, not a regular file") {
		t.Errorf("golden: err = %v", res.Err)
	}
}

func writeScenario(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// oneStep is a scenario of one channel and worker, and the one step.
func oneStep(step string) string {
	return `version: 1
channels:
  - namespace: prod
    task_queue: email
    routing: {lang: lua, source: "function route(r, c) return c[1].id end"}
workers:
  - {channel: prod/email, id: w1, script: [{complete: sent}]}
steps:
  - ` + step + "\n"
}
