package benchmarks

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ---------------------------------------------------------------------------
// HTTP load generator
// ---------------------------------------------------------------------------

// loadTarget is what one client sends, request after request: the same
// method and URL, its bearer token, and its bodies in turn (nil bodies for
// GET). Every answer must have status want and contain wantBody.
type loadTarget struct {
	method, url string
	token       string
	bodies      [][]byte
	want        int
	wantBody    []byte
}

// loadGen drives one server from a fixed set of clients, one goroutine each,
// over a shared keep-alive transport with an idle connection per client.
type loadGen struct {
	client  *http.Client
	tr      *http.Transport
	clients []*loadClient
}

type loadClient struct {
	t    *loadTarget
	next int          // next body
	buf  bytes.Buffer // the answer being read
	lat  []time.Duration
}

func newLoadGen(targets []loadTarget) *loadGen {
	tr := &http.Transport{
		MaxIdleConns:        len(targets) * 2,
		MaxIdleConnsPerHost: len(targets) * 2,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	g := &loadGen{tr: tr, client: &http.Client{Transport: tr, Timeout: time.Minute}}
	for i := range targets {
		g.clients = append(g.clients, &loadClient{t: &targets[i]})
	}
	return g
}

// close drops the idle connections.
func (g *loadGen) close() { g.tr.CloseIdleConnections() }

// do sends one request and checks its answer.
func (g *loadGen) do(c *loadClient) error {
	t := c.t
	var body *bytes.Reader
	var req *http.Request
	var err error
	if len(t.bodies) > 0 {
		body = bytes.NewReader(t.bodies[c.next%len(t.bodies)])
		c.next++
		req, err = http.NewRequest(t.method, t.url, body)
	} else {
		req, err = http.NewRequest(t.method, t.url, nil)
	}
	if err != nil {
		return err
	}
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return err
	}
	c.buf.Reset()
	_, err = c.buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", t.method, t.url, err)
	}
	if resp.StatusCode != t.want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", t.method, t.url, resp.StatusCode, t.want, c.buf.Bytes())
	}
	if !bytes.Contains(c.buf.Bytes(), t.wantBody) {
		return fmt.Errorf("%s %s: answer lacks %s: %s", t.method, t.url, t.wantBody, c.buf.Bytes())
	}
	return nil
}

// each runs fn(client index, client) on every client at once and returns
// the first error.
func (g *loadGen) each(fn func(int, *loadClient) error) error {
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	for i, c := range g.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(i, c); err != nil {
				first.CompareAndSwap(nil, &err)
			}
		}()
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return *e
	}
	return nil
}

// warm sends n untimed requests from every client: connections are open
// and caches (the compiled rule set) are built before the timed run.
func (g *loadGen) warm(n int) error {
	return g.each(func(_ int, c *loadClient) error {
		for range n {
			if err := g.do(c); err != nil {
				return err
			}
		}
		return nil
	})
}

// loadResult is one timed run: n requests answered in wall time, and each
// request's latency (from building the request to the answer's last byte).
type loadResult struct {
	n    int
	wall time.Duration
	lat  []time.Duration // sorted
}

// run sends n requests split evenly among the clients (the first n mod
// clients send one more), all clients at once, and times them. A client
// stops at its first failed request, the others at their next one.
func (g *loadGen) run(n int) (loadResult, error) {
	k := len(g.clients)
	for i, c := range g.clients {
		share := n / k
		if i < n%k {
			share++
		}
		c.lat = make([]time.Duration, 0, share)
	}
	var stop atomic.Bool
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, k)
	for i, c := range g.clients {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			for len(c.lat) < cap(c.lat) && !stop.Load() {
				t0 := time.Now()
				if err := g.do(c); err != nil {
					errs[i] = err
					stop.Store(true)
					return
				}
				c.lat = append(c.lat, time.Since(t0))
			}
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	done.Wait()
	res := loadResult{wall: time.Since(t0)}
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	for _, c := range g.clients {
		res.lat = append(res.lat, c.lat...)
	}
	res.n = len(res.lat)
	if res.n != n {
		return res, fmt.Errorf("%d requests answered, want %d", res.n, n)
	}
	slices.Sort(res.lat)
	return res, nil
}

// quantile is the nearest-rank q-quantile of the sorted latencies.
func (r loadResult) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(r.lat)))) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

// perSecond is the run's throughput in requests per second.
func (r loadResult) perSecond() float64 {
	if r.wall <= 0 {
		return 0
	}
	return float64(r.n) / r.wall.Seconds()
}
