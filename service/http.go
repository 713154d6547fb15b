package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/node"
	"github.com/aion-dispatch/dispatch/protocol"
)

// MaxBodySize bounds the body of an HTTP dispatch (as NATS's default
// max_payload bounds a NATS one): a larger one is refused with 413.
const MaxBodySize = protocol.MaxBodySize

// Handler returns the HTTP API:
//
//	POST /v1/channels/{ns}/{queue}/dispatch   dispatch one activity (a protocol.Submission) and answer
//	GET  /v1/channels                         every channel: router in service, workers, backlog
//	GET  /v1/channels/{ns}/{queue}            one channel
//	GET  /healthz                             200 while the process serves
//	GET  /readyz                              200 when ready to take dispatches, else 503 and why
//	GET  /metrics                             Prometheus metrics, when Options.Metrics is set
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/channels/{ns}/{queue}/dispatch", s.serveDispatch)
	mux.HandleFunc("GET /v1/channels", s.serveChannels)
	mux.HandleFunc("GET /v1/channels/{ns}/{queue}", s.serveChannel)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	if s.metrics != nil {
		mux.Handle("GET /metrics", s.metrics)
	}
	return mux
}

// NewHTTPServer returns an http.Server for h on addr with the timeouts a
// server facing slow or idle clients needs: a client gets 10 s to send its
// headers and 30 s for its body, and an idle keep-alive connection is
// closed after 2 minutes. Writing is not bounded: a dispatch answers when
// its activity ends, which its own timeouts (or the node's
// DispatchTimeout) bound.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
}

func (s *Service) serveDispatch(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ch, err := engine.DispatchChannel(r.PathValue("ns"), r.PathValue("queue"))
	if err != nil {
		s.writeRefused(w, "http", "", protocol.KindBadRequest, http.StatusBadRequest, err.Error(), start)
		return
	}
	if ct := r.Header.Get("Content-Type"); !acceptedType(ct) {
		s.writeRefused(w, "http", "", protocol.KindBadRequest, http.StatusUnsupportedMediaType,
			fmt.Sprintf("content type %q: send application/json (or %s)", ct, protocol.ContentTypeRequest), start)
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		status := http.StatusBadRequest
		if errors.As(err, &tooLarge) {
			status, err = http.StatusRequestEntityTooLarge, fmt.Errorf("body over the limit of %d bytes", tooLarge.Limit)
		}
		s.writeRefused(w, "http", "", protocol.KindBadRequest, status, err.Error(), start)
		return
	}
	req, err := submission(body, ch)
	if err != nil {
		s.writeRefused(w, "http", "", protocol.KindBadRequest, http.StatusBadRequest, err.Error(), start)
		return
	}
	client, err := clientTimeout(r.Header.Get(protocol.HeaderDispatchTimeout))
	if err != nil {
		s.writeRefused(w, "http", "", protocol.KindBadRequest, http.StatusBadRequest, err.Error(), start)
		return
	}
	if !s.admit(false) {
		s.writeRefused(w, "http", s.label(ch), protocol.KindDraining, http.StatusServiceUnavailable,
			"the node is draining and takes no new dispatch; send it to another node", start)
		return
	}
	defer s.done()
	a := s.dispatch(r.Context(), "http", ch, req, client)
	writeJSON(w, HTTPStatus(a), a)
}

// submission reads a dispatch's body as an activity request on ch; a
// channel named in the body must be ch.
func submission(body []byte, ch engine.ChannelName) (engine.ActivityRequest, error) {
	sub, err := protocol.ParseSubmission(body)
	if err != nil {
		return engine.ActivityRequest{}, err
	}
	if sub.Channel != "" {
		named, err := config.ParseChannelFlag(sub.Channel)
		if err != nil {
			return engine.ActivityRequest{}, err
		}
		if named != ch {
			return engine.ActivityRequest{}, fmt.Errorf("channel %q in the body is not %s, which the request is sent to", sub.Channel, ch.Short())
		}
	}
	return sub.Request(ch)
}

// acceptedType reports whether a dispatch's content type is JSON: none,
// application/json or the request content type.
func acceptedType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || mt == protocol.ContentTypeRequest)
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodySize)
	return io.ReadAll(r.Body)
}

