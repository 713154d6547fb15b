package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/aion-dispatch/dispatch/broker"
	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
)

const submitUsage = `Usage: dispatch submit --channel NS/QUEUE [--nats URL | --http URL] --input JSON
                       [--activity-type T] [--workflow-id ID] [--content-type CT]
                       [--start-to-close D] [--schedule-to-close D] [--schedule-to-start D]
                       [--count N [--concurrency C]] [--timeout D] [--json]

Sends activities to a running "dispatch serve", as a workflow engine would:
one, to try a node and its channel, or a load of them, to see how it holds.
Each is a submission (as "dispatch serve --help" shows) sent over NATS
request-reply on the channel's subject, aion.dispatch.NS.QUEUE, or over
HTTP to POST /v1/channels/NS/QUEUE/dispatch, and is answered when its
activity ends.

One activity: a completed one prints its output on stdout (JSON as it is,
text as text); a failed one prints "dispatch submit: KIND: ERROR" on stderr,
KIND being why (activity_failed, no_workers, backlog_full, timeout,
unknown_channel, bad_request, draining, routing_failed, internal).

A load (--count N, N > 1): N activities, C at a time, then a summary: how
many were sent, completed and failed (by kind), the transport errors (no
answer at all), the time taken, the answers per second, and the latency of
the answers (p50, p90, p99, max), measured here, from request to answer.

Flags:
  --channel NS/QUEUE      the channel (or its subject, aion.dispatch.NS.QUEUE)
  --nats URL              the NATS server the node takes activities on
                          (default nats://127.0.0.1:4222, the server "dispatch serve" embeds)
  --http URL              send over HTTP to the node at URL instead, as http://127.0.0.1:8080
  --input JSON            the input: a JSON value, sent as application/json, or a JSON
                          string, sent as its text ('"hello"'); @FILE reads it from a file,
                          - from standard input; null sends none
  --activity-type T       the activity type (default: the channel's task queue)
  --workflow-id ID        the workflow id of every activity (default: submit-HEX, and
                          submit-HEX-I for the I-th of a load)
  --content-type CT       the input's content type, instead of the one its JSON implies
  --start-to-close D      the activity's start-to-close timeout, as 2s (default none)
  --schedule-to-close D   its schedule-to-close timeout (default none: the node bounds it)
  --schedule-to-start D   how long it may wait in the channel's backlog (default none)
  --count N               how many activities to send (default 1)
  --concurrency C         how many of them are in flight at once (default 1)
  --timeout D             how long the node may take over each activity (default 30s):
                          it is sent as the Dispatch-Timeout header, and the node answers
                          "timeout" when it runs out (the activity may still run on its
                          worker); submit waits 250ms more for that answer before it
                          gives up on its own
  --json                  print the answer (one activity) or the summary (a load) as one
                          JSON object: {"status", "kind", "error", "output", ...} or
                          {"sent", "completed", "failed", "failed_by_kind", "transport_errors",
                          "elapsed_seconds", "dispatches_per_second", "latency_seconds": {"p50",
                          "p90", "p99", "max"}, ...}

Exit codes: 0 every activity completed; 1 one failed, or got no answer
(no NATS server or HTTP listener at the URL, no serve node subscribed to
the channel's subject, no answer within --timeout); 2 a bad command line.

Examples:
  dispatch submit --channel prod/upper --input '"hello"'
  dispatch submit --channel prod/email --input @mail.json --start-to-close 5s --json
  dispatch submit --channel prod/email --http http://127.0.0.1:8080 --input '{"to": "a@example.com"}'
  dispatch submit --channel prod/email --input '{"to": "a@example.com"}' --count 10000 --concurrency 64
`

// defaultNATSURL is the embedded server of `dispatch serve`, as a URL.
const defaultNATSURL = "nats://" + broker.DefaultAddr

// maxAnswerBytes bounds an HTTP answer the client reads.
const maxAnswerBytes = 64 << 20

// submitOptions are the flags of dispatch submit.
type submitOptions struct {
	channel         string
	natsURL         string
	httpURL         string
	input           string
	activityType    string
	workflowID      string
	contentType     string
	startToClose    time.Duration
	scheduleToClose time.Duration
	scheduleToStart time.Duration
	count           int
	concurrency     int
	timeout         time.Duration
	json            bool
}

