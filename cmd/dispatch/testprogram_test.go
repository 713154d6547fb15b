package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
)

// testProgramName is the command, installed in $PATH by TestMain (a copy
// of this test binary, as "dispatch" is), that the worker tests give
// dispatch worker to run. It has two modes:
//
//	dispatch-test-program serve [N]
//
// speaks JSON lines (docs/workers.md): it answers each activity with its
// input as output, except those of type "fail", which it fails with
// "asked to fail". With N, it answers the first N activities and holds
// every later one, unanswered, until its stdin ends: a worker that is
// stuck, whose activities are in flight when the test kills it.
//
//	dispatch-test-program gate ADDR
//
// runs one activity (per-activity mode): it connects to ADDR, reads one
// byte, then copies its stdin to its stdout. The test's listener sees the
// activity start, and decides when it ends.
const testProgramName = "dispatch-test-program"

func testProgram() {
	args := os.Args[1:]
	var err error
	switch {
	case len(args) >= 1 && args[0] == "serve":
		limit := -1
		if len(args) > 1 {
			limit, err = strconv.Atoi(args[1])
		}
		if err == nil {
			err = serveLines(os.Stdin, os.Stdout, limit)
		}
	case len(args) == 2 && args[0] == "gate":
		err = gate(args[1])
	default:
		err = fmt.Errorf("usage: %s serve [N] | gate ADDR", testProgramName)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", testProgramName, err)
		os.Exit(1)
	}
}

// serveLines answers the request lines on in (see testProgram), the first
// limit of them only if limit >= 0, until in ends.
func serveLines(in io.Reader, out io.Writer, limit int) error {
	type request struct {
		Type         string          `json:"type"`
		ID           string          `json:"id"`
		ActivityType string          `json:"activity_type"`
		Input        json.RawMessage `json:"input"`
	}
	type response struct {
		ID     string          `json:"id"`
		Status string          `json:"status"`
		Output json.RawMessage `json:"output,omitempty"`
		Error  string          `json:"error,omitempty"`
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	enc := json.NewEncoder(out) // one line per answer, written at once
	answered := 0
	for sc.Scan() {
		var req request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return fmt.Errorf("request line: %w", err)
		}
		if req.Type != "activity" || (limit >= 0 && answered >= limit) {
			continue // a cancel, or an activity held
		}
		answered++
		r := response{ID: req.ID, Status: "completed", Output: req.Input}
		if req.ActivityType == "fail" {
			r = response{ID: req.ID, Status: "failed", Error: "asked to fail"}
		}
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("response line: %w", err)
		}
	}
	return sc.Err()
}

// gate waits for one byte from addr, then copies stdin to stdout.
func gate(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return fmt.Errorf("gate: %w", err)
	}
	defer c.Close()
	if _, err := c.Read(make([]byte, 1)); err != nil {
		return fmt.Errorf("gate: %w", err)
	}
	if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
		return fmt.Errorf("gate: %w", err)
	}
	return nil
}
