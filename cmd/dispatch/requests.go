package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
)

// maxRequestLine is the longest requests line read; a longer one is an
// error and is skipped.
const maxRequestLine = 1 << 20

// activity is one request to dispatch: a requests line, or one of the
// sample load.
type activity struct {
	line    int // 0 for the sample load
	channel engine.ChannelName
	req     engine.ActivityRequest
}

// lineError is a requests line that cannot be dispatched.
type lineError struct {
	file string
	line int
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.file, e.line, e.err) }

// readRequests reads JSONL activities from r as they arrive and calls emit
// for each line: an activity, or a *lineError for a line that is not one.
// Blank lines are skipped. It stops when emit returns false, at the end of
// input, or on a read error, which it returns.
func readRequests(r io.Reader, name string, emit func(activity, error) bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for line := 1; ; line++ {
		data, tooLong, err := readLine(br)
		bom := bytes.HasPrefix(data, byteOrderMark)
		if bom && line == 1 { // some editors start a UTF-8 file with one
			data, bom = data[len(byteOrderMark):], false
		}
		if len(bytes.TrimSpace(data)) > 0 || tooLong {
			var a activity
			var perr error
			switch {
			case tooLong:
				perr = fmt.Errorf("line longer than %d bytes", maxRequestLine)
			case bom:
				perr = errors.New("a byte-order mark (U+FEFF) is allowed only at the start of the file")
			default:
				a, perr = parseRequest(data)
			}
			a.line = line
			if perr != nil {
				perr = &lineError{file: name, line: line, err: perr}
			}
			if !emit(a, perr) {
				return nil
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
}

// byteOrderMark is U+FEFF in UTF-8.
var byteOrderMark = []byte("\uFEFF")

// readLine reads one line without its newline; a line over maxRequestLine
// is read to its end and reported as too long.
func readLine(br *bufio.Reader) (data []byte, tooLong bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			data = append(data, chunk...)
			if len(data) > maxRequestLine {
				tooLong, data = true, nil
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(data, "\r\n"), tooLong, err
	}
}

// parseRequest decodes one requests line strictly: a submission with its
// channel (see protocol.Submission). The channel is checked here, the rest
// by protocol.Submission.Request; every problem of the line is in its
// error, joined by "; ".
func parseRequest(data []byte) (activity, error) {
	sub, err := protocol.ParseSubmission(data)
	if err != nil {
		return activity{}, err
	}
	var chErr error
	var ch engine.ChannelName
	if sub.Channel == "" {
		chErr = errors.New("missing channel")
	} else if ch, err = config.ParseChannelFlag(sub.Channel); err != nil {
		chErr = err
	}
	req, err := sub.Request(ch)
	var re *protocol.RequestError
	switch {
	case chErr != nil && errors.As(err, &re):
		return activity{}, &protocol.RequestError{Problems: append([]error{chErr}, re.Problems...)}
	case chErr != nil:
		return activity{}, chErr
	case err != nil:
		return activity{}, err
	}
	return activity{channel: ch, req: req}, nil
}

// sampleLoad is the built-in load of `dispatch run` without --requests:
// perChannel activities on each channel, interleaved, with inputs that the
// shipped scripts look at (a region, a workflow id that repeats).
func sampleLoad(cfg *config.Config, perChannel int) []activity {
	regions := []string{"eu", "us", "eu", "ap"}
	var out []activity
	for i := range perChannel {
		for _, ch := range cfg.Channels {
			q := ch.Name.TaskQueue()
			input := fmt.Sprintf(`{"n":%d,"region":%q}`, i, regions[i%len(regions)])
			out = append(out, activity{channel: ch.Name, req: engine.ActivityRequest{
				WorkflowID:   fmt.Sprintf("wf-%s-%d", q, i%50),
				ActivityType: q,
				TaskQueue:    q,
				Input:        engine.Payload{ContentType: "application/json", Data: []byte(input)},
			}})
		}
	}
	return out
}
