package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
	"github.com/aion-dispatch/dispatch/service"
	"github.com/aion-dispatch/dispatch/worker"
)

// The front door's benchmark: four workers of 64 slots each answering at
// once, so that no concurrency measured waits for a slot.
const (
	benchWorkers = 4
	benchSlots   = 64
	// benchGuard bounds one NATS request; it only guards a hang.
	benchGuard = time.Minute
)

var benchConcurrency = []int{1, 64, 256}

// benchOutput is the echo activity's input, compacted, which its worker
// answers with.
var benchOutput = []byte(`{"n":1}`)

// benchConfig has two channels routed least-loaded: prod/bench with
// benchWorkers simulated workers answering at once (no behavior), and
// prod/remote with none, for workers of the worker library.
//
// script_timeout is 1s, not the default 50ms: the deadline is wall-clock
// time from when the call borrows a Lua state, and with 64 or 256
// dispatchers in process on 2 cores a call that is descheduled waits
// behind the other runnable goroutines (dispatches there take up to ~70
// ms at c=256), so about one dispatch in a million failed with a script
// timeout although the script runs for microseconds. The call costs the
// same either way: the clock is read every 256 instructions.
func benchConfig() string {
	var ws []string
	for i := range benchWorkers {
		ws = append(ws, fmt.Sprintf("{id: w%d, max_in_flight: %d}", i, benchSlots))
	}
	return "version: 1\nchannels:\n" +
		"  - {namespace: prod, task_queue: bench, routing: " + leastLoaded + ", script_timeout: 1s, workers: [" + strings.Join(ws, ", ") + "]}\n" +
		"  - {namespace: prod, task_queue: remote, routing: " + leastLoaded + ", script_timeout: 1s, workers: []}\n"
}

// frontDoor is one way into the node; send returns a function for one
// dispatching goroutine, which dispatches the echo activity as workflow
// wf-N on the queue and checks its answer.
type frontDoor struct {
	name string
	send func(queue string) func(n int64) error
}

// BenchmarkFrontDoor dispatches an echo activity (`{"n": 1}`) through one
// node at concurrency 1, 64 and 256, c dispatchers each dispatching again
// as soon as it is answered, side by side:
//
//   - transport=inprocess: node.DispatchOutcome called directly, the floor;
//   - transport=http: POST /v1/channels/prod/bench/dispatch to the
//     service's handler, served by service.NewHTTPServer on 127.0.0.1,
//     from one keep-alive http.Client;
//   - transport=nats: requests on aion.dispatch.prod.bench from one client
//     connection to the embedded broker on 127.0.0.1, which the service
//     takes in its queue group and answers.
//
// The workers are the node's simulated ones (prod/bench), answering at
// once; under worker=remote, four workers of the worker library instead
// (prod/remote), each on its own connection to the broker, answering at
// once. Every answer is checked: completed, with the input as its output.
// Everything (client, service, node, workers and broker) runs in this
// process, so B/op and allocs/op count all of it. Reported: p50 and p99 of
// one dispatch as its dispatcher sees it, and dispatches/s.
func BenchmarkFrontDoor(b *testing.B) {
	brk := startBroker(b)
	d := startNode(b, benchConfig(), brk, service.Options{})
	doors := []frontDoor{
		{"inprocess", inprocessDoor(d)},
		{"http", httpDoor(b, d)},
		{"nats", natsDoor(connect(b, brk))},
	}
	for _, door := range doors {
		b.Run("transport="+door.name, func(b *testing.B) { benchDispatches(b, door, "bench") })
	}

	ids := make([]string, benchWorkers)
	for i := range ids {
		ids[i] = "r" + strconv.Itoa(i)
		runWorker(b, brk, worker.Options{ID: ids[i], Channels: []string{"prod/remote"}, MaxInFlight: benchSlots},
			func(_ context.Context, req engine.ActivityRequest) (engine.ActivityResult, error) {
				return engine.Completed(req.Input), nil
			})
	}
	remote, _ := engine.DispatchChannel("prod", "remote")
	waitFor(b, "the remote workers to register", func() bool {
		info, ok := d.node.Channel(context.Background(), remote)
		return ok && len(info.Workers) == benchWorkers
	})
	for _, door := range doors {
		b.Run("worker=remote/transport="+door.name, func(b *testing.B) { benchDispatches(b, door, "remote") })
	}
}

