package sdtp

import (
	"math"
	"sort"

	"github.com/go-sdtp/sdtp/bridge"
)

// Shape is what FLOPs accounting needs to know about a model.
type Shape struct {
	Layers []bridge.LayerShape
	NEmbd  int
	NVocab int
}

// Expected returns the live tokens entering each stage for an nPrompt-token
// prompt, the counts Select produces: ceil(r · live), never below the
// protected tokens.
func (s Schedule) Expected(nPrompt int) []int {
	tail := TailLen(nPrompt)
	protected := min(nPrompt, min(HeadKeep, nPrompt-tail)+tail)
	out := []int{nPrompt}
	live := nPrompt
	for _, r := range s.KeepRatios {
		live = max(int(math.Ceil(r*float64(live))), protected)
		out = append(out, live)
	}
	return out
}

// PrefillFLOPs counts the multiply-adds (×2) of a prefill in which layer l
// runs on the live positions livePerLayer[l] (sorted): the linear layers
// scale with the live tokens; attention with the (query, key) pairs a
// causal, possibly windowed mask allows among them; plus the output head
// for one token.
func PrefillFLOPs(sh Shape, livePerLayer [][]int32) float64 {
	return ExtendFLOPs(sh, nil, livePerLayer)
}

// ExtendFLOPs is PrefillFLOPs of new tokens over caches that already hold
// cachedPerLayer[l] (sorted positions, all before the new ones; nil: empty
// caches): attention also counts the pairs of each new query with the
// cached keys its mask allows.
func ExtendFLOPs(sh Shape, cachedPerLayer, livePerLayer [][]int32) float64 {
	d := float64(sh.NEmbd)
	total := 2 * d * float64(sh.NVocab)
	for l, L := range sh.Layers {
		pos := livePerLayer[l]
		qDim, kvDim := float64(L.NHead*L.HeadDim), float64(L.NHeadKV*L.HeadDim)
		params := d*qDim + 2*d*kvDim + qDim*d + 3*d*float64(L.NFF)
		total += 2 * params * float64(len(pos))
		pairs := attentionPairs(pos, L.Window)
		if cachedPerLayer != nil {
			pairs += crossPairs(pos, cachedPerLayer[l], L.Window)
		}
		total += 4 * float64(L.NHead*L.HeadDim) * pairs
	}
	return total
}

// DenseFLOPs is PrefillFLOPs of an n-token prompt with nothing pruned.
func DenseFLOPs(sh Shape, n int) float64 { return DenseExtendFLOPs(sh, 0, n) }

// DenseExtendFLOPs is ExtendFLOPs of n new tokens after a from-token
// prefix, nothing pruned (every layer caches every token).
func DenseExtendFLOPs(sh Shape, from, n int) float64 {
	prefix, pos := make([]int32, from), make([]int32, n)
	for i := range prefix {
		prefix[i] = int32(i)
	}
	for i := range pos {
		pos[i] = int32(from + i)
	}
	cached, live := make([][]int32, len(sh.Layers)), make([][]int32, len(sh.Layers))
	for l := range live {
		cached[l], live[l] = prefix, pos
	}
	return ExtendFLOPs(sh, cached, live)
}

// crossPairs counts pairs (q, k) of queries pos and earlier cached keys
// with, when window > 0, q - k < window.
func crossPairs(pos, cached []int32, window int) float64 {
	pairs := 0.0
	for _, q := range pos {
		lo := 0
		if window > 0 {
			lo = sort.Search(len(cached), func(j int) bool { return int(q-cached[j]) < window })
		}
		pairs += float64(len(cached) - lo)
	}
	return pairs
}

// attentionPairs counts pairs (q, k) with k <= q and, with a window w > 0,
// q - k < w, over sorted positions.
func attentionPairs(pos []int32, window int) float64 {
	pairs := 0.0
	for i, q := range pos {
		lo := 0
		if window > 0 {
			lo = sort.Search(i+1, func(j int) bool { return int(q-pos[j]) < window })
		}
		pairs += float64(i + 1 - lo)
	}
	return pairs
}

// LivePerLayer expands per-stage live positions to one entry per layer.
func LivePerLayer(sched Schedule, nLayer int, stages [][]int32) [][]int32 {
	out := make([][]int32, nLayer)
	s := 0
	for l := range nLayer {
		for s+1 < len(stages) && s < len(sched.Layers) && l >= sched.Layers[s] {
			s++
		}
		out[l] = stages[s]
	}
	return out
}
