package server

// inventoryRoutes registers the inventory administration endpoints.
func (s *Server) inventoryRoutes() {}
