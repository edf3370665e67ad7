package server

import (
	_ "embed"
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// openapiDocument is the API's OpenAPI description, written by hand beside
// the handlers; openapi_test.go checks it against the routes and checks
// every response of the package's tests against it.
//
//go:embed openapi.json
var openapiDocument []byte

// openapiRoutes registers GET /openapi.json: the document, with no
// authentication, under its own surface.
func (s *Server) openapiRoutes() {
	s.route("GET", "/openapi.json", SurfaceOpenAPI, s.handle(s.serveOpenAPI))
}

func (s *Server) serveOpenAPI(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(openapiDocument)
	return nil
}
