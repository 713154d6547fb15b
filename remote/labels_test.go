package remote_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/aion-dispatch/dispatch/protocol"
	"github.com/aion-dispatch/dispatch/worker"
)

// labelsOf returns the labels the transport shows of worker id.
func (e *env) labelsOf(t *testing.T, id string) map[string]string {
	t.Helper()
	return e.viewOf(t, id).Labels
}

// TestRegistrationLabels: a worker's labels reach routers from its
// registration, a registration again replaces them, and a registration
// with labels the protocol does not allow is refused where it is
// received, as malformed.
func TestRegistrationLabels(t *testing.T) {
	e := newEnv(t, envOpts{})
	want := map[string]string{"region": "eu", "gpu": "a100"}
	e.startWorker(t, worker.Options{ID: "w1", Labels: want}, echo)
	if got := e.labelsOf(t, "w1"); !maps.Equal(got, want) {
		t.Errorf("w1's labels = %v, want %v", got, want)
	}

	p := newPeer(t, e, "p", "i1")
	e.waitFor(t, "worker p", func() bool { return slices.Contains(e.live(t), "p") })
	if got := e.labelsOf(t, "p"); got != nil {
		t.Errorf("p's labels = %v, want none", got)
	}
	r := p.registration("p", "i1")
	r.Labels = map[string]string{"region": "us"}
	p.send(protocol.SubjectRegister, r)
	e.waitFor(t, "p's labels", func() bool { return e.labelsOf(t, "p")["region"] == "us" })

	before := e.t.Stats().Malformed
	p.raw(protocol.SubjectRegister, protocol.ContentTypeRegistration,
		[]byte(`{"version":1,"worker_id":"bad","instance":"i9","channels":["`+ns+"/"+queue+`"],"max_in_flight":1,"labels":{"region ":"eu"},"connection":{"server_id":"s","client_id":1},"state":{"seq":0,"in_flight":0,"buffer_depth":0}}`))
	// A registration after it on the same connection tells when it has
	// been handled.
	p.send(protocol.SubjectRegister, p.registration("q", "i3"))
	e.waitFor(t, "worker q", func() bool { return slices.Contains(e.live(t), "q") })
	if slices.Contains(e.live(t), "bad") {
		t.Errorf("a registration with bad labels was taken")
	}
	if got := e.t.Stats().Malformed; got != before+1 {
		t.Errorf("malformed = %d, want %d", got, before+1)
	}
}
