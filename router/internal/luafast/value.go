package luafast

import (
	"math"
	"slices"
	"strings"

	"github.com/aion-dispatch/dispatch/engine"
)

// kind is the type of a value in the compiled world.
type kind uint8

const (
	kNil     kind = iota
	kBool         // i is 0 or 1
	kNum          // n
	kStr          // s
	kCand         // candidate i (0-based) of the selection
	kTags         // the tags table of candidate i
	kCands        // the candidates list
	kReq          // the request
	kExcl         // the excluded ids
	kTagged       // what dispatch.with_tag(candidates, s) returned; i tells results apart
	kHealthy      // what dispatch.healthy(candidates, n) returned; i tells results apart
)

// value is a Lua value as the compiled code sees it: a small tagged union,
// passed by value, never boxed.
type value struct {
	s string
	n float64
	k kind
	i int32
}

var (
	nilValue   = value{}
	trueValue  = value{k: kBool, i: 1}
	falseValue = value{k: kBool}
)

func num(n float64) value { return value{k: kNum, n: n} }
func str(s string) value  { return value{k: kStr, s: s} }

func boolean(b bool) value {
	if b {
		return trueValue
	}
	return falseValue
}

// truthy is Lua's truth: everything but nil and false.
func truthy(v value) bool { return v.k > kBool || (v.k == kBool && v.i != 0) }

// equal is Lua's raw equality, which is what == means for every value the
// subset has: no metatable of the host's defines __eq. Values of different
// types are never equal; the host's tables and userdata are equal only to
// themselves (one candidate is one table for the whole call).
func equal(a, b value) bool {
	if a.k != b.k {
		return false
	}
	switch a.k {
	case kNil, kCands, kReq, kExcl:
		return true
	case kBool, kCand, kTags, kTagged, kHealthy:
		return a.i == b.i
	case kNum:
		return a.n == b.n
	case kStr:
		return a.s == b.s
	}
	return false
}

// less is Lua's <, or a fallback for what the interpreter would raise an
// error for (or hand to a metamethod).
func less(f *frame, a, b value) bool {
	if a.k == kNum && b.k == kNum {
		return a.n < b.n
	}
	if a.k == kStr && b.k == kStr {
		return strings.Compare(a.s, b.s) < 0
	}
	f.bail("comparison of a " + a.k.String() + " with a " + b.k.String())
	return false
}

// lessEqual is Lua's <=.
func lessEqual(f *frame, a, b value) bool {
	if a.k == kNum && b.k == kNum {
		return a.n <= b.n
	}
	if a.k == kStr && b.k == kStr {
		return strings.Compare(a.s, b.s) <= 0
	}
	f.bail("comparison of a " + a.k.String() + " with a " + b.k.String())
	return false
}

// modulo is gopher-lua's %: the remainder takes the divisor's sign.
func modulo(a, b float64) float64 {
	v := math.Mod(a, b)
	if b > 0 && v < 0 || b < 0 && v > 0 {
		v += b
	}
	return v
}

func (k kind) String() string {
	switch k {
	case kNil:
		return "nil"
	case kBool:
		return "boolean"
	case kNum:
		return "number"
	case kStr:
		return "string"
	case kCand, kTags, kCands:
		return "table"
	}
	return "userdata"
}

// candField is a field of a candidate, resolved when the script is compiled.
type candField uint8

const (
	fieldNone candField = iota // not a candidate field: reads nil
	fieldID
	fieldInFlight
	fieldMaxInFlight
	fieldBufferDepth
	fieldAvailable
	fieldLatencyEWMA // the observed figures: numbers, as the counters above
	fieldLatencyPeakEWMA
	fieldErrorRate
	fieldExits
	fieldTags
	fieldHasTag // the method, read as a value: not modelled
	fieldLabels // not modelled: a script that names it is left to gopher-lua
)

