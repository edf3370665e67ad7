package server

import (
	"time"

	"github.com/julienschmidt/httprouter"
)

// instrument wraps a route's handler with its metrics.
func (s *Server) instrument(route string, h httprouter.Handle) httprouter.Handle { return h }

// recordDecision counts one engine decision (flow, outcome) and the time
// the evaluation took.
func (s *Server) recordDecision(flow, outcome string, eval time.Duration) {}

// recordRuleReload notes the outcome of loading the rule files.
func (s *Server) recordRuleReload(ok bool, at time.Time) {}
