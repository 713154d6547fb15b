package remote_test

import (
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/protocol"
)

// A request's reply token is crypto-random (at least 128 bits), not a
// sequence number that a client of the account could guess.
func TestReplyTokensAreRandom(t *testing.T) {
	e := newEnv(t, envOpts{})
	p := newPeer(t, e, "p", "i1")
	_, reply, _ := sentRequest(t, e, p)
	tok, ok := strings.CutPrefix(reply, protocol.InboxSubject(e.t.NodeID())+".")
	if !ok || len(tok) < 26 || strings.Contains(tok, ".") {
		t.Fatalf("reply subject %q: token %q is not a random 128-bit token", reply, tok)
	}
}
