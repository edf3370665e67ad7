package server

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CORSConfig says which foreign origins may call the API from a browser.
// A nil configuration allows none (no CORS headers are sent).
type CORSConfig struct {
	// AllowedOrigins lists origins ("https://admin.example.com") that may
	// call; "*" allows any origin, but only without credentials.
	AllowedOrigins []string
	// AllowedHeaders are the request headers a cross-origin request may
	// send; empty means Authorization, Content-Type and X-API-Key.
	AllowedHeaders []string
	// ExposedHeaders are response headers the browser may show the page.
	ExposedHeaders []string
	// AllowCredentials lets the browser send cookies and authorization.
	AllowCredentials bool
	// MaxAge is how long a browser may cache a preflight answer
	// (0: ten minutes).
	MaxAge time.Duration
}

// Validate refuses settings a browser would reject or that would be
// unsafe: no origins, a wildcard with credentials, an origin that is not
// scheme://host[:port].
func (c *CORSConfig) Validate() error {
	if len(c.AllowedOrigins) == 0 {
		return errors.New("cors: name at least one allowed origin")
	}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			if c.AllowCredentials {
				return errors.New("cors: the wildcard origin cannot be combined with credentials; list the origins")
			}
			continue
		}
		scheme, rest, ok := strings.Cut(o, "://")
		if !ok || scheme != "http" && scheme != "https" || rest == "" || strings.ContainsAny(rest, "/?#*") {
			return errors.New("cors: origin " + strconv.Quote(o) + " is not scheme://host[:port]")
		}
	}
	return nil
}

const corsMethods = "GET, POST, PUT, PATCH, DELETE"

// cors answers preflight requests and adds the CORS headers to answers
// for allowed origins. Requests from other origins are served without
// CORS headers (the browser then hides the answer); their preflights are
// refused with 403.
func (s *Server) cors(next http.Handler) http.Handler {
	c := s.conf.CORS
	if c == nil {
		return next
	}
	headers := c.AllowedHeaders
	if len(headers) == 0 {
		headers = []string{"Authorization", "Content-Type", "X-API-Key"}
	}
	allowHeaders := strings.Join(headers, ", ")
	expose := strings.Join(c.ExposedHeaders, ", ")
	maxAge := c.MaxAge
	if maxAge <= 0 {
		maxAge = 10 * time.Minute
	}
	any := slices.Contains(c.AllowedOrigins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		origin := req.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, req)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		allowed := any || slices.Contains(c.AllowedOrigins, origin)
		preflight := req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != ""
		if preflight {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !allowed {
				h.Set("Content-Type", "application/json")
				s.fail(w, req, &apiError{Status: http.StatusForbidden, Code: "CORS_ORIGIN_DENIED", Message: "this origin may not call the API"})
				return
			}
			corsOrigin(h, origin, any, c.AllowCredentials)
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", allowHeaders)
			h.Set("Access-Control-Max-Age", strconv.Itoa(int(maxAge.Seconds())))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allowed {
			corsOrigin(h, origin, any, c.AllowCredentials)
			if expose != "" {
				h.Set("Access-Control-Expose-Headers", expose)
			}
		}
		next.ServeHTTP(w, req)
	})
}

func corsOrigin(h http.Header, origin string, any, credentials bool) {
	if any && !credentials {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}
