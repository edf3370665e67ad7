package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/elevate-pam/elevate/dsl"
	"github.com/elevate-pam/elevate/lifecycle"
)

// ruleFiles is the state of the rule-file repository the server serves
// beside the API-managed rules.
type ruleFiles struct {
	dir string

	mu       sync.Mutex
	sig      string    // fingerprint of the files last loaded or tried
	gen      uint64    // lifecycle generation of the set in use
	goodAt   time.Time // when the set in use was loaded
	failedAt time.Time // when the last failed attempt was (zero: the last attempt loaded)
	lastErr  string
}

// RuleFileStatus says how the rule files stand.
type RuleFileStatus struct {
	Dir        string    `json:"dir"`
	OK         bool      `json:"ok"` // the last attempt loaded
	Generation uint64    `json:"generation"`
	LoadedAt   time.Time `json:"loadedAt,omitzero"`
	FailedAt   time.Time `json:"failedAt,omitzero"`
	Error      string    `json:"error,omitempty"`
}

// RuleFileStatus reports the rule files' state; ok is false when the
// server has no rule directory.
func (s *Server) RuleFileStatus() (RuleFileStatus, bool) {
	rf := s.files
	if rf == nil {
		return RuleFileStatus{}, false
	}
	rf.mu.Lock()
	defer rf.mu.Unlock()
	return RuleFileStatus{Dir: rf.dir, OK: rf.failedAt.IsZero(), Generation: rf.gen, LoadedAt: rf.goodAt, FailedAt: rf.failedAt, Error: rf.lastErr}, true
}

// LoadRuleFiles compiles the rule directory (Config.RulesDir) and its
// tests, and on success makes it the file part of every organisation's
// rule set. On failure the set in use stays and the error (diagnostics
// with file:line:col) is returned. Unchanged files are not reloaded.
func (s *Server) LoadRuleFiles() error {
	rf := s.files
	if rf == nil {
		return nil
	}
	rf.mu.Lock()
	defer rf.mu.Unlock()
	sig, err := fingerprint(rf.dir)
	if err == nil && sig == rf.sig {
		if rf.failedAt.IsZero() {
			return nil
		}
		return fmt.Errorf("%s", rf.lastErr)
	}
	rf.sig = sig
	if err == nil {
		var orgs []lifecycle.FileOrg
		if orgs, err = CompileRuleDir(rf.dir); err == nil {
			rf.gen = s.lc.SetFileRules(orgs)
			rf.goodAt, rf.failedAt, rf.lastErr = s.lc.Clock().Now(), time.Time{}, ""
			s.log.Info("rule files loaded", "dir", rf.dir, "generation", rf.gen, "orgs", len(orgs))
			s.recordRuleReload(true, rf.goodAt)
			return nil
		}
	}
	rf.failedAt, rf.lastErr = s.lc.Clock().Now(), err.Error()
	s.log.Error("rule files not loaded; the last good set stays in use", "dir", rf.dir, "generation", rf.gen, "error", rf.lastErr)
	s.recordRuleReload(false, rf.failedAt)
	return err
}

// WatchRuleFiles reloads the rule files whenever they change (checked
// every interval) until ctx ends.
func (s *Server) WatchRuleFiles(ctx context.Context, every time.Duration) {
	if s.files == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.LoadRuleFiles() // failures are logged and counted
		}
	}
}

// CompileRuleDir loads the repository, compiles it and runs its tests:
// any error diagnostic or failing test refuses the whole set.
func CompileRuleDir(dir string) ([]lifecycle.FileOrg, error) {
	repo, err := dsl.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	rep := dsl.Check(repo, dsl.CheckOptions{})
	if n := rep.Diags.Errors(); n > 0 {
		var buf bytes.Buffer
		dsl.Render(&buf, rep.Diags, repo.Sources())
		return nil, fmt.Errorf("%d error(s) in the rule files:\n%s", n, strings.TrimSpace(buf.String()))
	}
	if n := rep.Failed(); n > 0 {
		var names []string
		for _, t := range rep.Tests {
			if !t.Passed {
				names = append(names, t.Name)
			}
		}
		return nil, fmt.Errorf("%d rule-file test(s) failed: %s", n, strings.Join(names, ", "))
	}
	orgs := make([]lifecycle.FileOrg, 0, len(repo.Orgs))
	seq := 0 // declaration order of policy assignments across the repository
	for _, o := range repo.Orgs {
		fo := lifecycle.FileOrg{Org: o.Name, Rules: o.Rules, Groups: o.Groups}
		for _, at := range o.RuleAt {
			// Origins are shown to API callers: relative to the rule
			// directory, never the server's paths.
			if rel, err := filepath.Rel(dir, at.File); err == nil {
				at.File = filepath.ToSlash(rel)
			}
			fo.RuleOrigins = append(fo.RuleOrigins, at.String())
		}
		if o.ConfigAt != nil {
			c := o.Config
			fo.Config = &c
			fo.UACInterception = o.UACInterception
		}
		fo.Policies = dsl.FilePolicies(o, &seq)
		orgs = append(orgs, fo)
	}
	return orgs, nil
}

// fingerprint summarises the .pam files under dir (their paths and
// contents), so a reload happens only when something changed.
func fingerprint(dir string) (string, error) {
	paths, err := dsl.FindFiles(dir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the listing
			}
			return "", err
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(h, "%s\x00%x\x00", filepath.ToSlash(p), sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