func runSubmit(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("submit", submitUsage, stderr)
	var o submitOptions
	fs.StringVar(&o.channel, "channel", "", "")
	fs.StringVar(&o.natsURL, "nats", defaultNATSURL, "")
	fs.StringVar(&o.httpURL, "http", "", "")
	fs.StringVar(&o.input, "input", "", "")
	fs.StringVar(&o.activityType, "activity-type", "", "")
	fs.StringVar(&o.workflowID, "workflow-id", "", "")
	fs.StringVar(&o.contentType, "content-type", "", "")
	fs.DurationVar(&o.startToClose, "start-to-close", 0, "")
	fs.DurationVar(&o.scheduleToClose, "schedule-to-close", 0, "")
	fs.DurationVar(&o.scheduleToStart, "schedule-to-start", 0, "")
	fs.IntVar(&o.count, "count", 1, "")
	fs.IntVar(&o.concurrency, "concurrency", 1, "")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "")
	fs.BoolVar(&o.json, "json", false, "")
	if code := parseFlags(fs, submitUsage, args, stdout); code >= 0 {
		return code
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "dispatch submit: "+format+"\n", a...)
		fmt.Fprintln(stderr, `run "dispatch submit --help" for usage`)
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case o.channel == "":
		return usage("--channel NS/QUEUE is required")
	case set["nats"] && set["http"]:
		return usage("--nats and --http: give one (the default is NATS at %s)", defaultNATSURL)
	case !set["input"]:
		return usage(`--input is required: a JSON value, @FILE or - (null for none; a text is a JSON string, '"hello"')`)
	case o.count < 1:
		return usage("--count %d: want 1 or more", o.count)
	case o.concurrency < 1:
		return usage("--concurrency %d: want 1 or more", o.concurrency)
	case o.timeout <= 0:
		return usage("--timeout %s: want a positive duration", o.timeout)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"start-to-close", o.startToClose}, {"schedule-to-close", o.scheduleToClose}, {"schedule-to-start", o.scheduleToStart}} {
		if d.v < 0 {
			return usage("--%s %s: want a positive duration", d.name, d.v)
		}
	}
	ch, err := config.ParseChannelFlag(o.channel)
	if err != nil {
		return usage("--channel: %v", err)
	}
	input, err := readArg(o.input, stdin)
	if err != nil {
		return usage("--input: %v", err)
	}
	input = bytes.TrimSpace(input)
	if !json.Valid(input) {
		return usage(`--input: not a JSON value; give a text as a JSON string, as '"hello"', or a file with @FILE`)
	}
	sub := protocol.Submission{ActivityType: o.activityType, Input: input, ContentType: o.contentType}
	if sub.ActivityType == "" {
		sub.ActivityType = ch.TaskQueue()
	}
	for _, d := range []struct {
		v  time.Duration
		to *string
	}{{o.startToClose, &sub.StartToClose}, {o.scheduleToClose, &sub.ScheduleToClose}, {o.scheduleToStart, &sub.ScheduleToStart}} {
		if d.v > 0 {
			*d.to = d.v.String()
		}
	}
	run, err := randomHex()
	if err != nil {
		fmt.Fprintf(stderr, "dispatch submit: %v\n", err)
		return exitError
	}
	b := &bodies{sub: sub, fixed: o.workflowID, run: run, count: o.count}
	// Checked here as the node would, so that a mistake is a usage error
	// rather than N bad_request answers.
	first, err := b.body(0)
	if err != nil {
		return usage("%v", err)
	}
	check, err := protocol.ParseSubmission(first)
	if err == nil {
		_, err = check.Request(ch)
	}
	if err != nil {
		return usage("%v", err)
	}

	var s sender
	if o.httpURL != "" {
		s, err = newHTTPSender(o.httpURL, ch, o.timeout, min(o.concurrency, o.count))
		if err != nil {
			return usage("--http: %v", err)
		}
	} else if s, err = dialNATS(o.natsURL, ch, o.timeout); err != nil {
		fmt.Fprintf(stderr, "dispatch submit: %v\n", err)
		return exitError
	}
	defer s.close()
	if o.count == 1 {
		return submitOne(s, first, o.json, stdout, stderr)
	}
	sum := submitLoad(s, b, min(o.concurrency, o.count))
	sum.Channel = ch.Short()
	if o.json {
		out, _ := json.Marshal(sum) // a summary always marshals
		fmt.Fprintf(stdout, "%s\n", out)
	} else {
		sum.print(stdout)
	}
	if sum.Completed != sum.Sent {
		return exitError
	}
	return exitOK
}

