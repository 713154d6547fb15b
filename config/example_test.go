package config_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/router"
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
	// prod/upper lua ../scripts/least_loaded.lua 2
}

// Keep a config in service up to date with its files. Apply is where the
// new version goes into service (node.Node.Apply does it for a running
// node); a broken save never reaches it. This example is compiled, not run:
// it waits for file changes.
func ExampleWatcher() {
	compiler := router.NewCompiler(router.Limits{})
	cfg, err := config.Load("dispatch.yaml", config.Options{Compiler: compiler})
	if err != nil {
		fmt.Println(err)
		return
	}
	w, err := config.NewWatcher(cfg, config.WatchOptions{
		Options: config.Options{Compiler: compiler},
		Apply: func(next *config.Config) error {
			fmt.Println("now serving", len(next.Channels), "channels")
			return nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() { // SIGHUP: look at every file now
		for {
			select {
			case <-hup:
				w.Rescan()
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := w.Run(ctx); err != nil {
		fmt.Println(err)
	}
}
