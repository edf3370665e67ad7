package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/store"
)

// The OpenAPI document (openapi.json) is checked three ways: it must be a
// valid OpenAPI document that keeps the API's conventions; its paths and
// the server's routes must be the same set; and every response any test of
// this package gets from a test server (every handler newEnv builds is
// wrapped, see testHandlerWraps) must be one the document describes —
// status, content type, headers and body schema. A request body the server
// accepted must also fit the documented request schema, so that the
// document is never stricter than the server.

var openapiSpec struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error
}

// loadOpenAPI parses and validates the embedded document once.
func loadOpenAPI() (*openapi3.T, routers.Router, error) {
	o := &openapiSpec
	o.once.Do(func() {
		// Ids are UUIDs; kin-openapi checks format "uuid" only when asked.
		openapi3.DefineStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562))
		doc, err := openapi3.NewLoader().LoadFromData(openapiDocument)
		if err != nil {
			o.err = err
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			o.err = err
			return
		}
		o.doc = doc
		o.router, o.err = gorillamux.NewRouter(doc)
	})
	return o.doc, o.router, o.err
}

func init() {
	testHandlerWraps = append(testHandlerWraps, openapiResponseCheck)
}

// openapiResponseCheck wraps a test server's handler: each response is
// buffered, checked against the document (failures are errors of the test
// that made the request), then sent on unchanged. The check is done before
// the client sees a byte, so it always ends inside that test.
func openapiResponseCheck(t *testing.T, h http.Handler) http.Handler {
	srv, _ := h.(*Server)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// The request body is kept for checkOpenAPIRequestBody; the handler
		// reads the same bytes, and the same error if reading failed.
		var reqBody []byte
		if req.Body != nil && req.Body != http.NoBody {
			b, err := io.ReadAll(req.Body)
			reqBody = b
			var rest io.Reader = bytes.NewReader(b)
			if err != nil {
				rest = io.MultiReader(rest, errReader{err})
			}
			req.Body = io.NopCloser(rest)
		}
		rec := &bufferedResponse{header: http.Header{}}
		h.ServeHTTP(rec, req)
		if !rec.wrote {
			rec.WriteHeader(http.StatusOK)
		}
		if srv != nil && testOnlyRoute(srv, req) {
			checkTestRouteResponse(t, req, rec.status, rec.sent, rec.body.Bytes())
		} else {
			checkOpenAPIResponse(t, req, rec.status, rec.sent, rec.body.Bytes())
		}
		if rec.status/100 == 2 {
			checkOpenAPIRequestBody(t, req, reqBody)
		}
		for k, v := range rec.sent {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		w.Write(rec.body.Bytes())
	})
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// bufferedResponse records a response: the headers as they were when the
// status was written, and the body.
type bufferedResponse struct {
	header http.Header
	sent   http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.wrote {
		return
	}
	b.wrote, b.status, b.sent = true, code, b.header.Clone()
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if !b.wrote {
		b.WriteHeader(http.StatusOK)
	}
	return b.body.Write(p)
}

// Flush is a no-op: everything is sent once the handler returns.
func (b *bufferedResponse) Flush() {}

// reporter is what the check reports to: the *testing.T of the test that
// made the request.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// checkOpenAPIResponse reports a response the document does not describe.
// A request the document has no operation for must have been refused by
// the router: 404 NOT_FOUND for an unknown path, 405 METHOD_NOT_ALLOWED
// for a known path with another method (or 400 UNSUPPORTED_VERSION, which
// comes before routing), each in the error envelope.
func checkOpenAPIResponse(t reporter, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	doc, router, err := loadOpenAPI()
	if err != nil {
		t.Errorf("openapi: the document does not load: %v", err)
		return
	}
	what := req.Method + " " + req.URL.RequestURI()
	if req.Method == http.MethodHead {
		return // no body to check
	}
	if req.Method == http.MethodOptions && req.Header.Get("Origin") != "" && req.Header.Get("Access-Control-Request-Method") != "" {
		checkPreflight(t, doc, what, status, header, body)
		return
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		want := map[int]string{http.StatusBadRequest: "UNSUPPORTED_VERSION"}
		switch {
		case errors.Is(err, routers.ErrPathNotFound):
			want[http.StatusNotFound] = "NOT_FOUND"
		case errors.Is(err, routers.ErrMethodNotAllowed):
			want[http.StatusMethodNotAllowed] = "METHOD_NOT_ALLOWED"
		default:
			t.Errorf("openapi: %s: finding the operation: %v", what, err)
			return
		}
		var v any
		if derr := json.Unmarshal(body, &v); derr != nil {
			t.Errorf("openapi: %s → %d, which has no operation in the document, and the body is not JSON: %q", what, status, body)
			return
		}
		obj, _ := v.(map[string]any)
		eb, _ := obj["error"].(map[string]any)
		code, _ := eb["code"].(string)
		if want[status] == "" || code != want[status] {
			t.Errorf("openapi: %s has no operation in the document (%v) but answered %d %q: %s", what, err, status, code, body)
			return
		}
		if ct := header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("openapi: %s → %d: Content-Type %q", what, status, ct)
		}
		if err := doc.Components.Schemas["ErrorEnvelope"].Value.VisitJSON(v); err != nil {
			t.Errorf("openapi: %s → %d: not the error envelope: %v\n%s", what, status, err, body)
		}
		return
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	opts.WithCustomSchemaErrorFunc(func(err *openapi3.SchemaError) string {
		return "at /" + strings.Join(err.JSONPointer(), "/") + ": " + err.Reason // without the schema dump
	})
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		if len(body) > 2000 {
			body = append(body[:2000:2000], "…"...)
		}
		t.Errorf("openapi: %s (operation %s) → %d does not match the document: %v\nbody: %s",
			what, route.Operation.OperationID, status, err, body)
	}
}

