package exprrt

import (
	"cmp"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"

	"github.com/aion-dispatch/dispatch/router/internal/call"
)

// exprValueFunctions replace expr's builtins that list a map's entries in
// Go's map order, which changes from run to run: keys(), values() and
// toPairs() list them in key order, so that the same inputs give the same
// decision, and the same message.
func exprValueFunctions() []expr.Option {
	return []expr.Option{
		expr.Function("keys", func(args ...any) (any, error) {
			_, keys, err := sortedKeys("get keys from", args[0])
			if err != nil {
				return nil, err
			}
			out := make([]any, len(keys))
			for i, k := range keys {
				out[i] = k.Interface()
			}
			return out, nil
		}, new(func(any) []any)),
		expr.Function("values", func(args ...any) (any, error) {
			v, keys, err := sortedKeys("get values from", args[0])
			if err != nil {
				return nil, err
			}
			out := make([]any, len(keys))
			for i, k := range keys {
				out[i] = v.MapIndex(k).Interface()
			}
			return out, nil
		}, new(func(any) []any)),
		expr.Function("toPairs", func(args ...any) (any, error) {
			v, keys, err := sortedKeys("transform", args[0])
			if err != nil {
				return nil, err
			}
			out := make([]any, len(keys))
			for i, k := range keys {
				out[i] = []any{k.Interface(), v.MapIndex(k).Interface()}
			}
			return out, nil
		}, new(func(any) []any)),
	}
}

// sortedKeys returns m as a map and its keys in order.
func sortedKeys(what string, m any) (reflect.Value, []reflect.Value, error) {
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Map {
		return v, nil, fmt.Errorf("cannot %s %s", what, exprKind(v))
	}
	keys := v.MapKeys()
	slices.SortFunc(keys, compareKeys)
	return v, keys, nil
}

// compareKeys orders map keys: strings and numbers by value, other keys
// by their text.
func compareKeys(a, b reflect.Value) int {
	a, b = unwrap(a), unwrap(b)
	switch {
	case a.Kind() == reflect.String && b.Kind() == reflect.String:
		return strings.Compare(a.String(), b.String())
	case isNumber(a) && isNumber(b):
		return cmp.Compare(toFloat(a), toFloat(b))
	}
	return strings.Compare(keyText(a), keyText(b))
}

func keyText(v reflect.Value) string {
	if !v.IsValid() || !v.CanInterface() {
		return v.Kind().String()
	}
	return fmt.Sprint(v.Interface())
}

// unwrap returns the value an interface holds (the invalid Value for nil).
func unwrap(v reflect.Value) reflect.Value {
	for v.Kind() == reflect.Interface {
		v = v.Elem()
	}
	return v
}

func isNumber(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func toFloat(v reflect.Value) float64 {
	switch {
	case v.CanInt():
		return float64(v.Int())
	case v.CanUint():
		return float64(v.Uint())
	}
	return v.Float()
}

// exprKind names the kind of v in a script's words.
func exprKind(v reflect.Value) string {
	v = unwrap(v)
	switch v.Kind() {
	case reflect.Invalid:
		return "nil"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map:
		return "a map"
	case reflect.Func:
		return "a function"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a bool"
	}
	if isNumber(v) {
		return "a number"
	}
	return "a " + v.Kind().String()
}

// String writes the candidate as an expr map literal, for string().
func (c exprCandidate) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{id: %q, in_flight: %d, max_in_flight: %d, buffer_depth: %d, available: %d, tags: [",
		c.ID, c.InFlight, c.MaxInFlight, c.BufferDepth, c.Available)
	for i, t := range c.Tags {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(t))
	}
	b.WriteString("], labels: {")
	for i, k := range slices.Sorted(maps.Keys(c.Labels)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: %q", k, c.Labels[k])
	}
	fmt.Fprintf(&b, "}, latency_ewma: %v, latency_peak_ewma: %v, error_rate: %v, exits: %d}",
		c.LatencyEWMA, c.LatencyPeakEWMA, c.ErrorRate, c.Exits)
	return b.String()
}

// String writes the request as an expr map literal, for string().
func (r exprRequest) String() string {
	return fmt.Sprintf("{namespace: %q, task_queue: %q, channel: %q, workflow_id: %q, conversation_id: %q, "+
		"attempt: %d, activity_type: %q, input_content_type: %q, input: %q}",
		r.Namespace, r.TaskQueue, r.Channel, r.WorkflowID, r.ConversationID,
		r.Attempt, r.ActivityType, r.InputContentType, r.Input)
}

