package peers

import (
	"context"
	"fmt"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// regoSrc is the policy in Rego (v1 syntax): the indexes with room, those
// tagged first, the most free slots among them, the lowest index of those.
const regoSrc = `package peers

slots(c) := c.max_in_flight - c.in_flight

room := [i | some i, c in input.candidates; slots(c) > 0]

tagged := [i | some i in room; "gpu" in input.candidates[i].tags]

pool := tagged if {
	count(tagged) > 0
} else := room

top := max([slots(input.candidates[i]) | some i in pool])

choice := input.candidates[min([i | some i in pool; slots(input.candidates[i]) == top])].id
`

// Rego runs the policy in OPA's Rego through a query prepared once
// (data.peers.choice); each call builds the input as an AST value
// ({"candidates": [{id, in_flight, max_in_flight, buffer_depth, tags}]}),
// which spares OPA's conversion from Go values.
type Rego struct {
	query rego.PreparedEvalQuery
}

// NewRego compiles the module and prepares the query.
func NewRego(ctx context.Context) (*Rego, error) {
	q, err := rego.New(rego.Query("data.peers.choice"), rego.Module("peers.rego", regoSrc)).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	return &Rego{query: q}, nil
}

// Choose implements [Chooser].
func (r *Rego) Choose(ctx context.Context, in engine.Selection) (string, error) {
	cands := make([]*ast.Term, len(in.Candidates))
	for i := range in.Candidates {
		v := &in.Candidates[i].State
		tags := make([]*ast.Term, len(v.Tags))
		for j, t := range v.Tags {
			tags[j] = ast.StringTerm(t)
		}
		cands[i] = ast.ObjectTerm(
			ast.Item(ast.StringTerm("id"), ast.StringTerm(in.Candidates[i].ID())),
			ast.Item(ast.StringTerm("in_flight"), ast.IntNumberTerm(v.InFlight)),
			ast.Item(ast.StringTerm("max_in_flight"), ast.IntNumberTerm(v.MaxInFlight)),
			ast.Item(ast.StringTerm("buffer_depth"), ast.IntNumberTerm(v.BufferDepth)),
			ast.Item(ast.StringTerm("tags"), ast.ArrayTerm(tags...)),
		)
	}
	input := ast.NewObject(ast.Item(ast.StringTerm("candidates"), ast.ArrayTerm(cands...)))
	rs, err := r.query.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return "", err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return "", nil // choice is undefined: no candidate has room
	}
	id, ok := rs[0].Expressions[0].Value.(string)
	if !ok {
		return "", fmt.Errorf("rego: choice is %v", rs[0].Expressions[0].Value)
	}
	return id, nil
}
