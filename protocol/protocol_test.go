package protocol_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
)

func state(seq uint64, inFlight int) *protocol.State {
	return &protocol.State{Seq: seq, InFlight: inFlight}
}

// samples holds a valid message of every kind.
func samples() []protocol.Message {
	in := engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "send-email", TaskQueue: "email",
		Input:        engine.Payload{ContentType: "application/json", Data: []byte(`{"to":"a@b"}`)},
		StartToClose: 2 * time.Second, ScheduleToClose: 10 * time.Second}
	return []protocol.Message{
		&protocol.Registration{Version: 1, WorkerID: "w-1", Instance: "i1", Channels: []string{"prod/email"}, MaxInFlight: 4,
			Tags: []string{"eu"}, Labels: map[string]string{"region": "eu"}, Connection: &protocol.Connection{ServerID: "NSRV", ClientID: 7}, State: state(0, 0), Heartbeat: "5s"},
		&protocol.Status{Version: 1, WorkerID: "w-1", Instance: "i1", State: state(3, 2)},
		&protocol.Deregistration{Version: 1, WorkerID: "w-1", Instance: "i1", Reason: "draining"},
		&protocol.Hello{Version: 1, NodeID: "n1"},
		&protocol.Request{Version: 1, WorkerID: "w-1", Instance: "i1", ConversationID: "c-1", Attempt: 1, Activity: protocol.ActivityOf(in)},
		&protocol.Ack{Version: 1, WorkerID: "w-1", ConversationID: "c-1", Attempt: 1, Status: protocol.AckRejected, Reason: "full", State: state(4, 4)},
		&protocol.Response{Version: 1, WorkerID: "w-1", ConversationID: "c-1", Attempt: 1,
			Result: protocol.ResultOf(engine.Completed(engine.Payload{ContentType: "text/plain", Data: []byte("ok")})), State: state(5, 0)},
		&protocol.Cancel{Version: 1, WorkerID: "w-1", Instance: "i1", ConversationID: "c-1", Attempt: 1, Reason: "start-to-close timeout"},
	}
}

func fresh(m protocol.Message) protocol.Message {
	return reflect.New(reflect.TypeOf(m).Elem()).Interface().(protocol.Message)
}

func TestRoundTrip(t *testing.T) {
	for _, m := range samples() {
		body, ct, err := protocol.Encode(m)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		got := fresh(m)
		if err := protocol.Decode(ct, body, got); err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%T: decoded %+v, want %+v", m, got, m)
		}
		// Parameters of the media type are allowed.
		if err := protocol.Decode(ct+"; charset=utf-8", body, fresh(m)); err != nil {
			t.Errorf("%T with a charset: %v", m, err)
		}
	}
}

