package engine_test

import (
	"errors"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
)

func TestPayloadCheck(t *testing.T) {
	for _, tc := range []struct {
		p  engine.Payload
		ok bool
	}{
		{engine.Payload{}, true},
		{engine.Payload{ContentType: "application/json", Data: []byte(`{"a":1}`)}, true},
		{engine.Payload{ContentType: "application/json", Data: []byte(`hi`)}, false},
		{engine.Payload{ContentType: "application/cloudevents+json; charset=utf-8", Data: []byte(`{`)}, false},
		{engine.Payload{ContentType: "text/plain", Data: []byte(`hi`)}, true},
		{engine.Payload{ContentType: "application/json"}, true}, // no data: nothing to check
	} {
		err := tc.p.Check()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, engine.ErrPayloadNotJSON)) {
			t.Errorf("%+v: Check() = %v", tc.p, err)
		}
	}
}
