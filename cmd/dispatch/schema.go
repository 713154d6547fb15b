package main

import (
	"io"

	"github.com/aion-dispatch/dispatch/config"
)

const schemaUsage = `Usage: dispatch schema

Prints the JSON Schema (draft 2020-12) of the config file, made from the
same declarations the loader checks keys by, so the two agree on every key.
An editor that speaks yaml-language-server (VS Code's YAML extension,
Neovim, Helix, ...) completes keys, shows their documentation and flags
unknown keys and wrong kinds as you type. The repository keeps the same
schema as config/dispatch.schema.json. It checks the file's shape only:
scripts, channel names and paths are checked by dispatch validate.

Point a config at it with a first line (docs/config.md):
  # yaml-language-server: $schema=dispatch.schema.json

Example:
  dispatch schema > dispatch.schema.json
`

func runSchema(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("schema", schemaUsage, stderr)
	if code := parseFlags(fs, schemaUsage, args, stdout); code >= 0 {
		return code
	}
	c := complaints{name: "schema", stderr: stderr}
	schema, err := config.Schema()
	if err != nil {
		return c.fail("%v", err)
	}
	if _, err := stdout.Write(schema); err != nil {
		return c.fail("%v", err)
	}
	return exitOK
}