// candFields maps the Lua names of a candidate's fields (package names) to
// what the compiled code reads; TestCandidateFieldsCovered checks it
// against the table of names.
var candFields = map[string]candField{
	"id":                fieldID,
	"in_flight":         fieldInFlight,
	"max_in_flight":     fieldMaxInFlight,
	"buffer_depth":      fieldBufferDepth,
	"available":         fieldAvailable,
	"latency_ewma":      fieldLatencyEWMA,
	"latency_peak_ewma": fieldLatencyPeakEWMA,
	"error_rate":        fieldErrorRate,
	"exits":             fieldExits,
	"tags":              fieldTags,
	"has_tag":           fieldHasTag,
	"labels":            fieldLabels,
}

// numeric reports whether fd is a field that holds a number.
func (fd candField) numeric() bool { return fd >= fieldInFlight && fd <= fieldExits }

// candidateField reads field fd (named name) of candidate i.
func candidateField(f *frame, i int32, fd candField) value {
	w := &f.in.Sel.Candidates[i]
	switch fd {
	case fieldID:
		return str(w.ID())
	case fieldInFlight:
		return num(float64(w.State.InFlight))
	case fieldMaxInFlight:
		return num(float64(w.State.MaxInFlight))
	case fieldBufferDepth:
		return num(float64(w.State.BufferDepth))
	case fieldAvailable:
		return num(float64(w.State.Available()))
	case fieldLatencyEWMA:
		return num(w.State.LatencyEWMA)
	case fieldLatencyPeakEWMA:
		return num(w.State.LatencyPeakEWMA)
	case fieldErrorRate:
		return num(w.State.ErrorRate)
	case fieldExits:
		return num(float64(w.State.Exits))
	case fieldTags:
		return value{k: kTags, i: i}
	case fieldHasTag:
		f.bail("has_tag read as a value")
	case fieldLabels:
		f.bail("labels read by a computed key")
	}
	return nilValue
}

// requestFields are the request's fields by their Lua names (package
// names), read as the interpreter's request userdata reads them;
// TestRequestFieldsCovered checks it against the table of names.
var requestFields = map[string]func(sel *engine.Selection) value{
	"namespace":          func(sel *engine.Selection) value { return str(sel.Channel.Namespace()) },
	"task_queue":         func(sel *engine.Selection) value { return str(sel.Channel.TaskQueue()) },
	"channel":            func(sel *engine.Selection) value { return str(sel.Channel.String()) },
	"workflow_id":        func(sel *engine.Selection) value { return str(sel.WorkflowID) },
	"conversation_id":    func(sel *engine.Selection) value { return str(sel.ConversationID) },
	"attempt":            func(sel *engine.Selection) value { return num(float64(sel.Attempt)) },
	"activity_type":      func(sel *engine.Selection) value { return str(sel.Request.ActivityType) },
	"input_content_type": func(sel *engine.Selection) value { return str(sel.Request.Input.ContentType) },
	"input":              func(sel *engine.Selection) value { return str(string(sel.Request.Input.Data)) },
}

// index is obj[key], for a key known only at run time.
func index(f *frame, obj, key value) value {
	switch obj.k {
	case kCands:
		if key.k == kNum {
			if i, ok := listIndex(key.n, len(f.in.Sel.Candidates)); ok {
				return value{k: kCand, i: int32(i)}
			}
		}
		if key.k == kNil || key.k == kNum || key.k == kStr || key.k == kBool {
			return nilValue
		}
	case kExcl:
		if key.k == kNum {
			if i, ok := listIndex(key.n, len(f.in.Sel.Excluded)); ok {
				return str(f.in.Sel.Excluded[i])
			}
			return nilValue
		}
	case kTagged, kHealthy:
		// As the interpreter's list userdata: a number in range gives a
		// candidate, any other key nil.
		if key.k == kNum {
			slots := f.derived(obj)
			if i, ok := listIndex(key.n, len(slots)); ok {
				return value{k: kCand, i: slots[i]}
			}
		}
		return nilValue
	case kTags:
		tags := f.in.Sel.Candidates[obj.i].State.Tags
		switch key.k {
		case kNum:
			if i, ok := listIndex(key.n, len(tags)); ok {
				return str(tags[i])
			}
			return nilValue
		case kStr:
			if slices.Contains(tags, key.s) {
				return trueValue
			}
			return nilValue
		}
	case kCand:
		switch key.k {
		case kStr:
			return candidateField(f, obj.i, candFields[key.s])
		case kNum, kBool:
			return nilValue // a candidate has only its named fields
		}
	case kReq:
		if key.k == kStr {
			if get, ok := requestFields[key.s]; ok {
				return get(&f.in.Sel)
			}
			return nilValue
		}
	}
	f.bail("index of a " + obj.k.String() + " with a " + key.k.String())
	return nilValue
}