// benchDispatches runs b.N dispatches at each concurrency, a sub-benchmark
// each. A dispatcher that meets an error stops, and the benchmark fails
// with it.
func benchDispatches(b *testing.B, door frontDoor, queue string) {
	for _, c := range benchConcurrency {
		b.Run("c="+strconv.Itoa(c), func(b *testing.B) {
			senders := make([]func(int64) error, c)
			for g := range senders {
				senders[g] = door.send(queue)
			}
			lat := make([]time.Duration, b.N) // by dispatch: no appends timed
			var next atomic.Int64
			var stop atomic.Bool
			var errMu sync.Mutex
			var errs []error
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			for _, send := range senders {
				wg.Go(func() {
					for !stop.Load() {
						n := next.Add(1)
						if n > int64(b.N) {
							return
						}
						t0 := time.Now()
						err := send(n)
						lat[n-1] = time.Since(t0)
						if err != nil {
							stop.Store(true)
							errMu.Lock()
							errs = append(errs, fmt.Errorf("wf-%d: %w", n, err))
							errMu.Unlock()
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if len(errs) > 0 {
				b.Fatalf("%d dispatchers failed; the first: %v", len(errs), errs[0])
			}
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "dispatches/s")
			b.ReportMetric(quantileMicros(lat, 0.50), "p50-µs")
			b.ReportMetric(quantileMicros(lat, 0.99), "p99-µs")
		})
	}
}

// quantileMicros is the q-quantile of sorted, in microseconds.
func quantileMicros(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[min(int(q*float64(len(sorted))), len(sorted)-1)].Nanoseconds()) / 1e3
}

// inprocessDoor calls the node directly, as the service does once it has
// read a request.
func inprocessDoor(d *dispatchNode) func(string) func(int64) error {
	return func(queue string) func(int64) error {
		return func(n int64) error {
			req := engine.ActivityRequest{WorkflowID: "wf-" + strconv.FormatInt(n, 10), ActivityType: "echo", TaskQueue: queue,
				Input: engine.Payload{ContentType: "application/json", Data: benchOutput}}
			out, err := d.node.DispatchOutcome(context.Background(), "prod", req)
			if err != nil {
				return err
			}
			switch o := out.Result.Output; {
			case out.Result.Status != engine.StatusCompleted:
				return fmt.Errorf("result %v: %s", out.Result.Status, out.Result.Error)
			case !bytes.Equal(o.Data, benchOutput) || o.ContentType != "application/json":
				return fmt.Errorf("output %s (%s), want %s (application/json)", o.Data, o.ContentType, benchOutput)
			case out.WorkerID == "":
				return errors.New("no worker id in the outcome")
			}
			return nil
		}
	}
}

// httpDoor posts to the service's handler, served as `dispatch serve`
// serves it (service.NewHTTPServer) on 127.0.0.1, from one client keeping
// a connection alive for every dispatcher.
func httpDoor(b *testing.B, d *dispatchNode) func(string) func(int64) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := service.NewHTTPServer(ln.Addr().String(), d.svc.Handler())
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	tr := &http.Transport{MaxIdleConnsPerHost: slices.Max(benchConcurrency), DisableCompression: true}
	client := &http.Client{Transport: tr}
	b.Cleanup(func() {
		tr.CloseIdleConnections()
		_ = hs.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			b.Error(err)
		}
	})
	base := "http://" + ln.Addr().String() + "/v1/channels/prod/"
	return func(queue string) func(int64) error {
		url := base + queue + "/dispatch"
		var body []byte
		return func(n int64) error {
			body = submissionBody(body[:0], n)
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", protocol.ContentTypeRequest)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			data, err := io.ReadAll(resp.Body) // all of it, so that the connection is kept
			resp.Body.Close()
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %s: %s", resp.Status, data)
			}
			var a protocol.Answer
			if err := json.Unmarshal(data, &a); err != nil {
				return fmt.Errorf("answer %q: %w", data, err)
			}
			return checkAnswer(a)
		}
	}
}

// natsDoor sends requests on the channel's subject from nc, one client
// connection for every dispatcher.
func natsDoor(nc *nats.Conn) func(string) func(int64) error {
	return func(queue string) func(int64) error {
		subject := "aion.dispatch.prod." + queue
		var body []byte
		return func(n int64) error {
			body = submissionBody(body[:0], n) // the request is written out before RequestMsg returns
			msg := nats.NewMsg(subject)
			msg.Header.Set(protocol.HeaderContentType, protocol.ContentTypeRequest)
			msg.Data = body
			resp, err := nc.RequestMsg(msg, benchGuard)
			if err != nil {
				return err
			}
			if ct := protocol.ContentTypeOf(resp); ct != protocol.ContentTypeResponse {
				return fmt.Errorf("reply's content type %q", ct)
			}
			var a protocol.Answer
			if err := json.Unmarshal(resp.Data, &a); err != nil {
				return fmt.Errorf("answer %q: %w", resp.Data, err)
			}
			return checkAnswer(a)
		}
	}
}

// submissionBody appends the echo activity's submission for wf-n to buf.
func submissionBody(buf []byte, n int64) []byte {
	buf = append(buf, `{"workflow_id": "wf-`...)
	buf = strconv.AppendInt(buf, n, 10)
	return append(buf, `", "activity_type": "echo", "input": {"n": 1}}`...)
}

// checkAnswer reports what is wrong with an answer to the echo activity.
func checkAnswer(a protocol.Answer) error {
	switch {
	case a.Status != protocol.StatusCompleted:
		return fmt.Errorf("answer %s (%s): %s", a.Status, a.Kind, a.Error)
	case !bytes.Equal(a.Output, benchOutput) || a.ContentType != "application/json":
		return fmt.Errorf("output %s (%s), want %s (application/json)", a.Output, a.ContentType, benchOutput)
	case a.WorkerID == "":
		return errors.New("no worker id in the answer")
	}
	return nil
}
