package dsl

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/dsl/syntax"
	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
)

// Ext is the extension of rule files; test files end in TestSuffix.
const (
	Ext        = ".pam"
	TestSuffix = "_test.pam"
	orgFile    = "org.pam" // its org declaration names the org of its directory tree
)

// Origin is where something was declared.
type Origin struct {
	File string
	Pos  syntax.Pos
}

func (o Origin) String() string { return fmt.Sprintf("%s:%d:%d", o.File, o.Pos.Line, o.Pos.Col) }

// SourceFile is one parsed file of a repository.
type SourceFile struct {
	Path string // as given or relative to the repository root
	Src  string
	AST  *syntax.File
	Org  string
}

// Org is everything a repository declares for one organisation, lowered to
// the engine's and the policy package's types. Single-tenant repositories
// have one Org named "".
type Org struct {
	Name string

	Rules    []engine.Rule
	RuleAt   []Origin
	Groups   []engine.SignerGroup
	GroupAt  []Origin
	Policies []policy.Policy
	PolicyAt []Origin

	Config          engine.OrgConfig
	UACInterception *bool // the org-level fallback of the pam feature (pam-semantics §10.2)
	ConfigAt        *Origin

	Tests []*TestCase

	ruleDecl  []*syntax.Block
	groupDecl []*syntax.Block
}

// Repository is a loaded policy repository.
type Repository struct {
	Files []*SourceFile
	Orgs  []*Org
	Diags Diagnostics
}

// Sources maps file paths to their text, for rendering diagnostics.
func (r *Repository) Sources() map[string]string {
	m := make(map[string]string, len(r.Files))
	for _, f := range r.Files {
		m[f.Path] = f.Src
	}
	return m
}

// Org returns the org with the given name.
func (r *Repository) Org(name string) (*Org, bool) {
	for _, o := range r.Orgs {
		if o.Name == name {
			return o, true
		}
	}
	return nil, false
}

// FindFiles lists the .pam files under each path (a file is taken as is),
// skipping hidden files and directories, sorted.
func FindFiles(paths ...string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") && path != p {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), Ext) {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

// LoadDir loads every .pam file under dir as one repository.
func LoadDir(dir string) (*Repository, error) {
	paths, err := FindFiles(dir)
	if err != nil {
		return nil, err
	}
	srcs := make(map[string]string, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		srcs[p] = string(b)
	}
	return Load(srcs), nil
}

// Load parses and lowers a repository given as file path → source text.
// Paths use the OS separator; org.pam files name the org of their
// directory.
func Load(srcs map[string]string) *Repository {
	repo := &Repository{}
	paths := make([]string, 0, len(srcs))
	for p := range srcs {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		ast, errs := syntax.ParseFile(p, srcs[p])
		for _, e := range errs {
			repo.Diags.add(SevError, p, e.Pos, e.Hint, "%s", e.Msg)
		}
		repo.Files = append(repo.Files, &SourceFile{Path: p, Src: srcs[p], AST: ast})
	}
	parseErrs := slices.Clone(repo.Diags)
	// Org of each file: its own declaration, else the nearest org.pam above.
	dirOrg := map[string]string{}
	own := map[*SourceFile]string{}
	for _, f := range repo.Files {
		var seen *syntax.Block
		for i, d := range f.AST.Decls {
			if d.Kind != syntax.KindOrg {
				continue
			}
			switch {
			case seen != nil:
				repo.Diags.add(SevError, f.Path, d.KwPos, "a file belongs to one org", "second org declaration (first at %s)", seen.KwPos)
			case i > 0:
				repo.Diags.add(SevError, f.Path, d.KwPos, "move it to the top of the file", "the org declaration must come before everything else")
			}
			if seen == nil {
				seen = d
				own[f] = d.Label.Value
				if filepath.Base(f.Path) == orgFile {
					dirOrg[filepath.Dir(f.Path)] = d.Label.Value
				}
			}
		}
	}
	orgs := map[string]*Org{}
	for _, f := range repo.Files {
		org, ok := own[f]
		for dir := filepath.Dir(f.Path); !ok; dir = filepath.Dir(dir) {
			org, ok = dirOrg[dir]
			if next := filepath.Dir(dir); next == dir {
				break
			}
		}
		f.Org = org
		if orgs[org] == nil {
			orgs[org] = &Org{Name: org}
		}
	}
	names := make([]string, 0, len(orgs))
	for n := range orgs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		o := orgs[n]
		repo.Orgs = append(repo.Orgs, o)
		l := &lowerer{repo: repo, org: o, parseErrs: parseErrs}
		l.lower(repo.filesOf(n))
	}
	repo.Diags.Sort()
	return repo
}

func (r *Repository) filesOf(org string) []*SourceFile {
	var out []*SourceFile
	for _, f := range r.Files {
		if f.Org == org {
			out = append(out, f)
		}
	}
	return out
}

// DerivedID is the stable UUID a declaration without an explicit id gets:
// derived from its kind, org and name, so exports and references do not
// change between runs.
func DerivedID(kind, org, name string) string {
	h := sha256.Sum256([]byte("elevate\x00" + kind + "\x00" + org + "\x00" + name))
	h[6] = h[6]&0x0f | 0x80 // version 8: custom
	h[8] = h[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// policyEpoch dates rule-file assignments: resolution breaks a tie of
// level and priority by the earlier assignment, and in rule files the
// earlier is the one declared first. Rule files have no dates, so these are
// the only ones.
var policyEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// FilePolicies are the org's policies as the hierarchy resolves them: given
// to the org the files name (every organisation when they name none), with
// ids derived from their names where the files give none and assignments
// dated in declaration order, counted on from *seq across the orgs of a
// repository. Their targets stay as written: ids or names.
func FilePolicies(org *Org, seq *int) []policy.Policy {
	ps := make([]policy.Policy, len(org.Policies))
	n := seq
	if n == nil {
		n = new(int)
	}
	for i, p := range org.Policies {
		p.FromFiles, p.FileOrg, p.OrgID, p.PartnerID = true, org.Name, "", ""
		if p.ID == "" {
			p.ID = DerivedID("policy", org.Name, p.Name)
		}
		p.Assignments = slices.Clone(p.Assignments)
		for j := range p.Assignments {
			p.Assignments[j].CreatedAt = policyEpoch.Add(time.Duration(*n) * time.Second)
			*n++
		}
		ps[i] = p
	}
	return ps
}
