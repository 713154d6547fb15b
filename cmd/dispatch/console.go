package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/node"
)

// console is run's stderr: log lines and messages, and a progress line that
// is redrawn in place on a terminal and printed as plain lines otherwise.
type console struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	shown bool // a progress line is on the terminal now
}

func newConsole(w io.Writer) *console {
	c := &console{w: w}
	if f, ok := w.(*os.File); ok {
		if info, err := f.Stat(); err == nil && info.Mode()&os.ModeCharDevice != 0 {
			c.tty = true
		}
	}
	return c
}

// clearLine erases the progress line, if one is shown. c.mu is held.
func (c *console) clearLine() {
	if c.shown {
		io.WriteString(c.w, "\r\033[K")
		c.shown = false
	}
}

// Write writes p (log lines) above the progress line.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLine()
	return c.w.Write(p)
}

func (c *console) printf(format string, args ...any) {
	fmt.Fprintf(c, format, args...)
}

// progress shows the counters until the returned stop is called: every
// 200ms in place on a terminal, otherwise a line a second when they change.
func (c *console) progress(counters func() node.Counters) (stop func()) {
	period := time.Second
	if c.tty {
		period = 200 * time.Millisecond
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(period)
		defer t.Stop()
		last, lastAt := node.Counters{}, time.Now()
		for {
			select {
			case <-done:
				c.mu.Lock()
				c.clearLine()
				c.mu.Unlock()
				return
			case now := <-t.C:
				cur := counters()
				if !c.tty && cur == last {
					continue
				}
				rate := float64(cur.Dispatched-last.Dispatched) / now.Sub(lastAt).Seconds()
				line := progressLine(cur, rate)
				last, lastAt = cur, now
				c.mu.Lock()
				if c.tty {
					c.clearLine()
					io.WriteString(c.w, line)
					c.shown = true
				} else {
					io.WriteString(c.w, line+"\n")
				}
				c.mu.Unlock()
			}
		}
	}()
	return func() { close(done); <-finished }
}

// progressLine is the progress line of counters cur, dispatched at rate a
// second. Its words are the summary's: "not completed" are the
// activities that ended any other way than completed, which the summary's
// channel table splits into "failed" (the worker answered failed) and
// "other" (no worker, a timeout, a routing error).
func progressLine(cur node.Counters, rate float64) string {
	return fmt.Sprintf("dispatched %d  completed %d  not completed %d  re-routed %d  backlog %d  %.0f/s",
		cur.Dispatched, cur.Completed, cur.Failed, cur.Rerouted, cur.Backlog, rate)
}

// summary prints the run's figures: per channel, per worker, per router
// version, and why activities did not complete. A worker's "lost" are the
// activities it had when it exited; "re-routed" those of them that went on
// to another worker. A channel's "waited" are the waits in its backlog that
// ended with a worker selected, "wait-p50" and "wait-p99" their lengths,
// "backlog-peak" the most that waited at once and "wait-timeouts" the
// activities that failed with a schedule-to-start timeout.
func (r *runner) summary(w io.Writer, s node.Stats, watcher *config.Watcher) {
	c := s.Counters
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(c.Dispatched) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "%d activities in %s (%.0f/s): %d completed, %d not completed; %d re-routed; latency p50 %s, p99 %s\n\n",
		c.Dispatched, s.Elapsed.Round(time.Millisecond), rate, c.Completed, c.Failed, c.Rerouted,
		latency(s.Latency.P50), latency(s.Latency.P99))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "channel\tactivities\tcompleted\tfailed\tother\tre-routes\texits\tp50\tp99\twaited\twait-p50\twait-p99\tbacklog-peak\twait-timeouts")
	for _, ch := range s.Channels {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t%s\t%s\t%d\t%d\n", ch.Channel.Short(), ch.Activities, ch.Completed, ch.Failed,
			ch.Other, ch.Reroutes, ch.Exits, latency(ch.Latency.P50), latency(ch.Latency.P99),
			ch.Waited, latency(ch.Wait.P50), latency(ch.Wait.P99), ch.BacklogPeak, ch.ScheduleToStartTimeouts)
	}
	tw.Flush()
	fmt.Fprintln(w)

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "channel\tworker\tselected\tcompleted\tfailed\ttimeouts\texits\trestarts\tlost\tre-routed\tp50\tp99")
	for _, wk := range s.Workers {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", wk.Channel.Short(), wk.Worker, wk.Selected,
			wk.Completed, wk.Failed, wk.TimedOut, wk.Exits, wk.Restarts, wk.Lost, wk.Rerouted, latency(wk.Latency.P50), latency(wk.Latency.P99))
	}
	tw.Flush()
	fmt.Fprintln(w)

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "channel\trouter\thash\tsource\tdecisions\terrors")
	for _, rt := range s.Routers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", rt.Channel.Short(), rt.Version.Lang, shortHash(rt.Version.Hash), rt.Version.Source, rt.Decisions, rt.Errors)
	}
	tw.Flush()
	if watcher != nil {
		st := watcher.Stats()
		fmt.Fprintf(w, "\nreloads: %d applied, %d failed", st.Reloads, st.Failures)
		if st.Refusals > 0 {
			fmt.Fprintf(w, ", %d of them refused by the reload gate", st.Refusals)
		}
		if st.LastError != "" {
			fmt.Fprintf(w, " (last: %s)", firstLine(st.LastError))
		}
		fmt.Fprintln(w)
	}
	if len(s.Reasons) > 0 {
		fmt.Fprintln(w, "\nwhy activities did not complete:")
		for _, rs := range s.Reasons {
			fmt.Fprintf(w, "  %6d  %s\n", rs.Count, rs.Reason)
		}
	}
}

// latency rounds a duration for a table.
func latency(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func firstLine(s string) string {
	for i := range len(s) {
		if s[i] == '\n' {
			return s[:i] + " …"
		}
	}
	return s
}