// testOnlyRoute reports whether req is for a route a test added to the
// server's router itself (to exercise the timeout or panic handling):
// one the router serves that the document does not describe. Real routes
// cannot hide here: TestOpenAPICoversRoutes holds every registered route
// to the document.
func testOnlyRoute(srv *Server, req *http.Request) bool {
	_, router, err := loadOpenAPI()
	if err != nil {
		return false
	}
	if _, _, err := router.FindRoute(req); err == nil {
		return false
	}
	h, _, _ := srv.router.Lookup(req.Method, req.URL.Path)
	if h == nil {
		return false
	}
	for _, r := range srv.Routes() {
		if r.Method == req.Method && matchesPattern(r.Path, req.URL.Path) {
			return false
		}
	}
	return true
}

// matchesPattern reports whether path fits an httprouter pattern with
// :param segments.
func matchesPattern(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if !strings.HasPrefix(ps[i], ":") && ps[i] != xs[i] {
			return false
		}
	}
	return true
}

// checkTestRouteResponse checks what the server itself adds to a
// test-only route's answer: an error is the envelope.
func checkTestRouteResponse(t reporter, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	if status < 400 {
		return
	}
	doc, _, err := loadOpenAPI()
	if err != nil {
		return
	}
	var v any
	if err = json.Unmarshal(body, &v); err == nil {
		err = doc.Components.Schemas["ErrorEnvelope"].Value.VisitJSON(v)
	}
	if err != nil || header.Get("Content-Type") != "application/json" {
		t.Errorf("openapi: %s %s (a test-only route) → %d is not the error envelope (%v): %s", req.Method, req.URL.RequestURI(), status, err, body)
	}
}

// checkPreflight checks the answer to a CORS preflight, which the server
// gives before routing (the document describes CORS in its introduction,
// not as OPTIONS operations): 204 without a body for an allowed origin,
// else 403 CORS_ORIGIN_DENIED in the error envelope.
func checkPreflight(t reporter, doc *openapi3.T, what string, status int, header http.Header, body []byte) {
	t.Helper()
	switch status {
	case http.StatusNoContent:
		if len(body) != 0 || header.Get("Access-Control-Allow-Origin") == "" || header.Get("Access-Control-Allow-Methods") == "" {
			t.Errorf("openapi: preflight %s → 204 without the CORS headers or with a body: %v %q", what, header, body)
		}
	case http.StatusForbidden:
		var v any
		err := json.Unmarshal(body, &v)
		if err == nil {
			err = doc.Components.Schemas["ErrorEnvelope"].Value.VisitJSON(v)
		}
		if err != nil || !strings.Contains(string(body), `"CORS_ORIGIN_DENIED"`) || header.Get("Content-Type") != "application/json" {
			t.Errorf("openapi: preflight %s → 403 not in the error envelope with CORS_ORIGIN_DENIED (%v): %s", what, err, body)
		}
	default:
		t.Errorf("openapi: preflight %s → %d (want 204, or 403 CORS_ORIGIN_DENIED): %s", what, status, body)
	}
}

