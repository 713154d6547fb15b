package node_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/node"
)

// BenchmarkManyChannels starts a node on a config of n channels, one
// worker each, all routed by the same script, and closes it again (the
// close is not timed); parse is loading and validating that config. Work
// that is linear in the channels costs the same per channel (ns/channel)
// at 1,000 and at 10,000.
func BenchmarkManyChannels(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		src := manyChannels(n)
		perChannel := func(b *testing.B) {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/channel")
		}
		b.Run(fmt.Sprintf("parse/channels=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := config.Parse("conf/dispatch.yaml", src, manyChannelsOptions()); err != nil {
					b.Fatal(err)
				}
			}
			perChannel(b)
		})
		b.Run(fmt.Sprintf("start/channels=%d", n), func(b *testing.B) {
			cfg := manyChannelsConfig(b, n)
			quiet := slog.New(slog.DiscardHandler)
			b.ReportAllocs()
			for b.Loop() {
				nd, err := node.New(cfg, node.Options{Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := nd.Close(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			perChannel(b)
		})
	}
}

// manyChannelsOptions reads the script of manyChannels, route.lua.
func manyChannelsOptions() config.Options {
	return config.Options{ReadFile: func(name string) ([]byte, error) {
		if filepath.Base(name) == "route.lua" {
			return []byte(`function route(r, c) return dispatch.least_loaded(c) end`), nil
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}}
}

// manyChannelsConfig is manyChannels(n), loaded.
func manyChannelsConfig(tb testing.TB, n int) *config.Config {
	tb.Helper()
	cfg, err := config.Parse("conf/dispatch.yaml", manyChannels(n), manyChannelsOptions())
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// manyChannels is a config of n channels with one worker each.
func manyChannels(n int) []byte {
	var b bytes.Buffer
	b.WriteString("version: 1\nchannels:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {namespace: ns%d, task_queue: q%d, routing: {lua: route.lua}, workers: [{id: w%d}]}\n", i%100, i, i)
	}
	return b.Bytes()
}