// describe says what an expr script returned that is neither an id, a
// candidate nor nil, for the error that refuses it: its kind, and the
// value as the script would write it.
func (r *exprRunner) describe(out any) string {
	v := unwrap(reflect.ValueOf(out))
	switch v.Kind() {
	case reflect.Bool:
		return "bool " + strconv.FormatBool(v.Bool())
	case reflect.Float32, reflect.Float64:
		return "float " + r.text(out)
	case reflect.Func:
		return "a function"
	case reflect.Slice, reflect.Array, reflect.Map:
		return exprKind(v) + " " + r.text(out)
	}
	switch out.(type) {
	case *exprRequest, exprRequest:
		return "the request"
	}
	if isNumber(v) {
		return "int " + r.text(out)
	}
	return r.text(out)
}

// text renders v as an expr script would write it: literals for nil,
// numbers, strings, booleans, lists and maps (at most call.TextEntries entries,
// call.TextDepth levels and about call.TextBytes bytes, the rest elided with "…";
// maps in key order), and names for the host's values (request, candidate
// "w1") and for functions.
func (r *exprRunner) text(v any) string {
	var b strings.Builder
	r.writeText(&b, reflect.ValueOf(v), 0)
	return b.String()
}

func (r *exprRunner) writeText(b *strings.Builder, v reflect.Value, depth int) {
	v = unwrap(v)
	if !v.IsValid() {
		b.WriteString("nil")
		return
	}
	if v.CanInterface() {
		switch x := v.Interface().(type) {
		case *exprCandidate:
			r.writeCandidate(b, x)
			return
		case exprCandidate:
			r.writeCandidate(b, &x)
			return
		case *exprRequest, exprRequest:
			b.WriteString("request")
			return
		}
	}
	switch v.Kind() {
	case reflect.String:
		b.WriteString(strconv.Quote(v.String()))
	case reflect.Bool:
		b.WriteString(strconv.FormatBool(v.Bool()))
	case reflect.Float32, reflect.Float64:
		b.WriteString(strconv.FormatFloat(v.Float(), 'g', -1, 64))
	case reflect.Func:
		b.WriteString("function")
	case reflect.Slice, reflect.Array:
		if depth >= call.TextDepth {
			b.WriteString("[…]")
			return
		}
		b.WriteByte('[')
		for i := range v.Len() {
			if i > 0 {
				b.WriteString(", ")
			}
			if i == call.TextEntries || b.Len() > call.TextBytes {
				b.WriteString("… (" + strconv.Itoa(v.Len()-i) + " more)")
				break
			}
			r.writeText(b, v.Index(i), depth+1)
		}
		b.WriteByte(']')
	case reflect.Map:
		if depth >= call.TextDepth {
			b.WriteString("{…}")
			return
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, compareKeys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			if i == call.TextEntries || b.Len() > call.TextBytes {
				b.WriteString("… (" + strconv.Itoa(len(keys)-i) + " more)")
				break
			}
			r.writeText(b, k, depth+1)
			b.WriteString(": ")
			r.writeText(b, v.MapIndex(k), depth+1)
		}
		b.WriteByte('}')
	default:
		switch {
		case v.CanInt():
			b.WriteString(strconv.FormatInt(v.Int(), 10))
		case v.CanUint():
			b.WriteString(strconv.FormatUint(v.Uint(), 10))
		case v.Kind() == reflect.Pointer || v.Kind() == reflect.Chan || v.Kind() == reflect.UnsafePointer:
			b.WriteString(v.Kind().String())
		case v.CanInterface():
			fmt.Fprint(b, v.Interface())
		default:
			b.WriteString(v.Kind().String())
		}
	}
}

// writeCandidate names a candidate by the id of the worker in its slot:
// the runner's copy of the fields is kept up to date only for scripts
// that read them.
func (r *exprRunner) writeCandidate(b *strings.Builder, c *exprCandidate) {
	id := c.ID
	if r.in != nil && c.slot >= 0 && c.slot < len(r.in.Sel.Candidates) {
		id = r.in.Sel.Candidates[c.slot].ID()
	}
	b.WriteString("candidate " + strconv.Quote(id))
}
