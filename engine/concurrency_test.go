package engine

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A RuleSet is shared by every request goroutine of a server: deciding
// concurrently must give exactly the decisions a single goroutine gives
// (and, under -race, touch no shared mutable state).
func TestRuleSetConcurrentDecide(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	rules := make([]Rule, 60)
	for i := range rules {
		rules[i] = dfRule(r, i, false)
	}
	rs, err := Compile(rules, dfGroupsFor(r), CompileOptions{Lenient: true})
	if err != nil {
		t.Fatal(err)
	}
	inputs := make([]Input, 300)
	want := make([]Decision, len(inputs))
	for i := range inputs {
		flow, o, at := dfObservation(r)
		inputs[i] = Input{Flow: flow, Observation: o, At: at, Explain: i%3 == 0}
		want[i] = rs.Decide(&inputs[i])
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := 0; k < len(inputs); k++ {
				i := (k + g*37) % len(inputs)
				in := inputs[i] // each goroutine decides its own copy
				var got Decision
				if (k+g)%2 == 0 {
					got = rs.Decide(&in)
				} else {
					got = rs.DecideReference(&in)
				}
				if diff := cmp.Diff(want[i], got, dfIgnoreExplain); diff != "" {
					errs <- diff
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("concurrent decision differs from the serial one:\n%s", e)
	}
}
