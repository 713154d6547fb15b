package exprfast

import (
	"github.com/expr-lang/expr/ast"
)

// field is a candidate's or the request's field.
type field uint8

const (
	fieldNone field = iota
	fieldID
	fieldInFlight
	fieldMaxInFlight
	fieldBufferDepth
	fieldAvailable
	fieldLatencyEWMA
	fieldLatencyPeakEWMA
	fieldErrorRate
	fieldExits
	fieldTags
	fieldLabels // not modelled: a script that reads it is left to the VM
)

// candFields are a candidate's fields by their expr names.
var candFields = map[string]field{
	"id": fieldID, "in_flight": fieldInFlight, "max_in_flight": fieldMaxInFlight,
	"buffer_depth": fieldBufferDepth, "available": fieldAvailable, "tags": fieldTags,
	"latency_ewma": fieldLatencyEWMA, "latency_peak_ewma": fieldLatencyPeakEWMA,
	"error_rate": fieldErrorRate, "exits": fieldExits,
	"labels": fieldLabels,
}

// requestFields read the request's fields by their expr names.
var requestFields = map[string]func(f *frame) value{
	"namespace":          func(f *frame) value { return strValue(f.in.Sel.Channel.Namespace()) },
	"task_queue":         func(f *frame) value { return strValue(f.in.Sel.Channel.TaskQueue()) },
	"channel":            func(f *frame) value { return strValue(f.in.Sel.Channel.String()) },
	"workflow_id":        func(f *frame) value { return strValue(f.in.Sel.WorkflowID) },
	"conversation_id":    func(f *frame) value { return strValue(f.in.Sel.ConversationID) },
	"attempt":            func(f *frame) value { return intValue(f.in.Sel.Attempt) },
	"activity_type":      func(f *frame) value { return strValue(f.in.Sel.Request.ActivityType) },
	"input_content_type": func(f *frame) value { return strValue(f.in.Sel.Request.Input.ContentType) },
	"input":              func(f *frame) value { return strValue(string(f.in.Sel.Request.Input.Data)) },
}

func (c *compiler) member(n *ast.MemberNode) eval {
	if n.Method {
		c.unsupported(n, "a method")
	}
	// a?.b is nil when a is: the rest of the chain (a?.b.c) reads a member
	// of nil, which falls back for the VM to end the chain.
	optional := n.Optional
	obj := c.compile(n.Node)
	if prop, ok := n.Property.(*ast.StringNode); ok {
		cf := candFields[prop.Value]
		rf := requestFields[prop.Value]
		if cf == fieldNone && rf == nil || cf == fieldLabels {
			c.unsupported(n, "the field %s", prop.Value)
		}
		return func(f *frame) value {
			o := obj(f)
			switch {
			case optional && o.k == kNil:
				return nilValue
			case o.k == kCand && cf != fieldNone:
				return candField(f, o.i, cf)
			case o.k == kReq && rf != nil:
				return rf(f)
			}
			f.bail("a field of " + o.k.String())
			return nilValue
		}
	}
	index := c.compile(n.Property)
	return func(f *frame) value {
		o := obj(f)
		if optional && o.k == kNil {
			return nilValue
		}
		ix := index(f)
		if ix.k != kInt {
			f.bail("an index that is not an int")
		}
		i := ix.i
		var size int
		switch o.k {
		case kList:
			size = o.n
		case kTags:
			size = len(f.in.Sel.Candidates[o.i].State.Tags)
		case kExcl:
			size = len(f.in.Sel.Excluded)
		default:
			f.bail("an index into " + o.k.String())
		}
		if i < 0 {
			i += size
		}
		if i < 0 || i >= size {
			f.bail("an index out of range")
		}
		return element(f, o, i)
	}
}

// element returns element j of a list: a candidate, a tag or an excluded id.
func element(f *frame, l value, j int) value {
	switch l.k {
	case kList:
		return candValue(f.elem(l, j))
	case kTags:
		return strValue(f.in.Sel.Candidates[l.i].State.Tags[j])
	case kExcl:
		return strValue(f.in.Sel.Excluded[j])
	}
	f.bail("an element of " + l.k.String())
	return nilValue
}

// length returns the length of a list, or ok false for what is no list.
func length(f *frame, l value) (int, bool) {
	switch l.k {
	case kList:
		return l.n, true
	case kTags:
		return len(f.in.Sel.Candidates[l.i].State.Tags), true
	case kExcl:
		return len(f.in.Sel.Excluded), true
	}
	return 0, false
}

func candField(f *frame, i int, cf field) value {
	w := &f.in.Sel.Candidates[i]
	switch cf {
	case fieldID:
		return strValue(w.ID())
	case fieldInFlight:
		return intValue(w.State.InFlight)
	case fieldMaxInFlight:
		return intValue(w.State.MaxInFlight)
	case fieldBufferDepth:
		return intValue(w.State.BufferDepth)
	case fieldAvailable:
		return intValue(w.State.Available())
	case fieldLatencyEWMA:
		return floatValue(w.State.LatencyEWMA)
	case fieldLatencyPeakEWMA:
		return floatValue(w.State.LatencyPeakEWMA)
	case fieldErrorRate:
		return floatValue(w.State.ErrorRate)
	case fieldExits:
		return intValue(w.State.Exits)
	case fieldTags:
		return value{k: kTags, i: i}
	}
	f.bail("a field")
	return nilValue
}
