//go:build ignore

// gendocs rewrites the reference tables of docs/scripting.md from the
// table of names: go generate ./router/internal/names.
package main

import (
	"log"
	"os"
	"path/filepath"

	"github.com/aion-dispatch/dispatch/router/internal/names"
)

func main() {
	path := filepath.Join("..", "..", "..", names.DocsPath)
	doc, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	out, err := names.Splice(doc)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		log.Fatal(err)
	}
}
