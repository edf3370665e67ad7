package server

import (
	"math"
	"sync"
	"time"
)

// limiter is a token bucket per key (pam-semantics §14.1: burst 600,
// 10 per second sustained). A refused attempt takes no token, so it does
// not delay the bucket's refill. It is in-process, so it cannot be "down".
type limiter struct {
	burst, rate float64
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(burst, rate float64, now func() time.Time) *limiter {
	return &limiter{burst: burst, rate: rate, now: now, buckets: map[string]*bucket{}}
}

// allow takes a token for key, or says how long until one is there.
func (l *limiter) allow(key string) (ok bool, retry time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
		if len(l.buckets) > 1<<20 { // bound memory: forget full buckets
			for k, v := range l.buckets {
				if v.tokens+now.Sub(v.at).Seconds()*l.rate >= l.burst {
					delete(l.buckets, k)
				}
			}
			l.buckets[key] = b
		}
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}
