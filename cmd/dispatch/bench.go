package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/regularfile"
	"github.com/aion-dispatch/dispatch/journal"
)

const benchUsage = `Usage: dispatch bench -c FILE --channel NS/QUEUE --candidates JSON|@FILE|N [--exclude ID]... [--request JSON] [--duration D] [--json]
       dispatch bench -c FILE --channel NS/QUEUE --journal FILE [--duration D] [--json]

Runs the channel's routing script over and over for about --duration, as
the engine would (the selection it builds, the script's call under the
channel's script_timeout, the check of the answer), and prints how fast it
decides: decisions per second, the time per decision (the median over
batches of calls, each batch timed as a whole), the p50 and p99 of single
decisions' latency (each call timed on its own), the heap allocations per
decision (counted around each batch), and the worker chosen. The first
decision (with --journal, a first pass over the recorded decisions) is not
timed: it checks that the script runs on the inputs.

Flags:
  -c, --config FILE     the config file (default config/dispatch.yaml)
  --channel NS/QUEUE    the channel, as namespace/task_queue (or the
                        aion.dispatch.NS.QUEUE form journals show)
  --candidates JSON     the workers to choose from, as for dispatch route: a
                        JSON array of {"id", "in_flight", "max_in_flight",
                        "buffer_depth", "tags", "labels", "latency_ewma",
                        "latency_peak_ewma", "error_rate", "exits"}; @FILE
                        reads it from a file, - from standard input. A number
                        N instead makes N synthetic candidates, the same on
                        every run: ids w001, w002, ... (more digits past
                        999), max_in_flight 4, 8, 16 in turn, in_flight 7*i
                        mod max_in_flight (so none is full), buffer_depth i
                        mod 3, the tag "fast" on every fourth (w004, w008,
                        ...), latency_ewma (i mod 5 + 1) * 5ms with a peak
                        1.5 times that, error_rate (i mod 10) / 20, and 1
                        exit on every seventh
  --exclude ID          a worker already excluded (repeatable)
  --request JSON        the request the script sees, as for dispatch route
  --journal FILE        instead of --candidates: the channel's recorded
                        decisions in a journal (each worker_selected line's
                        request, candidates, excluded workers and attempt, as
                        replay --what-if re-runs them), taken in turn; they
                        are held in memory
  --duration D          how long to run, about (default 1s)
  --json                print {"ns_per_op", "allocs_per_op", "p50_ns", "p99_ns",
                        "decisions", "worker"}; worker is null when none is
                        chosen; with --journal it is the worker chosen most
                        often over the first pass (on a tie, the first id in
                        order), null if the script chose none on any

Exit codes: 0 the benchmark ran, a worker chosen or not (none is shown as
(none), with the reason); 1 an error: the config, the channel, a journal
with no decisions on the channel, a script that fails on an input (its
error printed as dispatch route prints it; with --journal, after the
decision's FILE:LINE); 2 a bad command line, flag values included
(--candidates that are not JSON nor a count, --duration 0, no candidate
left once the excluded are removed).

Examples:
  dispatch bench -c config/dispatch.yaml --channel prod/email --candidates 100
  dispatch bench -c config/dispatch.yaml --channel prod/email --journal journal.jsonl --duration 5s --json
`

// maxSyntheticCandidates bounds --candidates N.
const maxSyntheticCandidates = 100_000

