package exprfast

import (
	"math"
	"strings"
)

// kind is the type of a value on the fast path.
type kind uint8

const (
	kNil   kind = iota
	kBool       // i is 0 or 1
	kInt        // i
	kFloat      // f
	kStr        // s
	kCand       // i is the candidate's index in the selection
	kList       // a list of candidates: i is its offset in the frame's arena, or -1 for the candidates themselves; n its length
	kTags       // the tags of candidate i
	kExcl       // the excluded ids
	kReq        // the request
)

var kindNames = [...]string{"nil", "bool", "int", "float", "string", "candidate", "list", "tags", "excluded", "request"}

func (k kind) String() string { return kindNames[k] }

// value is a value of the fast path: a scalar, or a reference to what the
// call's selection holds. No value owns memory of its own.
type value struct {
	k kind
	i int
	n int
	f float64
	s string
}

var (
	nilValue   = value{}
	trueValue  = value{k: kBool, i: 1}
	falseValue = value{k: kBool}
)

func boolValue(b bool) value {
	if b {
		return trueValue
	}
	return falseValue
}

func intValue(i int) value       { return value{k: kInt, i: i} }
func floatValue(f float64) value { return value{k: kFloat, f: f} }
func strValue(s string) value    { return value{k: kStr, s: s} }
func candValue(i int) value      { return value{k: kCand, i: i} }

// isNumber reports whether v is an int or a float.
func (v value) isNumber() bool { return v.k == kInt || v.k == kFloat }

// float returns a number as a float64, as expr converts an int.
func (v value) float() float64 {
	if v.k == kInt {
		return float64(v.i)
	}
	return v.f
}

// scalar reports whether v is nil, a bool, a number or a string: a value
// expr's == compares without looking into the host's types.
func (v value) scalar() bool { return v.k <= kStr }

// equal is expr's == (runtime.Equal) over scalars: numbers by value, an int
// and a float converted to float64; strings and bools by value; nil equal
// only to nil; values of different types unequal. ok is false for what it
// does not model (lists, the request, two candidates).
func equal(a, b value) (eq, ok bool) {
	switch {
	case a.isNumber() && b.isNumber():
		if a.k == kInt && b.k == kInt {
			return a.i == b.i, true
		}
		return a.float() == b.float(), true
	case a.scalar() && b.scalar():
		if a.k != b.k {
			return false, true
		}
		switch a.k {
		case kStr:
			return a.s == b.s, true
		case kBool:
			return a.i == b.i, true
		}
		return true, true // both nil
	case a.k == kNil && b.k == kCand, a.k == kCand && b.k == kNil:
		return false, true // a candidate is a non-nil pointer
	}
	return false, false
}

// less is expr's < (runtime.Less): numbers, an int and a float compared as
// float64, and strings. ok is false for any other pair, which expr refuses.
func less(a, b value) (lt, ok bool) {
	switch {
	case a.k == kInt && b.k == kInt:
		return a.i < b.i, true
	case a.isNumber() && b.isNumber():
		return a.float() < b.float(), true
	case a.k == kStr && b.k == kStr:
		return a.s < b.s, true
	}
	return false, false
}

// arith is expr's + - * over numbers: int op int is an int (wrapping, as
// Go's int does), anything with a float a float64.
func arith(op byte, a, b value) (value, bool) {
	if !a.isNumber() || !b.isNumber() {
		return nilValue, false
	}
	if a.k == kInt && b.k == kInt {
		switch op {
		case '+':
			return intValue(a.i + b.i), true
		case '-':
			return intValue(a.i - b.i), true
		case '*':
			return intValue(a.i * b.i), true
		}
	}
	x, y := a.float(), b.float()
	switch op {
	case '+':
		return floatValue(x + y), true
	case '-':
		return floatValue(x - y), true
	case '*':
		return floatValue(x * y), true
	}
	return nilValue, false
}

// divide is expr's /: always a float64, as runtime.Divide converts both
// sides (a division by zero is an infinity or NaN, not an error).
func divide(a, b value) (value, bool) {
	if !a.isNumber() || !b.isNumber() {
		return nilValue, false
	}
	return floatValue(a.float() / b.float()), true
}

// modulo is expr's %: ints only; a zero divisor is an error (left to the VM).
func modulo(a, b value) (value, bool) {
	if a.k != kInt || b.k != kInt || b.i == 0 {
		return nilValue, false
	}
	return intValue(a.i % b.i), true
}

// power is expr's ** and ^: math.Pow of both as float64.
func power(a, b value) (value, bool) {
	if !a.isNumber() || !b.isNumber() {
		return nilValue, false
	}
	return floatValue(math.Pow(a.float(), b.float())), true
}

// stringOp is expr's contains, startsWith and endsWith, on strings only.
func stringOp(op string, a, b value) (value, bool) {
	if a.k != kStr || b.k != kStr {
		return nilValue, false
	}
	switch op {
	case "contains":
		return boolValue(strings.Contains(a.s, b.s)), true
	case "startsWith":
		return boolValue(strings.HasPrefix(a.s, b.s)), true
	case "endsWith":
		return boolValue(strings.HasSuffix(a.s, b.s)), true
	}
	return nilValue, false
}
