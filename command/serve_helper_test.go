//go:build linux

package command_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// serveHelper is a JSON-lines program whose every activity's input is an
// order saying what to do (see the cases of do), for the server's tests.
//
// COMMAND_TEST_SERVE_EOF=ignore makes it carry on at EOF (rather than
// answer what it holds, failed, and exit), and COMMAND_TEST_SERVE_TERM=ignore
// makes it ignore SIGTERM.
func serveHelper() int {
	if os.Getenv("COMMAND_TEST_SERVE_TERM") == "ignore" {
		signal.Ignore(syscall.SIGTERM)
	}
	h := &serving{held: map[string]string{}, cond: sync.NewCond(new(sync.Mutex))}
	h.cond.L = &h.mu
	ready(os.Getpid())
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 64<<20)
	var wg sync.WaitGroup
	for in.Scan() {
		var req map[string]any
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fmt.Fprintln(os.Stderr, "bad request line:", err)
			return 1
		}
		id, _ := req["id"].(string)
		if req["type"] == "cancel" {
			h.mu.Lock()
			tag, ok := h.held[id]
			if ok {
				delete(h.held, id)
				h.cancelled = append(h.cancelled, tag)
			} else {
				h.cancelled = append(h.cancelled, "id "+id)
			}
			h.mu.Unlock()
			continue
		}
		line := append([]byte(nil), in.Bytes()...) // in.Bytes is overwritten by the next Scan
		wg.Add(1)
		go func() { defer wg.Done(); h.do(id, req, line) }()
	}
	if os.Getenv("COMMAND_TEST_SERVE_EOF") == "ignore" {
		forever()
	}
	h.mu.Lock()
	for id := range h.held {
		h.reply(map[string]any{"id": id, "status": "failed", "error": "end of input"})
	}
	h.held = map[string]string{}
	h.cond.Broadcast()
	h.mu.Unlock()
	wg.Wait()
	return 0
}

type serving struct {
	out       sync.Mutex // one line at a time on stdout
	mu        sync.Mutex
	cond      *sync.Cond        // broadcast when held changes
	held      map[string]string // id → tag of the activities held
	cancelled []string          // tags (or "id N") of the cancel lines read
}

// reply writes one line; mu may be held.
func (h *serving) reply(v any) {
	b, _ := json.Marshal(v)
	h.write(string(b))
}

func (h *serving) write(line string) {
	h.out.Lock()
	defer h.out.Unlock()
	fmt.Println(line)
}

func (h *serving) do(id string, req map[string]any, line []byte) {
	order, _ := req["input"].(map[string]any)
	done := func(output any) { h.reply(map[string]any{"id": id, "status": "completed", "output": output}) }
	switch {
	case order["echo"] != nil:
		done(order["echo"])
	case order["request"] != nil: // the request line itself
		done(json.RawMessage(line))
	case req["input_base64"] != nil:
		h.reply(map[string]any{"id": id, "status": "completed", "output_base64": req["input_base64"], "content_type": req["content_type"]})
	case order["fail"] != nil:
		h.reply(map[string]any{"id": id, "status": "failed", "error": order["fail"]})
	case order["crash"] != nil:
		fmt.Fprintln(os.Stderr, order["crash"])
		os.Exit(3)
	case order["raw"] != nil: // write lines as they are, then answer
		for _, l := range order["raw"].([]any) {
			h.write(fmt.Sprint(l))
		}
		done("after raw")
	case order["self"] != nil: // a line for this id, with the order's fields
		m := order["self"].(map[string]any)
		m["id"] = id
		h.reply(m)
	case order["twice"] != nil:
		done("first")
		done("second")
	case order["close_stdout"] != nil:
		h.out.Lock()
		_ = os.Stdout.Close()
		forever()
	case order["hold"] != nil:
		h.mu.Lock()
		h.held[id] = order["hold"].(string)
		h.cond.Broadcast()
		h.mu.Unlock()
		ready(os.Getpid()) // tells a test that it holds the activity
	case order["wait_held"] != nil:
		tag := order["wait_held"].(string)
		h.mu.Lock()
		for !h.holds(tag) {
			h.cond.Wait()
		}
		h.mu.Unlock()
		done("held")
	case order["release"] != nil:
		tag := order["release"].(string)
		h.mu.Lock()
		for hid, t := range h.held {
			if t == tag {
				delete(h.held, hid)
				h.reply(map[string]any{"id": hid, "status": "completed", "output": "released " + tag})
			}
		}
		h.mu.Unlock()
		done("released")
	case order["cancels"] != nil:
		h.mu.Lock()
		c := append([]string{}, h.cancelled...)
		h.mu.Unlock()
		done(c)
	default:
		h.reply(map[string]any{"id": id, "status": "failed", "error": "unknown order"})
	}
}

func (h *serving) holds(tag string) bool {
	for _, t := range h.held {
		if t == tag {
			return true
		}
	}
	return false
}