// benchResult is the --json output.
type benchResult struct {
	NsPerOp     int64   `json:"ns_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
	P50         int64   `json:"p50_ns"`
	P99         int64   `json:"p99_ns"`
	Decisions   int     `json:"decisions"`
	Worker      *string `json:"worker"`
}

// benchInput is one selection the benchmark runs, with where it comes from.
type benchInput struct {
	line int // its worker_selected line, with --journal
	sel  engine.Selection
}

func runBench(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("bench", benchUsage, stderr)
	f := addDecisionFlags(fs)
	journalFlag := fs.String("journal", "", "")
	duration := fs.Duration("duration", time.Second, "")
	if code := parseFlags(fs, benchUsage, args, stdout); code >= 0 {
		return code
	}
	c := complaints{name: "bench", stderr: stderr}
	switch {
	case *f.channel == "" || (*f.candidates == "") == (*journalFlag == ""):
		fmt.Fprintln(stderr, "dispatch bench: --channel is required, and one of --candidates and --journal")
		fmt.Fprint(stderr, benchUsage)
		return exitUsage
	case *journalFlag != "" && (len(f.excluded) > 0 || *f.request != ""):
		return c.usage("--journal takes the requests and exclusions the journal recorded; drop --exclude and --request")
	case *f.candidates == "-" && *f.request == "-":
		return c.usage("--candidates and --request cannot both read standard input; give one of them as JSON or @FILE")
	case *duration <= 0:
		return c.usage("--duration %s: want a positive duration such as 1s", *duration)
	}
	ch, err := config.ParseChannelFlag(*f.channel)
	if err != nil {
		return c.usage("--channel: %v", err)
	}
	var inputs []benchInput
	var what string // the inputs, for the text output's header
	if *f.candidates != "" {
		cands, err := benchCandidates(*f.candidates, stdin)
		if err != nil {
			return c.usage("--candidates: %v", err)
		}
		req, err := readRouteRequest(*f.request, stdin)
		if err != nil {
			return c.usage("--request: %v", err)
		}
		sel := routeSelection(ch, req, cands, f.excluded)
		switch {
		case len(cands) == 0:
			return c.usage("--candidates: no candidates; the engine asks no script then, there is nothing to time")
		case len(sel.Candidates) == 0:
			return c.usage("--exclude: %s; the engine asks no script then, there is nothing to time", allExcluded(cands, f.excluded))
		}
		inputs = []benchInput{{sel: sel}}
		what = fmt.Sprintf("%d candidates", len(sel.Candidates))
	}
	r, code := f.router(ch, c)
	if code >= 0 {
		return code
	}
	if *journalFlag != "" {
		var code int
		if inputs, code = journalInputs(*journalFlag, ch, stderr); code >= 0 {
			return code
		}
		what = fmt.Sprintf("%d recorded decisions (%s)", len(inputs), *journalFlag)
	}
	ctx := context.Background()

	// The first pass: the script runs on every input, and what it chose.
	chosen := map[string]int{}
	var declined error // why the first input got no worker
	for i, in := range inputs {
		w, why, err := decideOnce(ctx, r, in.sel)
		switch {
		case err != nil && *journalFlag != "":
			return c.fail("%s:%d: %v", *journalFlag, in.line, err)
		case err != nil:
			return c.fail("%v", err)
		case w != "":
			chosen[w]++
		case i == 0:
			declined = why
		}
	}
	worker := mostChosen(chosen)

	st, err := benchmark(ctx, *duration, func(ctx context.Context, i int) error {
		in := inputs[i%len(inputs)]
		_, _, err := decideOnce(ctx, r, in.sel)
		if err != nil && *journalFlag != "" {
			return fmt.Errorf("%s:%d: %w", *journalFlag, in.line, err)
		}
		return err
	})
	if err != nil {
		return c.fail("%v", err)
	}

	if *f.asJSON {
		out := benchResult{NsPerOp: int64(math.Round(st.nsPerOp)), AllocsPerOp: roundTenth(st.allocsPerOp),
			P50: int64(st.p50), P99: int64(st.p99), Decisions: st.decisions}
		if worker != "" {
			out.Worker = &worker
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return c.fail("%v", err)
		}
		return exitOK
	}
	v := r.Version()
	fmt.Fprintf(stdout, "%s: %s %s %s, %s\n", ch.Short(), v.Lang, v.Source, shortHash(v.Hash), what)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "decisions\t%d in %s (%.0f/s)\n", st.decisions, benchTime(st.elapsed), float64(st.decisions)/max(st.elapsed, time.Nanosecond).Seconds())
	fmt.Fprintf(tw, "ns/decision\t%.0f (median of %d batches)\n", st.nsPerOp, st.batches)
	fmt.Fprintf(tw, "latency\tp50 %s, p99 %s\n", benchTime(st.p50), benchTime(st.p99))
	fmt.Fprintf(tw, "allocs/decision\t%s\n", strconv.FormatFloat(roundTenth(st.allocsPerOp), 'f', -1, 64))
	switch {
	case *journalFlag != "" && worker != "":
		fmt.Fprintf(tw, "worker\t%s (the most chosen: %d of %d decisions)\n", worker, chosen[worker], len(inputs))
	case *journalFlag != "":
		fmt.Fprintf(tw, "worker\t(none on any decision)\n")
	case worker != "":
		fmt.Fprintf(tw, "worker\t%s\n", worker)
	default:
		fmt.Fprintf(tw, "worker\t(none): %v\n", declined)
	}
	tw.Flush()
	return exitOK
}

// benchCandidates reads --candidates: a count of synthetic candidates, or
// what dispatch route reads.
func benchCandidates(v string, stdin io.Reader) ([]engine.ConsumerStateView, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return readCandidates(v, stdin)
	}
	if n < 1 || n > maxSyntheticCandidates {
		return nil, fmt.Errorf("%d synthetic candidates: want 1 to %d", n, maxSyntheticCandidates)
	}
	return syntheticCandidates(n), nil
}

// syntheticCandidates makes n candidates, the same for the same n: ids
// w001, w002, ... (as many digits as n needs, at least 3), max_in_flight 4,
// 8, 16 in turn, in_flight 7*i mod max_in_flight (so none is full),
// buffer_depth i mod 3, the tag "fast" on every fourth, latency_ewma
// (i mod 5 + 1) * 5 ms with a peak 1.5 times that, error_rate
// (i mod 10) / 20, and 1 exit on every seventh.
func syntheticCandidates(n int) []engine.ConsumerStateView {
	width := max(3, len(strconv.Itoa(n)))
	out := make([]engine.ConsumerStateView, n)
	for i := range out {
		k := i + 1
		maxInFlight := [...]int{4, 8, 16}[i%3]
		out[i] = engine.ConsumerStateView{ID: fmt.Sprintf("w%0*d", width, k), InFlight: 7 * k % maxInFlight,
			MaxInFlight: maxInFlight, BufferDepth: k % 3, LatencyEWMA: float64(k%5+1) * 5 / 1000,
			LatencyPeakEWMA: float64(k%5+1) * 7.5 / 1000, ErrorRate: float64(k%10) / 20}
		if k%4 == 0 {
			out[i].Tags = []string{"fast"}
		}
		if k%7 == 0 {
			out[i].Exits = 1
		}
	}
	return out
}

// journalInputs reads the recorded decisions on ch from the journal at
// path, as replay --what-if does; code is the exit code to stop with, or -1.
func journalInputs(path string, ch engine.ChannelName, stderr io.Writer) (inputs []benchInput, code int) {
	f, err := regularfile.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "dispatch bench: %v\n", err)
		return nil, exitError
	}
	defer f.Close()
	jr := journal.NewReader(f)
	channels := map[engine.ChannelName]int{}
	for dec := range journal.Decisions(jr.All()) {
		channels[dec.Selection.Channel]++
		// A selection with no candidate left is one the engine asks no
		// script about.
		if dec.Selection.Channel == ch && len(dec.Selection.Candidates) > 0 {
			inputs = append(inputs, benchInput{line: dec.Line, sel: dec.Selection})
		}
	}
	if err := jr.Err(); err != nil {
		return nil, readError(stderr, path, err)
	}
	warnTruncated(stderr, path, jr.Truncated())
	if len(inputs) == 0 {
		fmt.Fprintf(stderr, "%s: no routing decisions on %s; %s\n", path, ch.Short(), decisionsText(channels))
		return nil, exitError
	}
	return inputs, -1
}

// decideOnce asks r for a decision on sel and judges it as the engine
// does: it returns the worker the activity would go to, or "" and why
// none; err is what fails the routing (the script's error, or an answer
// that is not a candidate).
func decideOnce(ctx context.Context, r engine.Router, sel engine.Selection) (worker string, declined, err error) {
	d, err := r.Select(ctx, sel)
	if err != nil {
		return "", nil, err
	}
	if _, why := engine.CheckDecision(sel.Candidates, d); why != nil {
		if errors.Is(why, engine.ErrRouting) {
			return "", nil, why
		}
		return "", why, nil
	}
	return d.WorkerID, nil, nil
}

// mostChosen returns the worker with the highest count ("" if none), the
// first in id order on a tie.
func mostChosen(counts map[string]int) string {
	ids := make([]string, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	best := ""
	for _, id := range ids {
		if best == "" || counts[id] > counts[best] {
			best = id
		}
	}
	return best
}

// benchStats is what benchmark measured.
type benchStats struct {
	decisions   int
	batches     int
	elapsed     time.Duration // the batches' time, summed
	nsPerOp     float64       // the median over batches of a batch's time per decision
	p50, p99    time.Duration // of single decisions (of a sample past maxLatencySamples)
	allocsPerOp float64       // heap allocations, over all batches
}

// Bounds of benchmark's work.
const (
	maxBatch          = 1 << 16 // decisions in one batch
	maxLatencySamples = 1 << 20 // single latencies kept for p50 and p99
	minBatchTime      = 10 * time.Microsecond
)

// benchmark calls decide with i = 0, 1, 2, ... for about d (at least one
// batch), in batches that double until one takes a hundredth of d, timing
// each batch and each call and counting each batch's heap allocations. It
// stops at decide's first error, or when ctx is done.
func benchmark(ctx context.Context, d time.Duration, decide func(ctx context.Context, i int) error) (benchStats, error) {
	var (
		st      benchStats
		perOp   []float64 // each batch's time per decision, in ns
		lat     []time.Duration
		seen    int // latencies measured, kept or not
		mallocs uint64
		ms      runtime.MemStats
	)
	rng := rand.New(rand.NewPCG(1, 2)) // the reservoir's sample, the same on every run
	target := max(d/100, minBatchTime)
	n := 1
	start := time.Now()
	for st.batches == 0 || time.Since(start) < d {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		batch := make([]time.Duration, n) // before the count: not the script's
		runtime.ReadMemStats(&ms)
		before := ms.Mallocs
		batchStart := time.Now()
		for j := range batch {
			t := time.Now()
			if err := decide(ctx, st.decisions+j); err != nil {
				return st, err
			}
			batch[j] = time.Since(t)
		}
		took := time.Since(batchStart)
		runtime.ReadMemStats(&ms)
		mallocs += ms.Mallocs - before
		st.decisions += n
		st.batches++
		st.elapsed += took
		perOp = append(perOp, float64(took.Nanoseconds())/float64(n))
		for _, l := range batch { // reservoir sampling past the bound
			seen++
			if len(lat) < maxLatencySamples {
				lat = append(lat, l)
			} else if k := rng.IntN(seen); k < maxLatencySamples {
				lat[k] = l
			}
		}
		if took < target && n < maxBatch {
			n *= 2
		}
	}
	st.nsPerOp = median(perOp)
	slices.Sort(lat)
	st.p50, st.p99 = percentile(lat, 0.50), percentile(lat, 0.99) // submit's nearest rank; lat is not empty
	st.allocsPerOp = float64(mallocs) / float64(st.decisions)
	return st, nil
}

// median returns the middle of xs (the mean of the two middle values when
// their number is even), 0 for none; xs is not changed.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}

// benchTime shows a time as dispatch run shows latencies, but to 10ns
// under a millisecond: a decision can take less than a microsecond.
func benchTime(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(10 * time.Nanosecond).String()
	}
	return latency(d)
}

// roundTenth rounds x to one decimal.
func roundTenth(x float64) float64 { return math.Round(x*10) / 10 }
