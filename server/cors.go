package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CORSConfig says which foreign origins may call the API from a browser.
// A nil *CORSConfig allows none: the API is then same-origin only and no
// CORS header is ever sent.
type CORSConfig struct {
	// AllowedOrigins are the origins ("https://console.example.com", no
	// path) whose pages may call the API. "*" allows every origin, and only
	// without credentials.
	AllowedOrigins []string
	// AllowedHeaders are the request headers a page may send; empty means
	// Authorization, Content-Type and X-API-Key.
	AllowedHeaders []string
	// ExposedHeaders are the response headers a page may read beyond the
	// CORS-safelisted ones (Retry-After, X-Correlation-Id, …).
	ExposedHeaders []string
	// AllowCredentials lets pages send cookies and HTTP authentication
	// with their requests and read the answers.
	AllowCredentials bool
	// MaxAge is how long a browser may cache a preflight answer (whole
	// seconds; browsers cap it, Chromium at two hours); 0 means
	// DefaultCORSMaxAge.
	MaxAge time.Duration
}

// defaultCORSHeaders are the request headers allowed when AllowedHeaders
// is empty.
var defaultCORSHeaders = []string{"Authorization", "Content-Type", "X-API-Key"}

// DefaultCORSMaxAge is how long browsers may cache a preflight answer when
// CORSConfig.MaxAge is 0.
const DefaultCORSMaxAge = 10 * time.Minute

// Validate reports a configuration that cannot work or would be unsafe:
// no origin at all, an origin that is not scheme://host[:port], the
// "null" origin, "*" together with credentials, header names that are not
// tokens, a negative MaxAge. A nil configuration (no CORS) is valid.
func (c *CORSConfig) Validate() error {
	if c == nil {
		return nil
	}
	var errs []error
	if len(c.AllowedOrigins) == 0 {
		errs = append(errs, errors.New("cors: AllowedOrigins is empty; name at least one origin (or configure no CORS)"))
	}
	for i, o := range c.AllowedOrigins {
		if o == "*" {
			if c.AllowCredentials {
				errs = append(errs, errors.New(`cors: AllowedOrigins: "*" cannot be combined with AllowCredentials; list the origins instead`))
			}
			continue
		}
		if _, err := normalOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("cors: AllowedOrigins[%d] %q: %w", i, o, err))
		}
	}
	for _, list := range []struct {
		name  string
		names []string
	}{{"AllowedHeaders", c.AllowedHeaders}, {"ExposedHeaders", c.ExposedHeaders}} {
		for i, h := range list.names {
			if !isToken(h) {
				errs = append(errs, fmt.Errorf("cors: %s[%d] %q: not a header name", list.name, i, h))
			}
		}
	}
	if c.MaxAge < 0 {
		errs = append(errs, errors.New("cors: MaxAge must not be negative"))
	}
	return errors.Join(errs...)
}