// bodies makes the body of each activity of a run: the same submission,
// with its own workflow id unless one was given.
type bodies struct {
	sub   protocol.Submission
	fixed string // --workflow-id
	run   string // random hex naming the run
	count int
}

// body returns the i-th activity's body (i from 0).
func (b *bodies) body(i int) ([]byte, error) {
	sub := b.sub
	switch {
	case b.fixed != "":
		sub.WorkflowID = b.fixed
	case b.count == 1:
		sub.WorkflowID = "submit-" + b.run
	default:
		sub.WorkflowID = "submit-" + b.run + "-" + strconv.Itoa(i+1)
	}
	body, err := json.Marshal(sub)
	if err != nil {
		return nil, fmt.Errorf("encode the submission: %w", err)
	}
	return body, nil
}

// randomHex returns 8 random hex digits.
func randomHex() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random workflow id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// sender sends one submission to a node and returns its answer, or why
// there is none (a transport error). Its send is safe for concurrent use.
type sender interface {
	send(body []byte) (protocol.Answer, error)
	// url is where it sends, for the summary.
	url() string
	close()
}

// natsSender sends over NATS request-reply on the channel's subject.
type natsSender struct {
	nc      *nats.Conn
	addr    string
	subject string
	timeout time.Duration
}

func dialNATS(addr string, ch engine.ChannelName, timeout time.Duration) (*natsSender, error) {
	nc, err := nats.Connect(addr, nats.Name("dispatch submit"))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %v; check that dispatch serve runs and that its NATS server listens there "+
			"(it embeds one on %s unless --nats-listen or --nats), or give --http URL", addr, err, broker.DefaultAddr)
	}
	return &natsSender{nc: nc, addr: addr, subject: ch.String(), timeout: timeout}, nil
}

func (s *natsSender) url() string { return s.addr }

func (s *natsSender) close() { s.nc.Close() }

func (s *natsSender) send(body []byte) (protocol.Answer, error) {
	msg := nats.NewMsg(s.subject)
	msg.Header.Set(protocol.HeaderContentType, protocol.ContentTypeRequest)
	msg.Header.Set(protocol.HeaderDispatchTimeout, s.timeout.String())
	msg.Data = body
	resp, err := s.nc.RequestMsg(msg, s.timeout+answerGrace)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return protocol.Answer{}, fmt.Errorf("no dispatch serve node answers %s on NATS at %s: check that one runs and is connected to this server", s.subject, s.addr)
	case errors.Is(err, nats.ErrTimeout):
		return protocol.Answer{}, fmt.Errorf("no answer on %s from NATS at %s within %s (--timeout) and %s; the activity may still be running", s.subject, s.addr, s.timeout, answerGrace)
	case err != nil:
		return protocol.Answer{}, fmt.Errorf("request on %s to NATS at %s: %v", s.subject, s.addr, err)
	}
	if ct := protocol.ContentTypeOf(resp); !isMediaType(ct, protocol.ContentTypeResponse) {
		return protocol.Answer{}, fmt.Errorf("the reply on %s from NATS at %s is not a dispatch answer (content type %q): %s", s.subject, s.addr, ct, snippet(resp.Data))
	}
	a, err := decodeAnswer(resp.Data)
	if err != nil {
		return protocol.Answer{}, fmt.Errorf("the reply on %s from NATS at %s: %w", s.subject, s.addr, err)
	}
	return a, nil
}

// answerGrace is how much longer than --timeout submit waits for an answer:
// the node is told --timeout (Dispatch-Timeout) and answers "timeout" when
// it runs out, an answer that says more than a client giving up (which
// worker had the activity); the grace lets it arrive. A client that gave
// up at the same instant would race the node's answer.
const answerGrace = 250 * time.Millisecond

// httpSender posts to the channel's dispatch endpoint.
type httpSender struct {
	client   *http.Client
	endpoint string
	timeout  time.Duration
}

