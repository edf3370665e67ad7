package engine

import (
	"cmp"
	"fmt"
	"strings"
)

// The software-policy bridge (pam-semantics §5) runs for uac_intercept only,
// before any PAM rule. A blocklist hit denies, an allowlist hit approves for
// a fixed 15 minutes, an audit hit only adds evidence. Per entry the first
// hit counts, in the order sha256 → signer → publisher → path glob; across
// several policies a blocklist hit beats any allowlist hit, and within a mode
// the strongest field, then the higher policy priority, wins.

// Bridge is a compiled set of software policies for one device. It is
// immutable and safe for concurrent use.
type Bridge struct {
	policies []compiledPolicy
}

type compiledPolicy struct {
	p         SoftwarePolicy
	sha       map[string]int // foldKey(trimmed sha256) → entry index
	signer    map[string]int // foldKey(trimmed signer) → entry index
	publisher map[string]int
	globs     []entryGlob
}

type entryGlob struct {
	g     *pathGlob
	entry int
}

// Field strengths of a bridge hit.
const (
	hitPath = iota + 1
	hitPublisher
	hitSigner
	hitSHA256
)

var hitFieldNames = [...]string{hitPath: "pathGlob", hitPublisher: "publisher", hitSigner: "signer", hitSHA256: "sha256"}

type bridgeHit struct {
	policy   *compiledPolicy
	entry    int
	strength int
}

func (h bridgeHit) String() string {
	e := h.policy.p.Executable[h.entry]
	return fmt.Sprintf("%s policy %q entry %q matched by %s", h.policy.p.Mode, h.policy.p.ID, e.Name, hitFieldNames[h.strength])
}

// NewBridge validates and compiles software policies. Inactive policies
// are kept (explain reports them) but never bind.
func NewBridge(policies ...SoftwarePolicy) (*Bridge, error) {
	b := &Bridge{}
	for i, p := range policies {
		if err := ValidateSoftwarePolicy(&p); err != nil {
			return nil, fmt.Errorf("software policy %d %q: %w", i, p.ID, err)
		}
		cp := compiledPolicy{p: p, sha: map[string]int{}, signer: map[string]int{}, publisher: map[string]int{}}
		for j, e := range p.Executable {
			put := func(m map[string]int, v *string) {
				if v == nil {
					return
				}
				k := foldKey(strings.TrimSpace(*v))
				if _, dup := m[k]; !dup && k != "" {
					m[k] = j
				}
			}
			put(cp.sha, e.SHA256)
			put(cp.signer, e.Signer)
			put(cp.publisher, e.Publisher)
			if e.PathGlob != nil {
				g, err := compileGlob(*e.PathGlob)
				if err != nil {
					return nil, fmt.Errorf("software policy %q executable[%d].pathGlob: %w", p.ID, j, err)
				}
				cp.globs = append(cp.globs, entryGlob{g, j})
			}
		}
		b.policies = append(b.policies, cp)
	}
	return b, nil
}

// bestHit is the policy's strongest hit on the candidate, if any.
func (cp *compiledPolicy) bestHit(c *candidate) (bridgeHit, bool) {
	if c.hashKey != "" {
		if j, ok := cp.sha[strings.TrimSpace(c.hashKey)]; ok {
			return bridgeHit{cp, j, hitSHA256}, true
		}
	}
	if s := strings.TrimSpace(c.signerKey); s != "" {
		if j, ok := cp.signer[s]; ok {
			return bridgeHit{cp, j, hitSigner}, true
		}
	}
	// Observations carry no publisher, so publisher entries never hit.
	if c.path != "" {
		best := -1
		for _, eg := range cp.globs {
			if (best < 0 || eg.entry < best) && eg.g.match(c.path) {
				best = eg.entry
			}
		}
		if best >= 0 {
			return bridgeHit{cp, best, hitPath}, true
		}
	}
	return bridgeHit{}, false
}

// bridgeResult is what the bridge found for one candidate.
type bridgeResult struct {
	bind   *bridgeHit // the binding hit (blocklist or allowlist), if any
	audits []bridgeHit
	trace  []TraceEntry
}

func (b *Bridge) evaluate(c *candidate, explain bool) bridgeResult {
	var res bridgeResult
	var block, allow *bridgeHit
	better := func(cur *bridgeHit, h bridgeHit) bool {
		if cur == nil {
			return true
		}
		if h.strength != cur.strength {
			return h.strength > cur.strength
		}
		return cmp.Compare(h.policy.p.Priority, cur.policy.p.Priority) > 0
	}
	for i := range b.policies {
		cp := &b.policies[i]
		if !cp.p.IsActive {
			if explain {
				res.trace = append(res.trace, TraceEntry{Stage: StageSoftwarePolicy, PolicyID: cp.p.ID, Result: ResultSkipped, Detail: "policy is not active"})
			}
			continue
		}
		h, ok := cp.bestHit(c)
		if explain {
			te := TraceEntry{Stage: StageSoftwarePolicy, PolicyID: cp.p.ID, Result: ResultNoMatch, Detail: string(cp.p.Mode) + ": no entry matches"}
			if ok {
				te.Result, te.Detail = ResultMatched, h.String()
			}
			res.trace = append(res.trace, te)
		}
		if !ok {
			continue
		}
		switch cp.p.Mode {
		case ModeBlocklist:
			if better(block, h) {
				hh := h
				block = &hh
			}
		case ModeAllowlist:
			if better(allow, h) {
				hh := h
				allow = &hh
			}
		case ModeAudit:
			res.audits = append(res.audits, h)
		}
	}
	if block != nil {
		res.bind = block
	} else {
		res.bind = allow
	}
	return res
}

// PolicyName returns the name of the bridge's policy with the given id
// ("" if there is none).
func (b *Bridge) PolicyName(id string) string {
	if b == nil {
		return ""
	}
	for i := range b.policies {
		if b.policies[i].p.ID == id {
			return b.policies[i].p.Name
		}
	}
	return ""
}
