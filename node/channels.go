package node

import (
	"context"
	"slices"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// ChannelInfo is what a node serves on one channel now: the router in
// service, its workers and its backlog.
type ChannelInfo struct {
	Channel engine.ChannelName
	// Router is the version of the routing in service, and RouterLoaded
	// when it was put in service (the node's start, or the reload that
	// swapped it in).
	Router       engine.RouterVersion
	RouterLoaded time.Time
	// Workers are the workers that serve the channel now, simulated and
	// remote, with their load, in the order routers see them.
	Workers []engine.ConsumerStateView
	// Backlog is how many activities wait in the channel's backlog now;
	// Policy is the channel's backlog policy.
	Backlog int
	Policy  engine.BacklogPolicy
}

// routerInfo is the router a channel's slot holds and when it got it.
type routerInfo struct {
	version engine.RouterVersion
	loaded  time.Time
}

// Channels returns what the node serves on each channel of the config in
// service, in the config's order.
func (n *Node) Channels(ctx context.Context) []ChannelInfo {
	n.mu.Lock()
	cfg := n.cfg
	routers := make([]routerInfo, len(cfg.Channels))
	for i, ch := range cfg.Channels {
		routers[i] = n.routers[ch.Name]
	}
	n.mu.Unlock()
	out := make([]ChannelInfo, 0, len(cfg.Channels))
	for i, ch := range cfg.Channels {
		info := ChannelInfo{Channel: ch.Name, Router: routers[i].version, RouterLoaded: routers[i].loaded,
			Backlog: n.disp.Waiting(ch.Name), Policy: n.BacklogPolicy(ch.Name)}
		ws, err := n.fleet.Workers(ctx, ch.Name, engine.ActivityRequest{TaskQueue: ch.Name.TaskQueue()})
		if err == nil {
			for _, w := range ws {
				v := w.State
				v.Tags = slices.Clone(v.Tags)
				info.Workers = append(info.Workers, v)
			}
		}
		out = append(out, info)
	}
	return out
}

// Channel returns what the node serves on ch, and false when the config in
// service has no such channel.
func (n *Node) Channel(ctx context.Context, ch engine.ChannelName) (ChannelInfo, bool) {
	for _, info := range n.Channels(ctx) {
		if info.Channel == ch {
			return info, true
		}
	}
	return ChannelInfo{}, false
}

// Serves reports whether ch is a channel of the config in service. It
// takes no lock: a front door asks it before every dispatch.
func (n *Node) Serves(ch engine.ChannelName) bool {
	_, ok := n.table.Slot(ch)
	return ok
}

// DispatchOutcome is [Node.Dispatch] with where the activity went (see
// engine.Dispatcher.DispatchOutcome).
func (n *Node) DispatchOutcome(ctx context.Context, namespace string, req engine.ActivityRequest) (engine.Outcome, error) {
	return n.disp.DispatchOutcome(ctx, namespace, req)
}