// checkOpenAPIRequestBody reports a request body the server accepted but
// the document's request schema refuses: a schema stricter than the
// server. (Refused requests are not checked: tests send invalid bodies on
// purpose.)
func checkOpenAPIRequestBody(t reporter, req *http.Request, body []byte) {
	t.Helper()
	_, router, err := loadOpenAPI()
	if err != nil {
		return // reported with the response
	}
	route, params, err := router.FindRoute(req)
	if err != nil || route.Operation.RequestBody == nil || len(body) == 0 {
		return
	}
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(body))
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{MultiError: true, SkipSettingDefaults: true}}
	in.Options.WithCustomSchemaErrorFunc(func(err *openapi3.SchemaError) string {
		return "at /" + strings.Join(err.JSONPointer(), "/") + ": " + err.Reason
	})
	if err := openapi3filter.ValidateRequestBody(context.Background(), in, route.Operation.RequestBody.Value); err != nil {
		t.Errorf("openapi: %s %s (operation %s) was accepted, but the document's request body schema refuses it: %v\nbody: %s",
			req.Method, req.URL.RequestURI(), route.Operation.OperationID, err, body)
	}
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	if _, _, err := loadOpenAPI(); err != nil {
		t.Fatal(err)
	}
	// The loader is lenient about JSON it does not know: the document must
	// also be plain JSON without duplicate keys, which a hand-edited file
	// can pick up.
	if err := checkDuplicateKeys(json.NewDecoder(bytes.NewReader(openapiDocument))); err != nil {
		t.Fatal(err)
	}
}

// checkDuplicateKeys walks one JSON value and reports an object with the
// same key twice.
func checkDuplicateKeys(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key := k.(string)
			if seen[key] {
				return errors.New("duplicate key " + key)
			}
			seen[key] = true
			if err := checkDuplicateKeys(dec); err != nil {
				return errors.New(key + ": " + err.Error())
			}
		}
		_, err = dec.Token()
	case json.Delim('['):
		for dec.More() {
			if err := checkDuplicateKeys(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	}
	return err
}

// openAPIServer builds a server with every surface on and a fake clock, so
// that every route is registered.
func openAPIServer(t *testing.T) *Server {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := lifecycle.NewFakeClock(t0)
	lc := lifecycle.New(lifecycle.Config{Store: st, Clock: clock})
	surfaces := map[string]bool{}
	for _, s := range []string{SurfaceAgent, SurfacePAM, SurfaceInventory, SurfaceDebug, SurfaceMetrics, SurfaceOpenAPI} {
		surfaces[s] = true
	}
	return New(Config{Lifecycle: lc, FakeClock: clock, JWTSecret: secret, Surfaces: surfaces,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

var routeParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

// TestOpenAPICoversRoutes: every registered route is documented and every
// documented operation is registered.
func TestOpenAPICoversRoutes(t *testing.T) {
	doc, _, err := loadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	registered := map[string]bool{}
	for _, r := range openAPIServer(t).Routes() {
		key := r.Method + " " + routeParam.ReplaceAllString(r.Path, "{$1}")
		if registered[key] {
			t.Errorf("route %s is registered twice", key)
		}
		registered[key] = true
		if !documented[key] {
			t.Errorf("route %s (surface %q) is not in openapi.json", key, r.Surface)
		}
	}
	for key := range documented {
		if !registered[key] {
			t.Errorf("openapi.json documents %s, which the server does not register", key)
		}
	}
}

// TestOpenAPIConventions holds the document to the API's conventions, so
// that an operation added later cannot leave out the answers every route
// can give.
func TestOpenAPIConventions(t *testing.T) {
	doc, _, err := loadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	public := map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /openapi.json": true, "GET /metrics": true}
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		hasVersion := func(ps openapi3.Parameters) bool {
			return slices.ContainsFunc(ps, func(p *openapi3.ParameterRef) bool { return p.Value.In == "query" && p.Value.Name == "v" })
		}
		for method, op := range item.Operations() {
			key := method + " " + path
			if op.OperationID == "" || ids[op.OperationID] != "" {
				t.Errorf("%s: operationId %q is missing or also used by %s", key, op.OperationID, ids[op.OperationID])
			}
			ids[op.OperationID] = key
			if op.Summary == "" || op.Description == "" {
				t.Errorf("%s: no summary or description", key)
			}
			if !hasVersion(item.Parameters) && !hasVersion(op.Parameters) {
				t.Errorf("%s: the v parameter is not declared", key)
			}
			need := []int{400, 408, 500}
			if op.Security == nil {
				t.Errorf("%s: no security requirement (use [] for a public route)", key)
			} else if len(*op.Security) == 0 != public[key] {
				t.Errorf("%s: public is %v, security is %v", key, public[key], *op.Security)
			} else if len(*op.Security) > 0 {
				need = append(need, 401, 403, 503) // checking a credential reads the store
			}
			if method != http.MethodGet {
				need = append(need, 415)
			}
			if op.RequestBody != nil {
				need = append(need, 413)
			}
			for _, code := range need {
				if op.Responses.Status(code) == nil {
					t.Errorf("%s: response %d is not documented", key, code)
				}
			}
			if op.Responses.Default() != nil {
				t.Errorf("%s: a default response would hide undocumented statuses", key)
			}
			for code, rr := range op.Responses.Map() {
				r := rr.Value
				if len(r.Content) == 0 {
					t.Errorf("%s %s: no content", key, code)
					continue
				}
				if code[0] >= '4' {
					// Errors are the envelope; only /metrics may also
					// fail in text (the Prometheus handler's own 500).
					mt := r.Content["application/json"]
					if mt == nil || mt.Schema.Ref != "#/components/schemas/ErrorEnvelope" ||
						len(r.Content) != 1 && !(key == "GET /metrics" && code == "500" && len(r.Content) == 2 && r.Content["text/plain"] != nil) {
						t.Errorf("%s %s: an error must be the ErrorEnvelope", key, code)
					}
				}
			}
		}
	}
}

// TestOpenAPIServed: GET /openapi.json answers the embedded document.
func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t, Config{})
	r := e.do(t, "GET", "/openapi.json", "", "", nil)
	if r.status == http.StatusNotFound {
		t.Skip("GET /openapi.json is not registered: server.New must call s.openapiRoutes()")
	}
	if r.status != http.StatusOK || r.raw != string(openapiDocument) {
		t.Fatalf("%d, %d bytes (want the %d of openapi.json)", r.status, len(r.raw), len(openapiDocument))
	}
	off := newEnv(t, Config{Surfaces: map[string]bool{SurfaceOpenAPI: false}})
	if r := off.do(t, "GET", "/openapi.json", "", "", nil); r.status != http.StatusNotFound {
		t.Fatalf("surface off: %d", r.status)
	}
}

