package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// TestStampMatchesAppendFormat checks the cached formatter against
// time.RFC3339Nano, in sequences that stay within a second, cross one, and
// jump around, with nanoseconds that have trailing zeros and none.
func TestStampMatchesAppendFormat(t *testing.T) {
	base := time.Date(2026, 11, 26, 23, 59, 59, 0, time.UTC)
	times := []time.Time{
		base, base.Add(1), base.Add(10), base.Add(500 * time.Millisecond), base.Add(999_999_999),
		base.Add(time.Second), base.Add(time.Second + 120*time.Microsecond), base, // back again
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 5, time.UTC), // before the epoch: Unix() is negative
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 7, time.UTC),
		time.Date(2026, 3, 29, 2, 30, 0, 100, time.FixedZone("X", 5*3600+1800)), // not UTC
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		times = append(times, base.Add(time.Duration(r.Int64N(int64(3*time.Second)))))
	}
	var s stamp
	for _, tm := range times {
		got := string(s.append([]byte("x"), tm))
		want := "x" + tm.UTC().Format(time.RFC3339Nano)
		if got != want {
			t.Fatalf("%v: got %s, want %s", tm, got, want)
		}
	}
}

// gatedWriter holds every Write until the test opens the gate, and keeps
// what it was given.
type gatedWriter struct {
	entered chan struct{} // closed when the first Write begins
	once    sync.Once
	gate    chan struct{}
	mu      sync.Mutex
	out     bytes.Buffer
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.out.Write(p)
}

// TestRecordWaitsForRoom: with the output stuck, Records buffer up to
// pendingLimit; the next one waits, before it appends its line, until the
// buffer is written. One whose context ends while it waits records nothing
// and returns the context's error; one that waits on resumes once the output
// moves, and its line follows all the others.
func TestRecordWaitsForRoom(t *testing.T) {
	g := &gatedWriter{entered: make(chan struct{}), gate: make(chan struct{})}
	w := NewWriter(g, Options{Fsync: FsyncNever, Interval: time.Hour})
	waiting := make(chan struct{}, 10)
	w.waitingForRoom = func() { waiting <- struct{}{} }
	pending := func() (int, uint64) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.pending), w.seq
	}
	filler := engine.Operation{Kind: engine.OpMessageSent, ConversationID: "c1", WorkerID: strings.Repeat("w", 1000)}
	for {
		if n, _ := pending(); n >= pendingLimit {
			// Full. Once the flusher is stuck in Write with a batch, it
			// can take no more; until then it may still take all of this.
			<-g.entered
			if n, _ := pending(); n >= pendingLimit {
				break
			}
		}
		if err := w.Record(context.Background(), filler); err != nil { // there is room: it does not wait
			t.Fatal(err)
		}
	}
	n, seq := pending()
	if limit := pendingLimit + 2*len(filler.WorkerID); n > limit {
		t.Fatalf("pending grew to %d bytes, want at most %d", n, limit)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Record(ctx, filler); !errors.Is(err, context.Canceled) {
		t.Fatalf("Record with no room and a cancelled context: %v, want context.Canceled", err)
	}
	<-waiting
	if n2, seq2 := pending(); n2 != n || seq2 != seq {
		t.Fatalf("the cancelled Record appended: pending %d -> %d bytes, seq %d -> %d", n, n2, seq, seq2)
	}

	marker := engine.Operation{Kind: engine.OpMessageSent, ConversationID: "c2", WorkerID: "marker"}
	done := make(chan error, 1)
	go func() { done <- w.Record(context.Background(), marker) }()
	<-waiting // it waits for room rather than appending
	if _, seq2 := pending(); seq2 != seq {
		t.Fatalf("the waiting Record appended: seq %d -> %d", seq, seq2)
	}
	close(g.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(g.out.String(), "\n"), "\n")
	if len(lines) != int(seq)+1 {
		t.Fatalf("wrote %d lines, want the %d that found room and the marker", len(lines), seq)
	}
	want := fmt.Sprintf(`{"seq":%d,`, seq+1)
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, want) || !strings.Contains(last, `"worker_id":"marker"`) {
		t.Fatalf("last line %.80s, want the marker with %s", last, want)
	}
}

// TestCloseWakesARecordWaitingForRoom: Close does not deadlock with a
// Record waiting for room; the Record fails with "closed" (its line is not
// written), and Close writes everything that was appended.
func TestCloseWakesARecordWaitingForRoom(t *testing.T) {
	g := &gatedWriter{entered: make(chan struct{}), gate: make(chan struct{})}
	w := NewWriter(g, Options{Fsync: FsyncNever, Interval: time.Hour})
	waiting := make(chan struct{}, 10)
	w.waitingForRoom = func() { waiting <- struct{}{} }
	filler := engine.Operation{Kind: engine.OpMessageSent, ConversationID: "c1", WorkerID: strings.Repeat("w", 1000)}
	for {
		w.mu.Lock()
		n := len(w.pending)
		w.mu.Unlock()
		if n >= pendingLimit {
			<-g.entered
			w.mu.Lock()
			n = len(w.pending)
			w.mu.Unlock()
			if n >= pendingLimit {
				break
			}
		}
		if err := w.Record(context.Background(), filler); err != nil {
			t.Fatal(err)
		}
	}
	w.mu.Lock()
	appended := w.seq
	w.mu.Unlock()
	recorded := make(chan error, 1)
	go func() { recorded <- w.Record(context.Background(), filler) }()
	<-waiting
	closed := make(chan error, 1)
	go func() { closed <- w.Close() }()
	for { // Close marks the journal closed before it waits for the flusher
		w.mu.Lock()
		c := w.closed
		w.mu.Unlock()
		if c {
			break
		}
		runtime.Gosched()
	}
	close(g.gate)
	if err := <-recorded; err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("the waiting Record: %v, want a closed journal", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(g.out.String(), "\n"); lines != int(appended) {
		t.Errorf("wrote %d lines, want the %d appended", lines, appended)
	}
}