func newHTTPSender(base string, ch engine.ChannelName, timeout time.Duration, concurrency int) (*httpSender, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q: want the node's address as http://HOST:PORT", base)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = concurrency
	tr.MaxIdleConns = max(tr.MaxIdleConns, concurrency)
	endpoint := strings.TrimSuffix(u.String(), "/") + "/v1/channels/" + url.PathEscape(ch.Namespace()) + "/" + url.PathEscape(ch.TaskQueue()) + "/dispatch"
	return &httpSender{client: &http.Client{Transport: tr, Timeout: timeout + answerGrace}, endpoint: endpoint, timeout: timeout}, nil
}

func (s *httpSender) url() string { return s.endpoint }

func (s *httpSender) close() { s.client.CloseIdleConnections() }

func (s *httpSender) send(body []byte) (protocol.Answer, error) {
	req, err := http.NewRequest(http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return protocol.Answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(protocol.HeaderDispatchTimeout, s.timeout.String())
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			if ue.Timeout() {
				return protocol.Answer{}, fmt.Errorf("no answer from %s within %s (--timeout) and %s; the activity may still be running", s.endpoint, s.timeout, answerGrace)
			}
			err = ue.Err
		}
		return protocol.Answer{}, fmt.Errorf("POST %s: %v; check that dispatch serve runs and serves HTTP at that address (its --http)", s.endpoint, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	switch {
	case err != nil:
		return protocol.Answer{}, fmt.Errorf("POST %s: HTTP %s: read the answer: %v", s.endpoint, resp.Status, err)
	case len(data) > maxAnswerBytes:
		return protocol.Answer{}, fmt.Errorf("POST %s: HTTP %s: the answer is over the limit of %d bytes", s.endpoint, resp.Status, maxAnswerBytes)
	}
	if ct := resp.Header.Get("Content-Type"); !isMediaType(ct, "application/json") {
		return protocol.Answer{}, fmt.Errorf("POST %s: HTTP %s, not a dispatch answer (content type %q): %s", s.endpoint, resp.Status, ct, snippet(data))
	}
	a, err := decodeAnswer(data)
	if err != nil {
		return protocol.Answer{}, fmt.Errorf("POST %s: HTTP %s: %w", s.endpoint, resp.Status, err)
	}
	return a, nil
}

// decodeAnswer reads an answer, leniently (a newer node may add fields),
// but it must say completed or failed.
func decodeAnswer(data []byte) (protocol.Answer, error) {
	var a protocol.Answer
	if err := json.Unmarshal(data, &a); err != nil {
		return protocol.Answer{}, fmt.Errorf("not a dispatch answer: %v: %s", err, snippet(data))
	}
	if a.Status != protocol.StatusCompleted && a.Status != protocol.StatusFailed {
		return protocol.Answer{}, fmt.Errorf("not a dispatch answer: status %q: %s", a.Status, snippet(data))
	}
	return a, nil
}

// isMediaType reports whether content type ct is media type want.
func isMediaType(ct, want string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == want
}

// snippet quotes the start of a body for an error message.
func snippet(data []byte) string {
	const n = 200
	if len(data) > n {
		return strconv.Quote(string(data[:n])) + "…"
	}
	return strconv.Quote(string(data))
}

// submitOne sends one activity and prints its answer.
func submitOne(s sender, body []byte, asJSON bool, stdout, stderr io.Writer) int {
	a, err := s.send(body)
	if err != nil {
		fmt.Fprintf(stderr, "dispatch submit: %v\n", err)
		return exitError
	}
	code := exitOK
	if a.Status != protocol.StatusCompleted {
		code = exitError
	}
	if asJSON {
		out, _ := json.Marshal(a) // an answer always marshals
		fmt.Fprintf(stdout, "%s\n", out)
		return code
	}
	if code != exitOK {
		fmt.Fprintf(stderr, "dispatch submit: %s: %s\n", a.Kind, a.Error)
		return code
	}
	p, err := a.Payload()
	if err != nil {
		fmt.Fprintf(stderr, "dispatch submit: the activity completed, but its answer cannot be read: %v\n", err)
		return exitError
	}
	stdout.Write(p.Data)
	if a.OutputBase64 == "" && len(p.Data) > 0 && p.Data[len(p.Data)-1] != '\n' {
		fmt.Fprintln(stdout) // text and JSON end their line; binary data is left as it is
	}
	return exitOK
}

// loadSummary is what a load of activities came to.
type loadSummary struct {
	Channel         string         `json:"channel"`
	URL             string         `json:"url"`
	Concurrency     int            `json:"concurrency"`
	Sent            int            `json:"sent"`
	Completed       int            `json:"completed"`
	Failed          int            `json:"failed"`
	FailedByKind    map[string]int `json:"failed_by_kind"`
	TransportErrors int            `json:"transport_errors"`
	// FirstTransportError is the first transport error's message, when
	// there was one.
	FirstTransportError string  `json:"first_transport_error,omitempty"`
	ElapsedSeconds      float64 `json:"elapsed_seconds"`
	// DispatchesPerSecond is answers (completed or failed) per second.
	DispatchesPerSecond float64 `json:"dispatches_per_second"`
	// Latency is of the answers, from request to answer; absent when
	// none came.
	Latency *latencyFigures `json:"latency_seconds,omitempty"`

	elapsed time.Duration
	lat     [4]time.Duration // p50, p90, p99, max
}

// latencyFigures are the latency figures of a summary, in seconds.
type latencyFigures struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// submitLoad sends b.count activities, at most concurrency at once, and
// sums up what came of them.
func submitLoad(s sender, b *bodies, concurrency int) *loadSummary {
	type result struct {
		a    protocol.Answer
		err  error
		took time.Duration
	}
	results := make([]result, b.count)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.count {
					return
				}
				body, err := b.body(i)
				if err != nil {
					results[i] = result{err: err}
					continue
				}
				t0 := time.Now()
				a, err := s.send(body)
				results[i] = result{a: a, err: err, took: time.Since(t0)}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	sum := &loadSummary{URL: s.url(), Concurrency: concurrency, Sent: b.count, FailedByKind: map[string]int{}, elapsed: elapsed,
		ElapsedSeconds: elapsed.Seconds()}
	var took []time.Duration
	for _, r := range results {
		switch {
		case r.err != nil:
			if sum.TransportErrors == 0 {
				sum.FirstTransportError = r.err.Error()
			}
			sum.TransportErrors++
			continue
		case r.a.Status == protocol.StatusCompleted:
			sum.Completed++
		default:
			sum.Failed++
			sum.FailedByKind[r.a.Kind]++
		}
		took = append(took, r.took)
	}
	if elapsed > 0 {
		sum.DispatchesPerSecond = float64(len(took)) / elapsed.Seconds()
	}
	if len(took) > 0 {
		slices.Sort(took)
		sum.lat = [4]time.Duration{percentile(took, 0.50), percentile(took, 0.90), percentile(took, 0.99), took[len(took)-1]}
		sum.Latency = &latencyFigures{P50: sum.lat[0].Seconds(), P90: sum.lat[1].Seconds(), P99: sum.lat[2].Seconds(), Max: sum.lat[3].Seconds()}
	}
	return sum
}

// percentile is the nearest-rank p-quantile of sorted, which is not empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// print writes the summary as text.
func (s *loadSummary) print(w io.Writer) {
	fmt.Fprintf(w, "sent %d to %s at %s, %d at a time\n", s.Sent, s.Channel, s.URL, s.Concurrency)
	fmt.Fprintf(w, "completed %d, failed %d", s.Completed, s.Failed)
	if s.Failed > 0 {
		kinds := make([]string, 0, len(s.FailedByKind))
		for k := range s.FailedByKind {
			kinds = append(kinds, k)
		}
		sort.Slice(kinds, func(i, j int) bool { // most first, then by name
			a, b := s.FailedByKind[kinds[i]], s.FailedByKind[kinds[j]]
			return a > b || a == b && kinds[i] < kinds[j]
		})
		for i, k := range kinds {
			kinds[i] = fmt.Sprintf("%s %d", k, s.FailedByKind[k])
		}
		fmt.Fprintf(w, " (%s)", strings.Join(kinds, ", "))
	}
	fmt.Fprintf(w, ", transport errors %d\n", s.TransportErrors)
	if s.FirstTransportError != "" {
		fmt.Fprintf(w, "first transport error: %s\n", s.FirstTransportError)
	}
	fmt.Fprintf(w, "elapsed %s, %.1f dispatches/s\n", s.elapsed.Round(time.Millisecond), s.DispatchesPerSecond)
	if s.Latency != nil {
		fmt.Fprintf(w, "latency p50 %s, p90 %s, p99 %s, max %s\n", roundLatency(s.lat[0]), roundLatency(s.lat[1]),
			roundLatency(s.lat[2]), roundLatency(s.lat[3]))
	}
}

// roundLatency keeps three or so significant digits of d.
func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
