package exprfast

// Direct reports whether p runs without a frame (see directCall).
func (p *Program) Direct() bool { return p.direct != nil }

// Framed returns p compiled as it is but always run in a frame: the tests
// compare the two.
func (p *Program) Framed() *Program {
	return &Program{body: p.body, nslots: p.nslots, depth: p.depth, budget: p.budget}
}
