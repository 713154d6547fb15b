//go:build linux

package command_test

import (
	"context"
	"fmt"

	"github.com/aion-dispatch/dispatch/command"
	"github.com/aion-dispatch/dispatch/engine"
)

// A Runner runs the program once per activity: the input on stdin, the
// output from stdout.
func ExampleRunner() {
	r, err := command.NewRunner(command.RunnerOptions{Program: command.Program{
		Path: "/bin/sh",
		Args: []string{"-c", `printf '%s: ' "$DISPATCH_ACTIVITY_TYPE"; tr a-z A-Z`},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := r.Handle(context.Background(), engine.ActivityRequest{
		WorkflowID: "wf-1", ActivityType: "shout",
		Input: engine.Payload{ContentType: "text/plain", Data: []byte("hello")},
	})
	fmt.Printf("%v %q %v\n", res.Status, res.Output.Data, err)
	// Output: completed "shout: HELLO" <nil>
}

// A Server keeps one program running and speaks JSON lines with it. This
// one answers every activity line with the output "pong".
func ExampleServer() {
	s, err := command.StartServer(command.ServerOptions{
		Program: command.Program{Path: "/bin/sh", Args: []string{"-c", `
while read -r line; do
	case $line in *'"type":"activity"'*)
		id=$(printf '%s' "$line" | sed 's/.*"id":"\([^"]*\)".*/\1/')
		printf '{"id":"%s","status":"completed","output":"pong"}\n' "$id";;
	esac
done`}},
		MaxInFlight: 4,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	res, err := s.Handle(context.Background(), engine.ActivityRequest{
		ActivityType: "ping",
		Input:        engine.Payload{ContentType: "application/json", Data: []byte(`{"n": 1}`)},
	})
	fmt.Printf("%v %s %s %v\n", res.Status, res.Output.ContentType, res.Output.Data, err)
	// Output: completed application/json "pong" <nil>
}
