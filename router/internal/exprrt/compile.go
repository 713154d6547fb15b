package exprrt

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/aion-dispatch/dispatch/router/internal/call"
	"github.com/aion-dispatch/dispatch/router/internal/names"
)

// Limits bound what a script may do; the router resolves its defaults.
type Limits struct {
	MaxNodes     uint // nodes of a program
	MemoryBudget uint // what one run may allocate, in the VM's units
	PoolSize     int  // idle runners a program keeps
}

// Program is a compiled expr routing script. The *vm.Program is shared;
// each call borrows a runner holding its own VM and reusable buffers.
type Program struct {
	prog   *vm.Program
	src    []byte
	limits Limits
	// timed: the program may take time beyond a pass over the candidates
	// (it has predicates, ranges or calls other than the helpers), so each
	// run is timed against the deadline. expr cannot be interrupted, so a
	// run past the deadline is reported as a timeout when it ends.
	timed bool
	// readsCandidates: the program reads candidates' fields itself (members,
	// predicates, builtins) rather than only passing lists to helpers, so the
	// runner's candidate values must be kept up to date.
	readsCandidates bool
	// fast is the program compiled to Go (package exprfast), tried first;
	// a call it does not model runs in the VM.
	fast fastPath

	mu   sync.Mutex
	free []*exprRunner
}

// exprCandidate is a candidate as an expr script sees it: its expr tags are
// the table of names' candidate fields, in order (TestEnvMatchesNames). Scripts get
// pointers into the runner's own array, so lists built by filter or withTag
// copy pointers, not candidates.
// The json tags give toJSON the names scripts know.
type exprCandidate struct {
	ID          string   `expr:"id" json:"id"`
	InFlight    int      `expr:"in_flight" json:"in_flight"`
	MaxInFlight int      `expr:"max_in_flight" json:"max_in_flight"`
	BufferDepth int      `expr:"buffer_depth" json:"buffer_depth"`
	Available   int      `expr:"available" json:"available"`
	Tags        []string `expr:"tags" json:"tags"`
	// Labels is the view's own map, shared: expr cannot write to it.
	Labels          map[string]string `expr:"labels" json:"labels"`
	LatencyEWMA     float64           `expr:"latency_ewma" json:"latency_ewma"`
	LatencyPeakEWMA float64           `expr:"latency_peak_ewma" json:"latency_peak_ewma"`
	ErrorRate       float64           `expr:"error_rate" json:"error_rate"`
	Exits           int               `expr:"exits" json:"exits"`
	slot            int               // index into the call's views
}

// exprRequest is the request as an expr script sees it: its expr tags are
// the table of names' request fields, in order (TestEnvMatchesNames).
type exprRequest struct {
	Namespace        string `expr:"namespace" json:"namespace"`
	TaskQueue        string `expr:"task_queue" json:"task_queue"`
	Channel          string `expr:"channel" json:"channel"`
	WorkflowID       string `expr:"workflow_id" json:"workflow_id"`
	ConversationID   string `expr:"conversation_id" json:"conversation_id"`
	Attempt          int    `expr:"attempt" json:"attempt"`
	ActivityType     string `expr:"activity_type" json:"activity_type"`
	InputContentType string `expr:"input_content_type" json:"input_content_type"`
	Input            string `expr:"input" json:"input"`
}

// helper is the shape of every helper: expr's fast call path.
type helper = func(...any) any

// exprEnvTypes declares what an expr script can name and its types, for the
// compiler. At run time each runner passes a map of the same shape: a map
// env is read with a plain map lookup, where a struct env costs reflection
// on every name. The helpers are bound to the runner, so that random and p2c
// draw from the decision's own seeded source.
// The helpers are the table of names' expr helpers.
func exprEnvTypes() map[string]any {
	env := map[string]any{
		"request":    &exprRequest{},
		"candidates": []*exprCandidate{},
		"excluded":   []string{},
	}
	for name := range helperNames {
		env[name] = helper(nil)
	}
	return env
}