func TestActivityAndResultConvert(t *testing.T) {
	in := engine.ActivityRequest{WorkflowID: "wf", ActivityType: "a", Input: engine.Payload{ContentType: "application/octet-stream", Data: []byte{0, 1, 0xff}},
		ScheduleToStart: time.Second}
	got, err := protocol.ActivityOf(in).Engine()
	if err != nil || !reflect.DeepEqual(got, in) {
		t.Fatalf("activity: %+v, %v; want %+v", got, err, in)
	}
	for _, r := range []engine.ActivityResult{engine.Failed("boom"), engine.Completed(engine.Payload{}), engine.Completed(engine.Payload{ContentType: "application/json", Data: []byte(`[1]`)})} {
		got, err := protocol.ResultOf(r).Engine()
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("result: %+v, %v; want %+v", got, err, r)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	ack := `{"version":1,"worker_id":"w","conversation_id":"c","attempt":1,"status":"accepted","state":{"seq":1,"in_flight":1,"buffer_depth":0}}`
	cases := []struct {
		name, ct, body string
		want           error
		text           string
	}{
		{"no content type", "", ack, protocol.ErrContentType, "decode ack: wrong content type: none"},
		{"other content type", protocol.ContentTypeResponse, ack, protocol.ErrContentType, "want application/vnd.aion.dispatch.ack+json"},
		{"malformed", protocol.ContentTypeAck, `{"version":1,`, protocol.ErrMalformed, "malformed json"},
		{"empty", protocol.ContentTypeAck, ``, protocol.ErrMalformed, "empty body"},
		{"not an object", protocol.ContentTypeAck, `[1]`, protocol.ErrMalformed, "malformed json"},
		{"unknown field", protocol.ContentTypeAck, strings.Replace(ack, `"attempt"`, `"extra":1,"attempt"`, 1), protocol.ErrUnknownField, `unknown field "extra"`},
		{"unknown nested field", protocol.ContentTypeAck, strings.Replace(ack, `"seq":1`, `"seq":1,"x":2`, 1), protocol.ErrUnknownField, `unknown field "x"`},
		{"trailing data", protocol.ContentTypeAck, ack + `{}`, protocol.ErrTrailingData, "trailing data"},
		{"trailing garbage", protocol.ContentTypeAck, ack + ` x`, protocol.ErrTrailingData, "trailing data"},
		{"no version", protocol.ContentTypeAck, strings.Replace(ack, `"version":1,`, ``, 1), protocol.ErrMissingField, `missing required field "version"`},
		{"version 2", protocol.ContentTypeAck, strings.Replace(ack, `"version":1`, `"version":2`, 1), protocol.ErrVersion, "unsupported protocol version 2"},
		{"no conversation", protocol.ContentTypeAck, strings.Replace(ack, `"conversation_id":"c",`, ``, 1), protocol.ErrMissingField, `"conversation_id"`},
		{"no state", protocol.ContentTypeAck, strings.Replace(ack, `,"state":{"seq":1,"in_flight":1,"buffer_depth":0}`, ``, 1), protocol.ErrMissingField, `"state"`},
		{"bad status", protocol.ContentTypeAck, strings.Replace(ack, `accepted`, `maybe`, 1), protocol.ErrInvalid, `"maybe" is not accepted, deferred or rejected`},
		{"rejected without reason", protocol.ContentTypeAck, strings.Replace(ack, `accepted`, `rejected`, 1), protocol.ErrMissingField, `"reason"`},
		{"wrong type", protocol.ContentTypeAck, strings.Replace(ack, `"attempt":1`, `"attempt":"1"`, 1), protocol.ErrMalformed, "malformed json"},
		{"negative in flight", protocol.ContentTypeAck, strings.Replace(ack, `"in_flight":1`, `"in_flight":-1`, 1), protocol.ErrInvalid, "negative"},
		{"too large", protocol.ContentTypeAck, `{"reason":"` + strings.Repeat("x", protocol.MaxBodySize) + `"}`, protocol.ErrTooLarge, "message too large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := protocol.Ack{Reason: "untouched"}
			got := before
			err := protocol.Decode(c.ct, []byte(c.body), &got)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("error %v, want %v containing %q", err, c.want, c.text)
			}
			var de *protocol.DecodeError
			if !errors.As(err, &de) || de.Message != "ack" {
				t.Fatalf("error %v is not a DecodeError of an ack", err)
			}
			if !reflect.DeepEqual(got, before) {
				t.Fatalf("a refused message changed the target: %+v", got)
			}
		})
	}
}