// writeRefused answers a dispatch that was not taken, and counts it.
func (s *Service) writeRefused(w http.ResponseWriter, transport, channel, kind string, status int, msg string, start time.Time) {
	if s.obs != nil {
		s.obs.ObserveDispatch(transport, channel, kind, time.Since(start))
	}
	s.log.Info("dispatch refused", "transport", transport, "channel", channel, "kind", kind, "error", msg)
	writeJSON(w, status, refused(kind, msg))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"status":"failed","kind":"internal","error":"the answer could not be encoded"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// marshal encodes v as one JSON line, leaving <, > and & as they are (an
// answer is not HTML, and escaping them would make an output six times
// larger).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// channelView is a channel in GET /v1/channels.
type channelView struct {
	Channel      string       `json:"channel"`
	Subject      string       `json:"subject"`
	Router       routerView   `json:"router"`
	Workers      []workerView `json:"workers"`
	Backlog      int          `json:"backlog"`
	MaxBacklog   int          `json:"max_backlog"`
	WhenFull     string       `json:"when_full"`
	RouterLoaded time.Time    `json:"router_loaded"`
}

type routerView struct {
	Lang   string `json:"lang"`
	Hash   string `json:"hash,omitempty"`
	Source string `json:"source,omitempty"`
}

type workerView struct {
	ID          string   `json:"id"`
	InFlight    int      `json:"in_flight"`
	MaxInFlight int      `json:"max_in_flight"`
	BufferDepth int      `json:"buffer_depth"`
	Tags        []string `json:"tags"`
	// Labels are left out when the worker has none.
	Labels map[string]string `json:"labels,omitempty"`
	// What the channel observed of the worker, as its routers see it now
	// (0 before anything was).
	LatencyEWMA     float64 `json:"latency_ewma"`
	LatencyPeakEWMA float64 `json:"latency_peak_ewma"`
	ErrorRate       float64 `json:"error_rate"`
	Exits           int     `json:"exits"`
}

func viewOf(c node.ChannelInfo) channelView {
	v := channelView{Channel: c.Channel.Short(), Subject: c.Channel.String(),
		Router:  routerView{Lang: c.Router.Lang, Hash: c.Router.Hash, Source: c.Router.Source},
		Workers: []workerView{}, Backlog: c.Backlog, MaxBacklog: c.Policy.MaxBacklog, WhenFull: "wait",
		RouterLoaded: c.RouterLoaded.UTC()}
	if v.MaxBacklog == 0 {
		v.MaxBacklog = engine.DefaultMaxBacklog
	}
	if c.Policy.FailWhenFull {
		v.WhenFull = "fail"
	}
	for _, w := range c.Workers {
		tags := w.Tags
		if tags == nil {
			tags = []string{}
		}
		v.Workers = append(v.Workers, workerView{ID: w.ID, InFlight: w.InFlight, MaxInFlight: w.MaxInFlight,
			BufferDepth: w.BufferDepth, Tags: tags, Labels: w.Labels, LatencyEWMA: w.LatencyEWMA, LatencyPeakEWMA: w.LatencyPeakEWMA,
			ErrorRate: w.ErrorRate, Exits: w.Exits})
	}
	return v
}

func (s *Service) serveChannels(w http.ResponseWriter, r *http.Request) {
	out := []channelView{}
	for _, c := range s.node.Channels(r.Context()) {
		out = append(out, viewOf(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"channels": out})
}

func (s *Service) serveChannel(w http.ResponseWriter, r *http.Request) {
	ch, err := engine.DispatchChannel(r.PathValue("ns"), r.PathValue("queue"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	c, ok := s.node.Channel(r.Context(), ch)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no channel " + ch.Short() + " in the config in service"})
		return
	}
	writeJSON(w, http.StatusOK, viewOf(c))
}

func (s *Service) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var why error
	if s.Draining() {
		why = errors.New("draining")
	} else if s.ready != nil {
		why = s.ready()
	}
	if why != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", why)
		return
	}
	fmt.Fprintln(w, "ready")
}
