package config_test

import (
	"fmt"

	"github.com/aion-dispatch/dispatch/config"
)

// Load the shipped configuration: every channel comes with its compiled
// routing script.
func ExampleLoad() {
	cfg, err := config.Load("dispatch.yaml", config.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ch := range cfg.Channels {
		fmt.Println(ch.Name.Namespace()+"/"+ch.Name.TaskQueue(), ch.Routing.Lang, ch.Routing.Path, len(ch.Workers))
	}
	// Output:
	// prod/email lua ../scripts/least_loaded.lua 3
	// prod/render lua ../scripts/affinity.lua 3
	// prod/checkout lua ../scripts/sticky.lua 2
	// prod/search expr ../scripts/canary.expr 3
}