// listIndex returns the 0-based index of the 1-based Lua key n in a list
// of length n, if n is an integer in range.
func listIndex(n float64, length int) (int, bool) {
	if n >= 1 && n <= float64(length) && n == math.Trunc(n) {
		return int(n) - 1, true
	}
	return 0, false
}

// length is #v.
func length(f *frame, v value) value {
	switch v.k {
	case kCands:
		return num(float64(len(f.in.Sel.Candidates)))
	case kExcl:
		return num(float64(len(f.in.Sel.Excluded)))
	case kTags:
		return num(float64(len(f.in.Sel.Candidates[v.i].State.Tags)))
	case kStr:
		return num(float64(len(v.s)))
	case kTagged, kHealthy:
		return num(float64(len(f.derived(v))))
	}
	f.bail("length of a " + v.k.String())
	return nilValue
}

// tagged returns the slots of the candidates that carry tag, in order: the
// list with_tag(candidates, tag) makes (see derived).
func (f *frame) tagged(tag string) []int32 { return f.derived(value{k: kTagged, s: tag}) }

// inDerived reports whether candidate i is in the derived list l: it
// carries l's tag (with_tag), or its error rate is at most l's limit
// (healthy).
func inDerived(f *frame, l value, i int) bool {
	st := &f.in.Sel.Candidates[i].State
	if l.k == kHealthy {
		return st.ErrorRate <= l.n
	}
	return slices.Contains(st.Tags, l.s)
}

// derived returns the slots of the candidates of the derived list l (a
// with_tag or healthy list), in order, found once per call and tag or
// limit: a loop that indexes such a list reads each element at constant
// cost, as the interpreter's list does. A healthy list's limit is never
// NaN (dispatch.healthy falls back on one), so limits compare equal.
func (f *frame) derived(l value) []int32 {
	for i := range f.tagLists {
		if d := &f.tagLists[i]; d.k == l.k && d.tag == l.s && d.limit == l.n {
			return d.slots
		}
	}
	var d tagList
	if n := len(f.tagLists); n < cap(f.tagLists) { // reuse a slice of an earlier call
		d = f.tagLists[:n+1][n]
	}
	d.k, d.tag, d.limit, d.slots = l.k, l.s, l.n, d.slots[:0]
	for i := range f.in.Sel.Candidates {
		if inDerived(f, l, i) {
			d.slots = append(d.slots, int32(i))
		}
	}
	f.tagLists = append(f.tagLists, d)
	return d.slots
}

// tagList is a derived list, with_tag(candidates, tag) or
// healthy(candidates, limit), as the slots of its candidates.
type tagList struct {
	k     kind // kTagged or kHealthy
	tag   string
	limit float64
	slots []int32
}

// derivedViews returns the views of the derived list l, in a buffer of the
// frame's.
func (f *frame) derivedViews(l value) []engine.ConsumerStateView {
	f.buf = f.buf[:0]
	for i := range f.in.Sel.Candidates {
		if inDerived(f, l, i) {
			f.buf = append(f.buf, f.in.View(i))
		}
	}
	return f.buf
}
