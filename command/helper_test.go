//go:build linux

package command_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aion-dispatch/dispatch/command"
	"github.com/aion-dispatch/dispatch/engine"
)

// The test binary is also the helper program the tests run: with
// COMMAND_TEST_HELPER set, TestMain runs the helper it names instead of the
// tests.
const (
	helperEnv = "COMMAND_TEST_HELPER"
	readyEnv  = "COMMAND_TEST_READY"  // a FIFO the helper writes its pids to once it is set up
	stderrEnv = "COMMAND_TEST_STDERR" // what "fail" writes to stderr
	codeEnv   = "COMMAND_TEST_CODE"   // the status "fail" exits with
	thenEnv   = "COMMAND_TEST_THEN"   // "exit": "grandchild" exits once set up
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode))
	}
	goleak.VerifyTestMain(m)
}

// helper runs one helper program and returns its exit status.
func helper(mode string) int {
	switch mode {
	case "cat":
		_, _ = io.Copy(os.Stdout, os.Stdin)
	case "env":
		var lines []string
		for _, kv := range os.Environ() {
			if strings.HasPrefix(kv, "DISPATCH_") || strings.HasPrefix(kv, "EXTRA_") {
				lines = append(lines, kv)
			}
		}
		sort.Strings(lines)
		fmt.Println(strings.Join(lines, "\n"))
	case "fail":
		fmt.Fprint(os.Stderr, os.Getenv(stderrEnv))
		code, _ := strconv.Atoi(os.Getenv(codeEnv))
		return code
	case "selfkill":
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	case "flood":
		b := []byte(strings.Repeat("y", 4096))
		for {
			if _, err := os.Stdout.Write(b); err != nil {
				return 1
			}
		}
	case "hang":
		ready(os.Getpid())
		forever()
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		ready(os.Getpid())
		forever()
	case "grandchild":
		child := exec.Command(os.Args[0])
		child.Env = append(os.Environ(), helperEnv+"=hang", readyEnv+"=")
		child.Stdout = os.Stdout // holds the program's stdout open
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		ready(os.Getpid(), child.Process.Pid)
		if os.Getenv(thenEnv) == "exit" {
			fmt.Print("out")
			return 0
		}
		forever()
	case "serve":
		return serveHelper()
	case "runner-parent":
		// A worker process running a program that ignores SIGTERM; the
		// test kills this process and looks for the program.
		ready(os.Getpid())
		r, err := command.NewRunner(command.RunnerOptions{Program: command.Program{
			Path: os.Args[0], Env: append(helperEnviron("ignore-term"), readyEnv+"="+os.Getenv(readyEnv))}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		_, _ = r.Handle(context.Background(), engine.ActivityRequest{WorkflowID: "wf-1"})
	default:
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", mode)
		return 2
	}
	return 0
}

// ready writes pids to the FIFO named by COMMAND_TEST_READY, if any.
func ready(pids ...int) {
	path := os.Getenv(readyEnv)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(f)
	for _, p := range pids {
		fmt.Fprintln(w, p)
	}
	_ = w.Flush()
	_ = f.Close()
}

// forever blocks until the process is killed.
func forever() {
	for {
		time.Sleep(time.Hour)
	}
}
