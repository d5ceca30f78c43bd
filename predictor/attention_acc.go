package predictor

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/sdtp"
)

// How AttentionAcc pools the heads of one layer into one score per token.
const (
	PoolMean = "mean"  // mean over heads
	PoolMax  = "max"   // the head that attends most
	PoolTopK = "top-k" // mean of the TopK heads that attend most
)

// How AttentionAcc makes layers comparable before accumulating them.
const (
	// NormMean divides a layer's pooled scores by their mean over the
	// unprotected live tokens, so every layer weighs the same however
	// much attention its sinks absorb.
	NormMean = "mean"
	// NormRank replaces them by their rank among the live tokens, scaled
	// to [0, 1]: the averaged rankings of CLAA (arXiv 2602.16054).
	NormRank = "rank"
)

// ParseSWA reads a bridge.SWAAttention by name: "full-mask", "own-mask"
// or "skip".
func ParseSWA(name string) (bridge.SWAAttention, error) {
	for _, v := range []bridge.SWAAttention{bridge.SWAFullMask, bridge.SWAOwnMask, bridge.SWASkip} {
		if v.String() == name {
			return v, nil
		}
	}
	return 0, fmt.Errorf("predictor: sliding-window setting %q is not full-mask, own-mask or skip", name)
}

// AttentionAcc scores a live token by the attention the prompt's last
// window of queries (sdtp.TailLen tokens: where the question sits) pays
// it, at every layer run so far in this prefill — earlier stages included
// — rather than at the layer before the pruning point only (LazyLLM,
// GemFilter, FastKV read the prompt end's attention; CLAA, arXiv
// 2602.16054, found single-layer rankings collapse at some layers and
// averaging over layers closes most of the gap). At each layer the
// attention, summed over the window's queries, is pooled over heads
// (Pool), normalised (Norm), and added to a running sum per position; a
// token's score is the mean over the layers it has been seen at.
//
// Sliding-window layers (SWA): the default, bridge.SWAFullMask, scores
// them with the full causal mask. Their real attention cannot reach a
// token beyond the window (Gemma 3: 512 tokens), so with their own mask
// (bridge.SWAOwnMask) every far token scores 0 at five layers in six and
// the accumulated score then mostly ranks by distance from the question;
// q·k of those layers still measures relevance, which is what the score is
// for. bridge.SWASkip uses full-attention layers only (Gemma 3: every
// sixth), and refuses to score before the first of them.
//
// Cost: the window attention takes about 2·Q·live·n_head·head_dim FLOPs
// per layer scored (Q the queries; a few percent of a layer when every
// token of the tail is one). Layers restricts the sums to some layers,
// and Window and Sampled set Q.
type AttentionAcc struct {
	Pool   string // PoolMean, PoolMax or PoolTopK
	TopK   int    // heads averaged by PoolTopK
	Norm   string // NormMean or NormRank
	SWA    bridge.SWAAttention
	Layers []int // increasing; nil: every layer
	Window int   // the last min(Window, sdtp.TailLen) tokens ask; 0: the whole tail
	// Sampled > 0: at most this many more queries, spread evenly over the
	// rest of the tail (SnapKV's observation window is the text before
	// the question too); 0: none.
	Sampled int
}

// DefaultWindow is attention-acc's window of queries: the prompt's last
// 16 tokens, where a question (or a chat template's closing turn) sits.
//
// DefaultSampled is how many more queries DefaultFusion's attention
// samples over the rest of the protected tail, each counted for the tokens
// it stands for: the text a continuation goes on from. Fused with learned
// scores that helps plain text and keeps the needles: on Gemma 3 270M at
// the retrieval schedule, 12 held-out WikiText-2 windows of 2048 tokens,
// continuation perplexity vs dense is +3.5% with the last 16 queries and
// +1.6% with both, which answer 27 and 26 of 40 needle prompts (dense 26);
// 12 windows carry intervals of several points (docs/SCHEDULES.md).
// attention-acc alone does not sample: with no learned scores the tail's
// text outweighs the question, and Qwen2.5-Coder-0.5B-Instruct's SQuAD
// answers fell from dense's 8 of the first 15 prompts to 2 (docs/HYBRID.md,
// "Which queries"). Sampled rather than all, the tail's queries cost under
// 1% of the prefill at 4096 tokens.
const (
	DefaultWindow  = 16
	DefaultSampled = 48
)

// DefaultAttentionAcc is the attention-acc scorer's setting: the most
// attentive head, layers scaled to a common mean, sliding-window layers
// with the full causal mask, the last DefaultWindow tokens as queries.
func DefaultAttentionAcc() AttentionAcc {
	return AttentionAcc{Pool: PoolMax, Norm: NormMean, SWA: bridge.SWAFullMask, Window: DefaultWindow}
}

// Validate checks the settings.
func (a AttentionAcc) Validate() error {
	switch a.Pool {
	case PoolMean, PoolMax:
	case PoolTopK:
		if a.TopK < 1 {
			return fmt.Errorf("predictor: top-k head pooling needs k >= 1, got %d", a.TopK)
		}
	default:
		return fmt.Errorf("predictor: head pooling %q is not mean, max or top-k", a.Pool)
	}
	if a.Norm != NormMean && a.Norm != NormRank {
		return fmt.Errorf("predictor: layer normalisation %q is not mean or rank", a.Norm)
	}
	if a.SWA < bridge.SWAFullMask || a.SWA > bridge.SWASkip {
		return fmt.Errorf("predictor: unknown sliding-window setting %d", a.SWA)
	}
	if a.Window < 0 {
		return fmt.Errorf("predictor: attention window %d must be positive (0: the protected tail)", a.Window)
	}
	if a.Sampled < 0 {
		return fmt.Errorf("predictor: sampled attention queries %d must be positive (0: none)", a.Sampled)
	}
	if a.Layers != nil && len(a.Layers) == 0 {
		return errors.New("predictor: attention layers given but empty (nil means every layer)")
	}
	for i, l := range a.Layers {
		if l < 0 || (i > 0 && l <= a.Layers[i-1]) {
			return fmt.Errorf("predictor: attention layers %v must be increasing layer numbers", a.Layers)
		}
	}
	return nil
}

