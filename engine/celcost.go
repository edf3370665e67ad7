package engine

import (
	"cel.dev/cel-go/common/cost"
)

// celCostModel bounds what a rule program can cost before it ever runs:
// Compile rejects a program whose worst-case estimate exceeds celCostLimit,
// so the runtime limit is a second fence, never the first. Observation
// strings are bounded by the ingest limits (8,192 characters at most; an
// AD-group list by 200 entries), and the custom functions cost in
// proportion to the text they read, as CEL's own string functions do.
type celCostModel struct{}

// obsMaxSize bounds the size of any observation value: the longest string
// field (a command line) and far more than the longest list (200 groups).
const obsMaxSize = 8192

func (celCostModel) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	if p := n.Path(); len(p) > 0 && p[0] == "obs" {
		return &cost.SizeEstimate{Min: 0, Max: obsMaxSize}
	}
	return nil
}

func (celCostModel) EstimateCallCost(fn, _ string, _ *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	size := func(i int) uint64 {
		if i >= len(args) {
			return 1
		}
		if p := args[i].Path(); len(p) > 0 && p[0] == "obs" {
			return obsMaxSize
		}
		return args[i].ComputedSize().Max
	}
	per := func(n uint64) *cost.CallEstimate {
		return &cost.CallEstimate{CostEstimate: cost.CostEstimate{Min: 1, Max: 1 + n/10}}
	}
	switch fn {
	case "eqFold", "thumbprintEq":
		return per(min(size(0), size(1)))
	case "containsFold":
		return per(size(0) + size(1))
	case "pathGlob":
		// The reference DP visits one cheap cell per glob byte and path
		// byte: about a fiftieth of a CEL cost unit each.
		return &cost.CallEstimate{CostEstimate: cost.CostEstimate{Min: 1, Max: 1 + size(0)*(size(1)+1)/50}}
	case "signerEntry":
		return per(2 * obsMaxSize)
	case "inWindow":
		return &cost.CallEstimate{CostEstimate: cost.CostEstimate{Min: 1, Max: 10}}
	}
	return nil
}