// normalOrigin checks an origin and returns it as browsers send it: lower
// case, without the scheme's default port.
func normalOrigin(o string) (string, error) {
	if strings.EqualFold(o, "null") {
		return "", errors.New(`the "null" origin (sandboxed frames, local files) cannot be allowed`)
	}
	u, err := url.Parse(o)
	if err != nil {
		return "", errors.New("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return "", errors.New("the scheme must be http or https")
	case u.Host == "" || u.Opaque != "" || u.User != nil:
		return "", errors.New("must be scheme://host[:port]")
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.HasSuffix(o, "#"):
		return "", errors.New("an origin has no path (not even a trailing /), query or fragment")
	}
	host := strings.ToLower(u.Host)
	if scheme == "https" {
		host = strings.TrimSuffix(host, ":443")
	} else {
		host = strings.TrimSuffix(host, ":80")
	}
	return scheme + "://" + host, nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// corsPolicy is a CORSConfig prepared for answering requests; the header
// values are built once and shared (read-only, so a handler adding to the
// same header gets a copy).
type corsPolicy struct {
	any         bool // "*": every origin, answered with "*"
	origins     map[string]bool
	credentials bool
	methods     []string
	headers     []string
	expose      []string
	maxAge      []string
}

func headerValue(v string) []string { return []string{v}[:1:1] }

func newCORSPolicy(c *CORSConfig, routes []Route) *corsPolicy {
	p := &corsPolicy{origins: map[string]bool{}, credentials: c.AllowCredentials}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			// With credentials "*" is refused by Validate; should it get
			// here anyway, it allows nothing rather than everything.
			p.any = !c.AllowCredentials
			continue
		}
		if n, err := normalOrigin(o); err == nil {
			p.origins[n] = true
		}
	}
	var methods []string
	for _, r := range routes {
		if !slices.Contains(methods, r.Method) {
			methods = append(methods, r.Method)
		}
	}
	slices.Sort(methods)
	p.methods = headerValue(strings.Join(methods, ", "))
	headers := c.AllowedHeaders
	if len(headers) == 0 {
		headers = defaultCORSHeaders
	}
	p.headers = headerValue(strings.Join(headers, ", "))
	if len(c.ExposedHeaders) > 0 {
		p.expose = headerValue(strings.Join(c.ExposedHeaders, ", "))
	}
	maxAge := c.MaxAge
	if maxAge == 0 {
		maxAge = DefaultCORSMaxAge
	}
	if secs := int64(maxAge / time.Second); secs > 0 {
		p.maxAge = headerValue(strconv.FormatInt(secs, 10))
	}
	return p
}

var (
	corsTrue     = headerValue("true")
	corsWildcard = headerValue("*")
	varyOrigin   = headerValue("Origin")
)

// cors answers preflight requests and adds the CORS headers.
//
// With a nil configuration the handler is passed through untouched. A
// preflight (OPTIONS with Origin and Access-Control-Request-Method) from
// an allowed origin is answered here with 204, from any other origin with
// 403 and no CORS headers. Other requests are always served; those from an
// allowed origin carry Access-Control-Allow-Origin (and the credentials
// and exposed-headers answers), others nothing, so the browser keeps the
// response from the foreign page.
func (s *Server) cors(next http.Handler) http.Handler {
	c := s.conf.CORS
	if c == nil {
		return next
	}
	if err := c.Validate(); err != nil {
		s.log.Error("CORS configuration is invalid; the invalid entries allow nothing", "error", err.Error())
	}
	p := newCORSPolicy(c, s.routes)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := w.Header()
		if !p.any {
			// The answer depends on Origin, so caches must key on it, also
			// for requests without one.
			if _, ok := h["Vary"]; ok {
				h.Add("Vary", "Origin")
			} else {
				h["Vary"] = varyOrigin
			}
		}
		origin := req.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, req)
			return
		}
		allowed := p.any || p.origins[origin]
		if req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != "" {
			if !allowed {
				s.fail(w, req, &apiError{Status: http.StatusForbidden, Code: "CORS_ORIGIN_DENIED",
					Message: "cross-origin requests from this origin are not allowed"})
				return
			}
			p.allow(h, origin)
			h["Access-Control-Allow-Methods"] = p.methods
			h["Access-Control-Allow-Headers"] = p.headers
			if p.maxAge != nil {
				h["Access-Control-Max-Age"] = p.maxAge
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allowed {
			p.allow(h, origin)
			if p.expose != nil {
				h["Access-Control-Expose-Headers"] = p.expose
			}
		}
		next.ServeHTTP(w, req)
	})
}

func (p *corsPolicy) allow(h http.Header, origin string) {
	if p.any {
		h["Access-Control-Allow-Origin"] = corsWildcard
	} else {
		h["Access-Control-Allow-Origin"] = []string{origin}
	}
	if p.credentials {
		h["Access-Control-Allow-Credentials"] = corsTrue
	}
}
