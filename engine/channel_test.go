package engine_test

import (
	"errors"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
)

func TestDispatchChannel(t *testing.T) {
	for _, tc := range []struct {
		ns, queue string
		want      string // channel text; "" when invalid
		part      string // the part the error names
	}{
		{"prod", "email", "aion.dispatch.prod.email", ""},
		{"prod-eu", "email_v2", "aion.dispatch.prod-eu.email_v2", ""},
		{"", "email", "", "namespace"},
		{"prod", "", "", "task queue"},
		{"pr.od", "email", "", "namespace"},
		{"prod", "e mail", "", "task queue"},
		{"prod", "email\t", "", "task queue"},
		{"prod", "*", "", "task queue"},
		{">", "email", "", "namespace"},
		{"prod", "em>ail", "", "task queue"},
		{"prod\x00", "email", "", "namespace"},
		{"prod", "email\u00a0", "", "task queue"}, // non-breaking space
	} {
		ch, err := engine.DispatchChannel(tc.ns, tc.queue)
		if tc.want != "" {
			if err != nil || ch.String() != tc.want || ch.Namespace() != tc.ns || ch.TaskQueue() != tc.queue || ch.Short() != tc.ns+"/"+tc.queue {
				t.Errorf("DispatchChannel(%q, %q) = %v, %v; want %s", tc.ns, tc.queue, ch, err, tc.want)
			}
			continue
		}
		if ch.Short() != "" {
			t.Errorf("DispatchChannel(%q, %q) failed but Short() = %q, want \"\"", tc.ns, tc.queue, ch.Short())
		}
		var ce *engine.ChannelNameError
		if !errors.Is(err, engine.ErrInvalidChannel) || !errors.As(err, &ce) || ce.Part != tc.part {
			t.Errorf("DispatchChannel(%q, %q) error = %v, want an invalid %s", tc.ns, tc.queue, err, tc.part)
		}
	}
}

func TestParseChannelName(t *testing.T) {
	ch, err := engine.ParseChannelName("aion.dispatch.prod.email")
	if err != nil || ch.Namespace() != "prod" || ch.TaskQueue() != "email" {
		t.Fatalf("parse = %v, %v", ch, err)
	}
	for _, bad := range []string{"", "aion.dispatch.", "aion.dispatch.prod", "nats.prod.email", "aion.dispatch.prod.email.x", "aion.dispatch..email"} {
		if _, err := engine.ParseChannelName(bad); !errors.Is(err, engine.ErrInvalidChannel) {
			t.Errorf("ParseChannelName(%q) error = %v, want ErrInvalidChannel", bad, err)
		}
	}
}

func FuzzParseChannelName(f *testing.F) {
	for _, s := range []string{"aion.dispatch.prod.email", "aion.dispatch.a.b.c", "aion.dispatch. . ", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ch, err := engine.ParseChannelName(s)
		if err != nil {
			return
		}
		if ch.String() != s {
			t.Fatalf("ParseChannelName(%q).String() = %q", s, ch.String())
		}
		again, err := engine.DispatchChannel(ch.Namespace(), ch.TaskQueue())
		if err != nil || again != ch {
			t.Fatalf("parts of %q do not rebuild it: %v", s, err)
		}
	})
}