// TestOpenAPICheckCatchesMismatches makes sure the response check is not
// vacuous: responses the document does not describe are reported.
func TestOpenAPICheckCatchesMismatches(t *testing.T) {
	for name, c := range map[string]struct {
		method, path string
		status       int
		ct, body     string
	}{
		"undocumented status":     {"GET", "/healthz", http.StatusTeapot, "application/json", `{"status":"ok"}`},
		"wrong body":              {"GET", "/healthz", http.StatusOK, "application/json", `{"status":"fine"}`},
		"wrong content type":      {"GET", "/healthz", http.StatusOK, "text/plain", `ok`},
		"error not in envelope":   {"GET", "/api/v1/pam/active", http.StatusUnauthorized, "application/json", `{"error":"no"}`},
		"missing required field":  {"GET", "/api/v1/pam/active", http.StatusOK, "application/json", `{"success":true}`},
		"null where not nullable": {"GET", "/api/v1/orgs", http.StatusOK, "application/json", `{"success":true,"orgs":[{"id":"0190e3f0-0000-7000-8000-000000000001","partnerId":null,"name":null,"createdAt":null,"pam":{"defaultUnmatchedVerdict":"auto_deny","uacInterceptionEnabled":null,"actuatorEnabled":true}}],"pagination":{"page":1,"limit":50,"total":1}}`},
		"unknown path not 404":    {"GET", "/nowhere", http.StatusOK, "application/json", `{"success":true}`},
	} {
		ft := &fakeT{}
		req, _ := http.NewRequest(c.method, c.path, nil)
		if c.status == http.StatusUnauthorized {
			// the 401 header is present: only the body is wrong
			checkOpenAPIResponse(ft, req, c.status, http.Header{"Content-Type": {c.ct}, "Www-Authenticate": {`Bearer realm="elevate"`}}, []byte(c.body))
		} else {
			checkOpenAPIResponse(ft, req, c.status, http.Header{"Content-Type": {c.ct}}, []byte(c.body))
		}
		if !ft.failed {
			t.Errorf("%s: not reported", name)
		}
	}
	ft := &fakeT{}
	req, _ := http.NewRequest("GET", "/healthz", nil)
	checkOpenAPIResponse(ft, req, http.StatusOK, http.Header{"Content-Type": {"application/json"}}, []byte(`{"status":"ok"}`))
	if ft.failed {
		t.Errorf("a documented response was reported: %s", ft.msg)
	}
}

// fakeT records what the check reports instead of failing the test.
type fakeT struct {
	failed bool
	msg    string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.failed = true
	f.msg += fmt.Sprintf(format, args...) + "\n"
}
