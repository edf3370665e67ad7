package server

// systemRoutes registers /metrics and the system-scope administration
// endpoints (log level).
func (s *Server) systemRoutes() {}
