package server

import (
	"sync"
	"time"
)

// tokenCacheSize bounds the verified bearer tokens a server remembers. A
// token is a few hundred bytes, so the cache stays under a few megabytes.
const tokenCacheSize = 8192

// tokenCache remembers bearer tokens whose signature and claims were
// verified, so a client that sends the same token on every request pays
// for the signature check and the claims' JSON once. An entry is keyed by
// the whole token text (header, claims and signature), so only the exact
// token that verified can hit it. A hit still checks the token's time
// window against the server clock, and an entry verified with a JWKS key
// set is used only while that key set is current.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]cachedToken
}

type cachedToken struct {
	caller   Caller
	exp, nbf time.Time // nbf zero: no nbf claim
	// keys is the JWKS key set the token verified against (nil for HS256).
	keys *[]jwk
}

// get returns the caller of raw when it verified earlier, is inside its
// time window at now (with tokenLeeway) and, when it needed the JWKS,
// keys is still the key set it verified against.
func (tc *tokenCache) get(raw string, now time.Time, keys *[]jwk) (*Caller, bool) {
	tc.mu.Lock()
	e, ok := tc.m[raw]
	tc.mu.Unlock()
	if !ok || e.keys != nil && e.keys != keys {
		return nil, false
	}
	if !now.Before(e.exp.Add(tokenLeeway)) || !e.nbf.IsZero() && now.Before(e.nbf.Add(-tokenLeeway)) {
		return nil, false
	}
	c := e.caller
	return &c, true
}

// put remembers a verified token; when the cache is full an arbitrary
// entry makes room.
func (tc *tokenCache) put(raw string, e cachedToken) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.m == nil {
		tc.m = make(map[string]cachedToken)
	}
	if _, ok := tc.m[raw]; !ok && len(tc.m) >= tokenCacheSize {
		for k := range tc.m {
			delete(tc.m, k)
			break
		}
	}
	tc.m[raw] = e
}
