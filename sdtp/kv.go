package sdtp

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/go-sdtp/sdtp/bridge"
)

// KV-cache policies: what a layer's cache keeps once it holds more cells
// than the budget (docs/KV.md). Every policy keeps the first HeadKeep cells
// (attention sinks) and a window of the most recent ones.
const (
	KVNone      = "none"      // keep everything
	KVStreaming = "streaming" // StreamingLLM: sinks + the recent window, nothing else
	KVH2O       = "h2o"       // heavy hitters by attention accumulated over every query + a recent window
	KVSnapKV    = "snapkv"    // keys the prompt's last SnapKVWindow queries attend most + a recent window
)

// KVPolicies lists the policy names, for flags and errors.
var KVPolicies = []string{KVNone, KVStreaming, KVH2O, KVSnapKV}

const (
	// SnapKVWindow is SnapKV's observation window (the paper's 32 queries)
	// and the longest recent window snapkv keeps during decode.
	SnapKVWindow = 32
	// SnapKVPool is the width of the 1-D max-pool over neighbouring cells'
	// scores, so that tokens next to an attended one survive with it.
	SnapKVPool = 7
	// MinKVLimit is the smallest per-layer budget a policy runs with:
	// the sinks plus a few recent tokens.
	MinKVLimit = 2 * HeadKeep
)

// KVCache is the engine as a KV policy sees it (bridge.Engine).
type KVCache interface {
	NLayer() int
	Cells(layer int) int
	Positions(layer int) []int32
	AttnScores(layer int) []float32
	Evict(layer int, keep []int) error
	TrackAttention(mode bridge.AttnStats, window int)
}

// KVLimiter holds one generation's per-layer caches to a budget under a
// policy. Call Start before the prefill, Prefilled after it, and Enforce
// after every later run.
type KVLimiter struct {
	cache  KVCache
	policy string
	budget float64
	limit  int // cells per layer; 0 = no limit
	// snapkv: per layer, the pooled observation-window scores by position,
	// frozen at the end of the prefill (generated tokens score 0).
	frozen []map[int32]float32
}

// NewKVLimiter checks a policy and budget: a fraction of the prompt's
// tokens when in (0, 1], else an absolute count of cells per layer.
// Policy "" is KVNone, which ignores the budget.
func NewKVLimiter(c KVCache, policy string, budget float64) (*KVLimiter, error) {
	if policy == "" {
		policy = KVNone
	}
	if !slices.Contains(KVPolicies, policy) {
		return nil, fmt.Errorf("sdtp: unknown KV policy %q (%v)", policy, KVPolicies)
	}
	if policy != KVNone && (!(budget > 0) || math.IsInf(budget, 1)) {
		return nil, fmt.Errorf("sdtp: KV budget %v must be a fraction in (0, 1] of the prompt or a token count > 1", budget)
	}
	return &KVLimiter{cache: c, policy: policy, budget: budget}, nil
}

// Policy is the limiter's policy name.
func (k *KVLimiter) Policy() string { return k.policy }

// Limit is the per-layer cell budget fixed by Prefilled (0: none).
func (k *KVLimiter) Limit() int { return k.limit }

// Start sets the attention statistics the policy reads for the prefill to
// come: every query's (h2o), the last SnapKVWindow queries' of each run
// (snapkv; the prefill's last run leaves the prompt's), or none.
func (k *KVLimiter) Start() {
	k.limit, k.frozen = 0, nil
	switch k.policy {
	case KVH2O:
		k.cache.TrackAttention(bridge.AttnStatsAccumulate, 0)
	case KVSnapKV:
		k.cache.TrackAttention(bridge.AttnStatsReplace, SnapKVWindow)
	default:
		k.cache.TrackAttention(bridge.AttnStatsOff, 0)
	}
}

// Prefilled fixes the per-layer limit for a prompt of n tokens and evicts
// down to it. snapkv freezes its pooled scores here and stops tracking.
func (k *KVLimiter) Prefilled(n int) error {
	if k.policy == KVNone {
		return nil
	}
	k.limit = int(k.budget)
	if k.budget <= 1 {
		k.limit = int(math.Ceil(k.budget * float64(n)))
	}
	k.limit = max(k.limit, MinKVLimit)
	if k.policy == KVSnapKV {
		k.frozen = make([]map[int32]float32, k.cache.NLayer())
		for il := range k.frozen {
			pooled := maxPool(k.cache.AttnScores(il), SnapKVPool)
			k.frozen[il] = make(map[int32]float32, len(pooled))
			for c, p := range k.cache.Positions(il) {
				k.frozen[il][p] = pooled[c]
			}
		}
		k.cache.TrackAttention(bridge.AttnStatsOff, 0)
	}
	return k.Enforce()
}

// Enforce evicts, in every layer over the limit, the cells the policy
// values least.
func (k *KVLimiter) Enforce() error {
	if k.limit == 0 {
		return nil
	}
	for il := range k.cache.NLayer() {
		n := k.cache.Cells(il)
		if n <= k.limit {
			continue
		}
		var scores []float32
		switch k.policy {
		case KVH2O:
			scores = k.cache.AttnScores(il)
		case KVSnapKV:
			scores = make([]float32, n)
			for c, p := range k.cache.Positions(il) {
				scores[c] = k.frozen[il][p]
			}
		}
		if err := k.cache.Evict(il, KeepCells(n, k.limit, k.recent(), scores)); err != nil {
			return err
		}
	}
	return nil
}

// recent is the policy's recent window: all the budget after the sinks for
// streaming, half of it for h2o (the paper's heavy/recent split), and the
// observation window (at most half) for snapkv.
func (k *KVLimiter) recent() int {
	rest := k.limit - HeadKeep
	switch k.policy {
	case KVStreaming:
		return rest
	case KVSnapKV:
		return min(SnapKVWindow, rest/2)
	}
	return rest / 2
}

// KeepCells returns the cache indices (increasing) a layer of n cells
// keeps under limit: the first HeadKeep, the last recent, and the
// highest-scoring of the others (ties: the later cell). scores may be nil
// when only sinks and recent cells count.
func KeepCells(n, limit, recent int, scores []float32) []int {
	if n <= limit {
		return seqInts(0, n)
	}
	sinks := min(HeadKeep, limit)
	recent = min(recent, limit-sinks)
	middle := seqInts(sinks, n-recent)
	heavy := limit - sinks - recent
	slices.SortFunc(middle, func(a, b int) int {
		if scores != nil && scores[a] != scores[b] {
			return cmp.Compare(scores[b], scores[a])
		}
		return b - a
	})
	keep := append(seqInts(0, sinks), middle[:heavy]...)
	keep = append(keep, seqInts(n-recent, n)...)
	slices.Sort(keep)
	return keep
}

// maxPool is a 1-D max-pool of width w (odd) and stride 1 over x, the
// same length as x.
func maxPool(x []float32, w int) []float32 {
	out := make([]float32, len(x))
	for i := range x {
		m := x[i]
		for j := max(0, i-w/2); j <= min(len(x)-1, i+w/2); j++ {
			m = max(m, x[j])
		}
		out[i] = m
	}
	return out
}

func seqInts(from, to int) []int {
	out := make([]int, 0, max(to-from, 0))
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}
