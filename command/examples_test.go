//go:build linux

package command_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/aion-dispatch/dispatch/command"
	"github.com/aion-dispatch/dispatch/engine"
)

// The workers of examples/, run through the package as dispatch worker
// runs them.

func TestShellExample(t *testing.T) {
	r, err := command.NewRunner(command.RunnerOptions{Program: command.Program{Path: filepath.Join("..", "examples", "shell", "upper.sh")}})
	if err != nil {
		t.Fatal(err)
	}
	text := engine.Payload{ContentType: "text/plain", Data: []byte("hello, world\n")}
	res := handle(t, context.Background(), r, engine.ActivityRequest{ActivityType: "upper", Input: text})
	if res.Status != engine.StatusCompleted || string(res.Output.Data) != "HELLO, WORLD\n" || res.Output.ContentType != "text/plain" {
		t.Errorf("%+v", res)
	}
	res = handle(t, context.Background(), r, engine.ActivityRequest{ActivityType: "lower", Input: text})
	failed(t, res, "upper.sh exited with status 2: upper.sh: unknown activity type lower")
}

func TestPythonExample(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: the Python example is not run")
	}
	s, err := command.StartServer(command.ServerOptions{
		Program:     command.Program{Path: python, Args: []string{filepath.Join("..", "examples", "python", "worker.py")}},
		MaxInFlight: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	json := func(activity, input string) engine.ActivityRequest {
		return engine.ActivityRequest{WorkflowID: "wf", ActivityType: activity,
			Input: engine.Payload{ContentType: "application/json", Data: []byte(input)}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	sleeping := call(t, ctx, s, json("sleep", `{"seconds": 3600}`))
	// Answered while the sleep is in flight.
	completed(t, serve(t, s, json("upper", `{"text": "hi"}`)), `{"text":"HI"}`)
	completed(t, serve(t, s, json("add", `{"numbers": [1, 2, 3.5]}`)), `{"sum":6.5}`)
	res := serve(t, s, engine.ActivityRequest{ActivityType: "upper", Input: engine.Payload{ContentType: "text/plain", Data: []byte("bytes\x00ok")}})
	if res.Status != engine.StatusCompleted || string(res.Output.Data) != "BYTES\x00OK" || res.Output.ContentType != "text/plain" {
		t.Errorf("%+v", res)
	}
	failed(t, serve(t, s, json("resize", `{}`)), "ValueError: unknown activity type 'resize'")
	cancel()
	failed(t, sleeping.wait(), "the activity was cancelled")
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if st := s.Stats(); st.Starts != 1 || st.Exits != 1 || st.Refused != 0 {
		t.Errorf("stats %+v", st)
	}
}
