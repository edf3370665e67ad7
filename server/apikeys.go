package server

// authRoutes registers the API-key endpoints.
func (s *Server) authRoutes() {}
