package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSchemaPrintsTheShippedSchema: dispatch schema prints the schema the
// repository keeps, byte for byte, and only that.
func TestSchemaPrintsTheShippedSchema(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "..", "config", "dispatch.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "", "schema")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if stdout != string(want) {
		t.Errorf("dispatch schema differs from config/dispatch.schema.json")
	}
}
