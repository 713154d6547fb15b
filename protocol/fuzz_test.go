package protocol_test

import (
	"reflect"
	"testing"

	"github.com/aion-dispatch/dispatch/protocol"
)

// fuzzDecode checks that decoding never panics, and that what decodes
// encodes again, and then decodes and encodes to the same bytes.
func fuzzDecode(f *testing.F, newMsg func() protocol.Message) {
	for _, m := range samples() {
		if reflect.TypeOf(m) == reflect.TypeOf(newMsg()) {
			body, _, err := protocol.Encode(m)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(body)
		}
	}
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m := newMsg()
		if err := protocol.Decode(m.ContentType(), body, m); err != nil {
			return
		}
		again, ct, err := protocol.Encode(m)
		if err != nil {
			t.Fatalf("decoded %s, which does not encode: %v", body, err)
		}
		m2 := newMsg()
		if err := protocol.Decode(ct, again, m2); err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", again, err)
		}
		third, _, err := protocol.Encode(m2)
		if err != nil || string(third) != string(again) {
			t.Fatalf("%s encodes to %s, then to %s (%v)", body, again, third, err)
		}
	})
}

func FuzzDecodeRegistration(f *testing.F) {
	fuzzDecode(f, func() protocol.Message { return &protocol.Registration{} })
}
func FuzzDecodeStatus(f *testing.F) {
	fuzzDecode(f, func() protocol.Message { return &protocol.Status{} })
}
func FuzzDecodeRequest(f *testing.F) {
	fuzzDecode(f, func() protocol.Message { return &protocol.Request{} })
}
func FuzzDecodeAck(f *testing.F) { fuzzDecode(f, func() protocol.Message { return &protocol.Ack{} }) }
func FuzzDecodeResponse(f *testing.F) {
	fuzzDecode(f, func() protocol.Message { return &protocol.Response{} })
}
func FuzzDecodeDisconnect(f *testing.F) {
	f.Add([]byte(`{"server":{"id":"S"},"client":{"id":1}}`))
	f.Fuzz(func(t *testing.T, body []byte) { _, _ = protocol.DecodeDisconnect(body) })
}