func TestDecodeRefusesFields(t *testing.T) {
	cases := []struct {
		m    protocol.Message
		body string
		want error
	}{
		{&protocol.Registration{}, `{"version":1,"worker_id":"a.b","instance":"i","channels":["p/q"],"max_in_flight":1,"connection":{"server_id":"s","client_id":1},"state":{"seq":0,"in_flight":0,"buffer_depth":0}}`, protocol.ErrInvalid},
		{&protocol.Registration{}, `{"version":1,"worker_id":"w","instance":"i","channels":["pq"],"max_in_flight":1,"connection":{"server_id":"s","client_id":1},"state":{"seq":0,"in_flight":0,"buffer_depth":0}}`, protocol.ErrInvalid},
		{&protocol.Registration{}, `{"version":1,"worker_id":"w","instance":"i","channels":[],"max_in_flight":1,"connection":{"server_id":"s","client_id":1},"state":{"seq":0,"in_flight":0,"buffer_depth":0}}`, protocol.ErrMissingField},
		{&protocol.Registration{}, `{"version":1,"worker_id":"w","instance":"i","channels":["p/q"],"max_in_flight":0,"connection":{"server_id":"s","client_id":1},"state":{"seq":0,"in_flight":0,"buffer_depth":0}}`, protocol.ErrMissingField},
		{&protocol.Registration{}, `{"version":1,"worker_id":"w","instance":"i","channels":["p/q"],"max_in_flight":1,"connection":{"server_id":"s"},"state":{"seq":0,"in_flight":0,"buffer_depth":0}}`, protocol.ErrMissingField},
		{&protocol.Registration{}, `{"version":1,"worker_id":"w","instance":"i","channels":["p/q"],"max_in_flight":1,"connection":{"server_id":"s","client_id":1},"state":{"seq":0,"in_flight":0,"buffer_depth":0},"heartbeat":"-1s"}`, protocol.ErrInvalid},
		{&protocol.Registration{}, `{"version":1,"worker_id":"w","instance":"i","channels":["p/q"],"max_in_flight":1,"labels":{" region":"eu"},"connection":{"server_id":"s","client_id":1},"state":{"seq":0,"in_flight":0,"buffer_depth":0}}`, protocol.ErrInvalid},
		{&protocol.Registration{}, `{"version":1,"worker_id":"w","instance":"i","channels":["p/q"],"max_in_flight":1,"labels":{"region":3},"connection":{"server_id":"s","client_id":1},"state":{"seq":0,"in_flight":0,"buffer_depth":0}}`, protocol.ErrMalformed},
		{&protocol.Request{}, `{"version":1,"worker_id":"w","instance":"i","conversation_id":"c","attempt":1}`, protocol.ErrMissingField},
		{&protocol.Request{}, `{"version":1,"worker_id":"w","instance":"i","conversation_id":"c","attempt":1,"activity":{"activity_type":"a","start_to_close":"soon"}}`, protocol.ErrInvalid},
		{&protocol.Request{}, `{"version":1,"worker_id":"w","instance":"i","conversation_id":"c","attempt":1,"activity":{"activity_type":"a","input":{"data":"x","data_base64":"eA=="}}}`, protocol.ErrInvalid},
		{&protocol.Request{}, `{"version":1,"worker_id":"w","instance":"i","conversation_id":"c","attempt":1,"activity":{}}`, protocol.ErrMissingField},
		{&protocol.Response{}, `{"version":1,"worker_id":"w","conversation_id":"c","attempt":1,"result":{"status":"failed","output":{"data":"x"}},"state":{"seq":1,"in_flight":0,"buffer_depth":0}}`, protocol.ErrInvalid},
		{&protocol.Response{}, `{"version":1,"worker_id":"w","conversation_id":"c","attempt":1,"result":{},"state":{"seq":1,"in_flight":0,"buffer_depth":0}}`, protocol.ErrMissingField},
		{&protocol.Status{}, `{"version":1,"worker_id":"w","instance":"i","state":{"seq":1,"in_flight":1,"buffer_depth":2}}`, protocol.ErrInvalid},
		// The worker's instance is required in a request and a cancel.
		{&protocol.Request{}, `{"version":1,"worker_id":"w","conversation_id":"c","attempt":1,"activity":{"activity_type":"a"}}`, protocol.ErrMissingField},
		{&protocol.Request{}, `{"version":1,"worker_id":"w","instance":"a b","conversation_id":"c","attempt":1,"activity":{"activity_type":"a"}}`, protocol.ErrInvalid},
		{&protocol.Cancel{}, `{"version":1,"worker_id":"w","conversation_id":"c","attempt":1}`, protocol.ErrMissingField},
		{&protocol.Hello{}, `{"version":1,"node_id":""}`, protocol.ErrMissingField},
	}
	for i, c := range cases {
		if err := protocol.Decode(c.m.ContentType(), []byte(c.body), c.m); !errors.Is(err, c.want) {
			t.Errorf("case %d (%T): %v, want %v", i, c.m, err, c.want)
		}
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	if _, _, err := protocol.Encode(&protocol.Ack{Version: 1}); !errors.Is(err, protocol.ErrMissingField) {
		t.Fatalf("encode of an invalid ack: %v", err)
	}
	if err := protocol.Decode(protocol.ContentTypeAck, []byte(`{}`), protocol.Ack{}); err == nil {
		t.Fatal("decode into a value succeeded")
	}
}

func TestSubjects(t *testing.T) {
	if got := protocol.RequestSubject("w-1"); got != "aion.dispatch.v1.worker.w-1.request" {
		t.Fatal(got)
	}
	for _, s := range []string{protocol.SubjectRegister, protocol.SubjectStatus, protocol.SubjectDeregister, protocol.SubjectHello,
		protocol.RequestSubject("w"), protocol.CancelSubject("w"), protocol.InboxSubject("n")} {
		if n := strings.Count(s, ".") + 1; n < 5 {
			t.Errorf("%s has %d tokens, want 5 or more (a channel's subject has 4)", s, n)
		}
	}
	for _, bad := range []string{"", "a.b", "a b", "a*", "a>", strings.Repeat("x", protocol.MaxIDLength+1)} {
		if protocol.CheckToken(bad) == nil {
			t.Errorf("CheckToken(%q) accepted it", bad)
		}
	}
}

func TestDecodeDisconnect(t *testing.T) {
	d, err := protocol.DecodeDisconnect([]byte(`{"type":"io.nats.server.advisory.v1.client_disconnect","server":{"id":"S1","name":"x"},"client":{"id":9,"acc":"APP","name":"w-1","new":true},"reason":"Client Closed"}`))
	if err != nil || d.Connection != (protocol.Connection{ServerID: "S1", ClientID: 9}) || d.Reason != "Client Closed" || d.Name != "w-1" {
		t.Fatalf("%+v, %v", d, err)
	}
	if _, err := protocol.DecodeDisconnect([]byte(`{"server":{}}`)); !errors.Is(err, protocol.ErrMissingField) {
		t.Fatalf("advisory without ids: %v", err)
	}
}
