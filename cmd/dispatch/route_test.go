package main

import (
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
)

// TestReadCandidatesErrors: what is wrong with --candidates is said in the
// JSON's terms (which candidate, which field, what was expected), never in
// Go's, and nothing after the array is ignored.
func TestReadCandidatesErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`[{"id":"a"},{"id":"b","in_flight":"x"}]`, `candidate 2: in_flight: want a whole number, not a JSON string`},
		{`[{"id":"a","in_flight":99999999999999999999}]`, `candidate 1: in_flight: 99999999999999999999 is out of range`},
		{`[{"id":"a","in_flight":1.5}]`, `candidate 1: in_flight: want a whole number, not a JSON number 1.5`},
		{`[{"id":"a","tags":"eu"}]`, `candidate 1: tags: want an array, not a JSON string`},
		{`[{"id":"a","weight":2}]`, `candidate 1: unknown field "weight"`},
		{`{"id":"a"}`, `want an array, not a JSON object`},
		{`[{"id":"a"}]]`, `unexpected data after the JSON value`},
		{`[{"id":"a"}] {}`, `unexpected data after the JSON value`},
		{`[{"id":"a"`, `the JSON value ends too soon`},
		{`[{"id":a}]`, `not valid JSON at byte 8: invalid character 'a'`},
		{``, `empty: want a JSON value`},
		{`[{}]`, `candidate 1 has no id`},
		{`[{"id":"a","tags":["eu",""]}]`, `candidate "a": tag "" must be non-empty, without surrounding spaces`},
		{`[{"id":"a","tags":[" gpu"]}]`, `candidate "a": tag " gpu" must be non-empty, without surrounding spaces`},
		{`[{"id":"a","labels":{"region":3}}]`, `candidate 1: labels: want a string, not a JSON number`},
		{`[{"id":"a","labels":["eu"]}]`, `candidate 1: labels: want an object, not a JSON array`},
		{`[{"id":"a","labels":{"region":"eu "}}]`, `candidate "a": label region: value "eu " must be UTF-8 without surrounding spaces`},
		{`[{"id":"a","error_rate":-0.5}]`, `candidate worker a: error_rate -0.5 is not within 0..1`},
		{`[{"id":"a","exits":17}]`, `candidate worker a: exits 17 is not within 0..16`},
		{`[{"id":"a","latency_peak_ewma":-1}]`, `candidate worker a: latency_peak_ewma -1 is not a finite number`},
		{`[{"id":"a","latency_ewma":1e999}]`, `candidate 1: latency_ewma`},
	} {
		_, err := readCandidates(tc.in, strings.NewReader(""))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to say %q", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "Go ") || err != nil && strings.Contains(err.Error(), "json: ") {
			t.Errorf("%s: error %q speaks Go", tc.in, err)
		}
	}
	got, err := readCandidates(`[{"id":"a","in_flight":1,"max_in_flight":2,"tags":["eu"],"labels":{"region":"eu"}}, {"id":"b"}] `, strings.NewReader(""))
	if err != nil || len(got) != 2 || got[0].MaxInFlight != 2 || got[1].MaxInFlight != 1 || got[0].Tags[0] != "eu" ||
		got[0].Labels["region"] != "eu" || got[1].Labels != nil {
		t.Errorf("good candidates: %+v, %v", got, err)
	}
}

// FuzzReadCandidates: whatever --candidates holds, readCandidates returns
// an error or candidates a router can be given: ids present and unique,
// max_in_flight at least 1, counts not negative, tags, labels and the
// observed figures as the config, a node and the journal check allow them.
func FuzzReadCandidates(f *testing.F) {
	for _, s := range []string{
		`[{"id":"a","in_flight":1,"max_in_flight":2,"tags":["eu"],"labels":{"region":"eu"}}, {"id":"b"}]`,
		`[{"id":"a","latency_ewma":0.02,"latency_peak_ewma":0.05,"error_rate":0.5,"exits":3}]`,
		`[{"id":"a","error_rate":1.5}]`, `[{}]`, `[]`, `{"id":"a"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		cands, err := readCandidates(in, strings.NewReader(""))
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, c := range cands {
			if c.ID == "" || seen[c.ID] || c.MaxInFlight < 1 || c.InFlight < 0 || c.BufferDepth < 0 {
				t.Fatalf("%q: a candidate no router should get: %+v", in, c)
			}
			seen[c.ID] = true
			if err := c.CheckObserved(); err != nil {
				t.Fatalf("%q: %v", in, err)
			}
			if err := engine.CheckLabels(c.Labels); err != nil {
				t.Fatalf("%q: %v", in, err)
			}
		}
	})
}

// TestInputMustMatchItsContentType: a string input is sent as its text, so
// with a JSON content type the text must be JSON; anything else is refused
// where it is written rather than failing in a script.
func TestInputMustMatchItsContentType(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{`{"input":"hi","content_type":"application/json"}`, false},
		{`{"input":"hi","content_type":"application/vnd.acme+json; charset=utf-8"}`, false},
		{`{"input":"{\"a\":1}","content_type":"application/json"}`, true},
		{`{"input":"hi"}`, true},
		{`{"input":"hi","content_type":"text/plain"}`, true},
		{`{"input":{"a":1}}`, true},
		{`{"input":[1,2],"content_type":"application/json"}`, true},
	} {
		_, err := readRouteRequest(tc.line, strings.NewReader(""))
		if (err == nil) != tc.ok {
			t.Errorf("--request %s: %v", tc.line, err)
		}
		_, err = parseRequest([]byte(`{"channel":"prod/email","workflow_id":"w","activity_type":"a",` + tc.line[1:]))
		if (err == nil) != tc.ok {
			t.Errorf("requests line with %s: %v", tc.line, err)
		}
	}
}
