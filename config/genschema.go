//go:build ignore

// genschema rewrites config/dispatch.schema.json from the declarations the
// loader walks: go generate ./config.
package main

import (
	"log"
	"os"
	"path/filepath"

	"github.com/aion-dispatch/dispatch/config"
)

func main() {
	schema, err := config.Schema()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", config.SchemaPath), schema, 0o644); err != nil {
		log.Fatal(err)
	}
}