func (a AttentionAcc) Needs() sdtp.Needs {
	return sdtp.Needs{LayerAttention: true, SWA: a.SWA, AttnLayers: a.Layers, AttnWindow: a.Window, AttnSampled: a.Sampled}
}

// errNoPrefill: the accumulating scorers keep state per prompt.
var errNoPrefill = errors.New("predictor: this scorer accumulates over a prefill; score through sdtp.Prefill (ForPrefill)")

// Score refuses: the accumulated score needs the layers of every earlier
// stage, which only the scorer returned by ForPrefill sees.
func (AttentionAcc) Score(sdtp.ScoreInput) ([]float32, error) { return nil, errNoPrefill }

// ForPrefill starts the running sums for one nPrompt-token prompt.
func (a AttentionAcc) ForPrefill(nPrompt int) sdtp.Scorer {
	return &accumulator{opt: a, sum: make([]float64, nPrompt), seen: make([]int32, nPrompt)}
}

// accumulator holds, per prompt position, the sum of the normalised layer
// scores and the number of layers that contributed.
type accumulator struct {
	opt  AttentionAcc
	sum  []float64
	seen []int32
}

func (acc *accumulator) Needs() sdtp.Needs { return acc.opt.Needs() }

func (acc *accumulator) Score(in sdtp.ScoreInput) ([]float32, error) {
	if err := acc.add(in); err != nil {
		return nil, err
	}
	n := len(in.Positions)
	out := make([]float32, n)
	scored := false
	for i, p := range in.Positions {
		if acc.seen[p] > 0 {
			out[i], scored = float32(acc.sum[p]/float64(acc.seen[p])), true
		}
	}
	if !scored && n > 0 {
		return nil, fmt.Errorf("attention-acc: no layer before layer %d to score with (layers %v, sliding-window layers %v): prune after the first layer scored, score more layers, or give this stage attention weight 0", in.Layer, acc.opt.Layers, acc.opt.SWA)
	}
	return out, nil
}

// add accumulates the layers of in, the stage just run.
func (acc *accumulator) add(in sdtp.ScoreInput) error {
	if err := acc.opt.Validate(); err != nil {
		return err
	}
	n := len(in.Positions)
	for _, p := range in.Positions {
		if int(p) >= len(acc.sum) {
			return fmt.Errorf("attention-acc: position %d beyond the %d-token prompt", p, len(acc.sum))
		}
	}
	for _, la := range in.LayerAttention {
		if la.NHead < 1 || len(la.Scores) != la.NHead*n {
			return fmt.Errorf("attention-acc: layer %d: %d scores for %d heads × %d live tokens", la.Layer, len(la.Scores), la.NHead, n)
		}
		pooled, err := acc.opt.pool(la)
		if err != nil {
			return err
		}
		for i, v := range acc.opt.normalise(pooled, in.Positions, in.NPrompt) {
			p := in.Positions[i]
			acc.sum[p] += v
			acc.seen[p]++
		}
	}
	return nil
}

// pool turns one layer's [NHead][live] attention into [live].
func (a AttentionAcc) pool(la bridge.LayerAttention) ([]float64, error) {
	n := len(la.Scores) / la.NHead
	k := la.NHead
	switch a.Pool {
	case PoolMax:
		k = 1
	case PoolTopK:
		if a.TopK > la.NHead {
			return nil, fmt.Errorf("attention-acc: top-%d head pooling, but layer %d has %d heads", a.TopK, la.Layer, la.NHead)
		}
		k = a.TopK
	}
	out := make([]float64, n)
	heads := make([]float64, la.NHead)
	for t := range n {
		for h := range la.NHead {
			heads[h] = float64(la.Scores[h*n+t])
		}
		if k < la.NHead {
			sort.Sort(sort.Reverse(sort.Float64Slice(heads)))
		}
		s := 0.0
		for _, v := range heads[:k] {
			s += v
		}
		out[t] = s / float64(k)
	}
	return out, nil
}

// normalise makes one layer's pooled scores comparable with other layers'.
func (a AttentionAcc) normalise(v []float64, positions []int32, nPrompt int) []float64 {
	if a.Norm == NormRank {
		return ranks(v)
	}
	mean, cnt := 0.0, 0
	for i, x := range v {
		if !sdtp.Protected(int(positions[i]), nPrompt) {
			mean, cnt = mean+x, cnt+1
		}
	}
	out := make([]float64, len(v))
	if cnt == 0 || mean <= 0 || math.IsNaN(mean) {
		return out // nothing to rank here: the layer adds 0 to every token
	}
	mean /= float64(cnt)
	for i, x := range v {
		out[i] = x / mean
	}
	return out
}

// ranks returns each value's rank among v scaled to [0, 1] (0 the lowest;
// ties share their mean rank; a single value ranks 1).
func ranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case v[a] < v[b]:
			return -1
		case v[a] > v[b]:
			return 1
		}
		return 0
	})
	out := make([]float64, len(v))
	if len(v) == 1 {
		out[0] = 1
		return out
	}
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && v[idx[j]] == v[idx[i]] {
			j++
		}
		r := float64(i+j-1) / 2 / float64(len(v)-1)
		for _, k := range idx[i:j] {
			out[k] = r
		}
		i = j
	}
	return out
}