// Compile compiles an expr routing script over the environment scripts
// see (request, candidates, excluded and the helpers). An error at a place
// in the script is a [*call.Error], worded in the script's terms, with
// every further problem the checks found in its More (see check).
func Compile(src []byte, limits Limits) (*Program, error) {
	opts := append([]expr.Option{expr.Env(exprEnvTypes()), expr.MaxNodes(limits.MaxNodes)}, exprValueFunctions()...)
	if err := check(src, opts); err != nil {
		return nil, err
	}
	prog, err := expr.Compile(string(src), opts...)
	if err != nil {
		return nil, exprError(src, err)
	}
	v := &shapeVisitor{}
	node := prog.Node()
	ast.Walk(&node, v)
	return &Program{prog: prog, src: src, limits: limits, timed: v.timed, readsCandidates: v.reads,
		fast: compileFast(node, limits)}, nil
}

// helperNames are the env functions that run a bounded pass in Go: the
// table of names' expr helpers.
var helperNames = func() map[string]bool {
	m := map[string]bool{}
	for _, name := range names.Expr(names.Helper) {
		m[name] = true
	}
	return m
}()

// visitFunc is an ast.Visitor calling a function on every node.
type visitFunc func(ast.Node)

func (f visitFunc) Visit(n *ast.Node) { f(*n) }

// shapeVisitor finds what a program does beyond calling helpers: anything
// but member reads, operators and helper calls may take time (timed), and
// member reads, pointers, predicates and builtins may read candidates.
type shapeVisitor struct{ timed, reads bool }

func (v *shapeVisitor) Visit(n *ast.Node) {
	switch n := (*n).(type) {
	case *ast.PredicateNode, *ast.BuiltinNode:
		v.timed, v.reads = true, true
	case *ast.MemberNode, *ast.PointerNode:
		v.reads = true
	case *ast.BinaryNode:
		if n.Operator == ".." {
			v.timed = true
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); !ok || !helperNames[id.Value] {
			v.timed, v.reads = true, true
		}
	}
}

// exprError renders an expr error as a call.Error, in the script's terms.
func exprError(src []byte, err error) *call.Error {
	se := &call.Error{Message: exprMessage(err.Error()), Err: err}
	var fe *file.Error
	if errors.As(err, &fe) {
		se.Line, se.Column, se.Message = fe.Line, fe.Column+1, exprMessage(fe.Message)
		se.Snippet = call.SourceLine(src, fe.Line)
	}
	return se
}

var (
	noField     = regexp.MustCompile(`^type exprrt\.expr(Candidate|Request) has no field (\S+)$`)
	unknownName = regexp.MustCompile(`^unknown name (\S+)$`)
)

// globalNames are the names an expr script can call or read at its top
// level, for suggestions: the environment's (the table of names' helpers
// among them), then this package's functions and expr's builtins.
var globalNames = func() []string {
	out := slices.Sorted(maps.Keys(exprEnvTypes()))
	out = append(out, "keys", "values", "toPairs")
	for _, b := range builtin.Names {
		if !strings.HasPrefix(b, "$") {
			out = append(out, b)
		}
	}
	return out
}()

// exprTypeNames puts the script's words for the env's Go types into expr's
// messages, longest first.
var exprTypeNames = strings.NewReplacer(
	"[]*exprrt.exprCandidate", "a list of candidates",
	"[][2]interface {}", "a list of pairs",
	"[]interface {}", "a list",
	"map[string]interface {}", "a map",
	"func(...interface {}) interface {}", "a function",
	"interface {}", "any",
	"*exprrt.exprCandidate", "a candidate",
	"exprrt.exprCandidate", "a candidate",
	"*exprrt.exprRequest", "the request",
	"exprrt.exprRequest", "the request",
)

// exprMessage rewords an expr message that names the env's Go types.
func exprMessage(msg string) string {
	if strings.HasPrefix(msg, "cannot use exprrt.exprCandidate as type *exprrt.exprCandidate") {
		return `a candidate cannot be looked for in a list with "in"; compare ids, for example any(candidates, .id == "w1")`
	}
	if m := noField.FindStringSubmatch(msg); m != nil {
		if m[1] == "Candidate" {
			fields := names.Expr(names.CandidateField)
			return fmt.Sprintf("a candidate has no field %s%s (it has %s)", m[2], names.DidYouMean(m[2], fields), strings.Join(fields, ", "))
		}
		fields := names.Expr(names.RequestField)
		return fmt.Sprintf("the request has no field %s%s (it has %s)", m[2], names.DidYouMean(m[2], fields), strings.Join(fields, ", "))
	}
	if m := unknownName.FindStringSubmatch(msg); m != nil {
		return msg + names.DidYouMean(m[1], globalNames)
	}
	return exprTypeNames.Replace(msg)
}
