package server

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/go-sdtp/sdtp/llama"
)

// errQueueFull: every slot is busy and the queue holds its limit.
var errQueueFull = errors.New("server busy: all slots are in use and the queue is full")

// slot is one model context that serves one request at a time.
type slot struct {
	id   int
	l    *llama.LLama
	sdtp llama.SDTPOptions // the pruning settings l runs with now
	// history is the request text l's KV cache was last filled from (the
	// prompt and its answer, or a conversation key); a request that starts
	// with it reuses the cache.
	history string
	lastUse uint64
}

// pool hands slots to requests: an idle slot at once, preferring the one
// whose history shares the longest prefix with the request (so follow-up
// turns of a conversation land where their prefix is cached), else a place
// in a bounded FIFO queue.
type pool struct {
	mu      sync.Mutex
	slots   []*slot
	idle    []*slot
	waiters []chan *slot // FIFO; each is buffered (1)
	queue   int          // most requests waiting
	uses    uint64
	avgHold time.Duration           // moving average of how long a request holds a slot
	onDepth func(waiting, busy int) // reports queue depth and busy slots
}

func newPool(slots []*slot, queue int, onDepth func(waiting, busy int)) *pool {
	return &pool{slots: slots, idle: append([]*slot(nil), slots...), queue: queue, onDepth: onDepth}
}

// acquire returns a slot for a request with the given history key and
// pruning settings. It waits in the queue while all slots are busy, and
// fails at once with errQueueFull when the queue is full, or with ctx's
// error when ctx ends first.
func (p *pool) acquire(ctx context.Context, key string, want llama.SDTPOptions) (*slot, error) {
	p.mu.Lock()
	if len(p.idle) > 0 && len(p.waiters) == 0 {
		s := p.take(key, want)
		p.mu.Unlock()
		return s, nil
	}
	if len(p.waiters) >= p.queue {
		p.mu.Unlock()
		return nil, errQueueFull
	}
	ch := make(chan *slot, 1)
	p.waiters = append(p.waiters, ch)
	p.report()
	p.mu.Unlock()

	select {
	case s := <-ch:
		return s, nil
	case <-ctx.Done():
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, w := range p.waiters {
			if w == ch {
				p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
				p.report()
				return nil, ctx.Err()
			}
		}
		// release handed us a slot just as ctx ended: pass it on.
		p.put(<-ch)
		return nil, ctx.Err()
	}
}

// release returns a slot held for d: to the first waiter, else to the
// idle set.
func (p *pool) release(s *slot, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.avgHold = (4*p.avgHold + d) / 5
	p.put(s)
}

// retryAfter estimates when a refused request would find room: the time
// for the slots to work through a full queue, in whole seconds (1..60).
func (p *pool) retryAfter() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	wait := p.avgHold * time.Duration(p.queue+1) / time.Duration(len(p.slots))
	return min(max(int(math.Ceil(wait.Seconds())), 1), 60)
}

func (p *pool) put(s *slot) {
	p.uses++
	s.lastUse = p.uses
	if len(p.waiters) > 0 {
		ch := p.waiters[0]
		p.waiters = p.waiters[1:]
		ch <- s
	} else {
		p.idle = append(p.idle, s)
	}
	p.report()
}

// take removes and returns the best idle slot: the longest common prefix
// with key, then the same pruning settings (switching costs a rebuild),
// then the least recently used. A prefix counts only when it covers at
// least half of the slot's history (llama-server's slot similarity), so
// two conversations that merely open alike do not evict each other.
func (p *pool) take(key string, want llama.SDTPOptions) *slot {
	best := 0
	score := func(s *slot) (int, bool, uint64) {
		n := commonPrefix(s.history, key)
		if 2*n < len(s.history) {
			n = 0
		}
		return n, sameSDTP(s.sdtp, want), s.lastUse
	}
	for i := 1; i < len(p.idle); i++ {
		n, same, used := score(p.idle[i])
		bn, bsame, bused := score(p.idle[best])
		if n > bn || n == bn && (same && !bsame || same == bsame && used < bused) {
			best = i
		}
	}
	s := p.idle[best]
	p.idle = append(p.idle[:best], p.idle[best+1:]...)
	p.report()
	return s
}

func (p *pool) report() {
	if p.onDepth != nil {
		p.onDepth(len(p.waiters), len(p.slots)-len(p.idle))
	}
}

// busy reports whether any slot is serving a request or any request waits.
func (p *pool) busy() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle) < len(p.slots) || len(p.waiters) > 0
}

func sameSDTP(a, b llama.SDTPOptions) bool {
	return a.Mode == b.Mode && a.KeepRatio == b.KeepRatio && a.KVPolicy == b.KVPolicy && a.KVBudget == b.KVBudget
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
