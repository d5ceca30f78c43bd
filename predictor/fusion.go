package predictor

import (
	"fmt"
	"math"
	"slices"

	"github.com/go-sdtp/sdtp/sdtp"
)

// FusionVersion is the layout of Fusion this build reads and writes.
const FusionVersion = 1

// Fusion methods: how the learned score and the accumulated question
// attention become one score.
const (
	// FuseRank mixes the two signals' ranks among the unprotected live
	// tokens (scaled to [0, 1]): robust to the scale and tails of either.
	FuseRank = "rank"
	// FuseZScore mixes their z-scores over the unprotected live tokens.
	FuseZScore = "zscore"
)

// Fusion says how the hybrid scorer fuses a predictor set's learned score
// with the question attention of AttentionAcc. It is part of the
// predictor set: the "fusion" block of predictors.json and the
// sdtp.fusion.* keys of GGUF heads (docs/PREDICTORS.md).
//
// At stage s the fused score of a token is
//
//	(1 − w) · f(learned) + w · f(attention),   w = AttentionWeights[s],
//
// with f the rank or the z-score over the stage's unprotected live tokens.
type Fusion struct {
	Version          int       `json:"version"`
	Method           string    `json:"method"`            // FuseRank or FuseZScore
	AttentionWeights []float64 `json:"attention_weights"` // per stage, in [0, 1]
	HeadPool         string    `json:"head_pool"`         // AttentionAcc.Pool
	TopK             int       `json:"top_k,omitempty"`   // AttentionAcc.TopK
	LayerNorm        string    `json:"layer_norm"`        // AttentionAcc.Norm
	SlidingWindow    string    `json:"sliding_window"`    // full-mask, own-mask or skip
	// AttentionLayers are the layers whose attention is accumulated
	// (AttentionAcc.Layers); absent: every layer.
	AttentionLayers []int `json:"attention_layers,omitempty"`
	// AttentionWindow: the last tokens that ask (AttentionAcc.Window); 0
	// or absent: the protected tail, sdtp.TailLen.
	AttentionWindow int `json:"attention_window,omitempty"`
	// AttentionSampled: more queries spread over the rest of the tail
	// (AttentionAcc.Sampled); 0 or absent: none.
	AttentionSampled int `json:"attention_sampled,omitempty"`
}

// DefaultAttentionWeight is the fusion's weight on the question attention
// at every stage. Measured on Gemma 3 270M at the retrieval schedule
// (docs/HYBRID.md, "Fusion"): 0.25 and 0.5 answer the same needle prompts,
// and 0.25 loses less continuation perplexity (+3.5% against +5.1%), as
// the learned scores were trained for the next-token loss.
const DefaultAttentionWeight = 0.25

// DefaultFusionNote says how a predictor set without a fusion block is
// fused, for the notice the tools print.
func DefaultFusionNote() string {
	return fmt.Sprintf("the predictors have no fusion block; fusing by rank, attention weight %g at every stage", DefaultAttentionWeight)
}

// DefaultFusion is rank mixing with DefaultAttentionWeight at every one of
// nStages stages, and DefaultAttentionAcc's attention with DefaultSampled
// queries over the rest of the tail.
func DefaultFusion(nStages int) Fusion {
	w := make([]float64, nStages)
	for i := range w {
		w[i] = DefaultAttentionWeight
	}
	a := DefaultAttentionAcc()
	return Fusion{Version: FusionVersion, Method: FuseRank, AttentionWeights: w, HeadPool: a.Pool, LayerNorm: a.Norm, SlidingWindow: a.SWA.String(),
		AttentionWindow: a.Window, AttentionSampled: DefaultSampled}
}

// Validate checks the block against a set of nStages stages.
func (f Fusion) Validate(nStages int) error {
	if f.Version != FusionVersion {
		return fmt.Errorf("predictor: fusion version %d, this build reads %d", f.Version, FusionVersion)
	}
	if f.Method != FuseRank && f.Method != FuseZScore {
		return fmt.Errorf("predictor: fusion method %q is not rank or zscore", f.Method)
	}
	if len(f.AttentionWeights) != nStages {
		return fmt.Errorf("predictor: fusion has %d attention weights for %d stages", len(f.AttentionWeights), nStages)
	}
	for i, w := range f.AttentionWeights {
		if !(w >= 0 && w <= 1) {
			return fmt.Errorf("predictor: fusion attention weight %v at stage %d must be in [0, 1]", w, i)
		}
	}
	_, err := f.Attention()
	return err
}

// Attention is the accumulated-attention scorer the fusion reads.
func (f Fusion) Attention() (AttentionAcc, error) {
	swa, err := ParseSWA(f.SlidingWindow)
	if err != nil {
		return AttentionAcc{}, err
	}
	a := AttentionAcc{Pool: f.HeadPool, TopK: f.TopK, Norm: f.LayerNorm, SWA: swa, Layers: f.AttentionLayers, Window: f.AttentionWindow,
		Sampled: f.AttentionSampled}
	return a, a.Validate()
}

// Fuse fuses one stage's scores, parallel to positions (live tokens of an
// nPrompt-token prompt). Protected tokens, kept whatever they score, take
// no part in the statistics and get the highest fused score.
func (f Fusion) Fuse(stage int, learned, attention []float32, positions []int32, nPrompt int) ([]float32, error) {
	if stage < 0 || stage >= len(f.AttentionWeights) {
		return nil, fmt.Errorf("predictor: fusion has no weight for stage %d", stage)
	}
	if len(learned) != len(positions) || len(attention) != len(positions) {
		return nil, fmt.Errorf("predictor: fusing %d learned and %d attention scores for %d tokens", len(learned), len(attention), len(positions))
	}
	var rivals []int
	for i, p := range positions {
		if !sdtp.Protected(int(p), nPrompt) {
			rivals = append(rivals, i)
		}
	}
	w := f.AttentionWeights[stage]
	fl, fa := f.transform(learned, rivals), f.transform(attention, rivals)
	out := make([]float32, len(positions))
	top := math.Inf(-1)
	for k, i := range rivals {
		v := (1-w)*fl[k] + w*fa[k]
		out[i] = float32(v)
		top = math.Max(top, v)
	}
	for i, p := range positions {
		if sdtp.Protected(int(p), nPrompt) {
			out[i] = float32(math.Max(top, 1))
		}
	}
	return out, nil
}

// transform is the method's f over the rivals' values.
func (f Fusion) transform(v []float32, rivals []int) []float64 {
	x := make([]float64, len(rivals))
	for k, i := range rivals {
		x[k] = float64(v[i])
	}
	if f.Method == FuseRank {
		return ranks(x)
	}
	mean, sq := 0.0, 0.0
	for _, a := range x {
		mean += a
	}
	mean /= float64(max(len(x), 1))
	for _, a := range x {
		sq += (a - mean) * (a - mean)
	}
	std := math.Sqrt(sq / float64(max(len(x), 1)))
	for k := range x {
		if std > 0 {
			x[k] = (x[k] - mean) / std
		} else {
			x[k] = 0
		}
	}
	return x
}

// Hybrid fuses a learned scorer (ONNX predictors or in-graph heads) with
// AttentionAcc's question attention: the learned score knows what is
// generally unimportant (filler, boilerplate) but, computed from a token's
// own hidden state under causal attention, cannot know the question; the
// attention of the prompt's end does.
type Hybrid struct {
	learned sdtp.Scorer
	layers  []int // the pruning layer of each stage of the fusion
	fusion  Fusion
	attn    AttentionAcc
}

// NewHybrid fuses learned, trained to prune before layers, by f.
func NewHybrid(learned sdtp.Scorer, layers []int, f Fusion) (*Hybrid, error) {
	if err := f.Validate(len(layers)); err != nil {
		return nil, err
	}
	attn, err := f.Attention()
	if err != nil {
		return nil, err
	}
	return &Hybrid{learned: learned, layers: layers, fusion: f, attn: attn}, nil
}

// Close releases the learned scorer (ONNX sessions) when it has a Close.
func (h *Hybrid) Close() {
	if c, ok := h.learned.(interface{ Close() }); ok {
		c.Close()
	}
}

// Learned is the learned scorer the hybrid fuses.
func (h *Hybrid) Learned() sdtp.Scorer { return h.learned }

func (h *Hybrid) Needs() sdtp.Needs {
	return h.learned.Needs().WithLayerAttentionOf(h.attn.Needs())
}

// Score refuses, as AttentionAcc.Score does.
func (h *Hybrid) Score(sdtp.ScoreInput) ([]float32, error) { return nil, errNoPrefill }

// ForPrefill starts the attention sums for one prompt.
func (h *Hybrid) ForPrefill(nPrompt int) sdtp.Scorer {
	learned := h.learned
	if p, ok := learned.(sdtp.PrefillScorer); ok {
		learned = p.ForPrefill(nPrompt)
	}
	return &hybridRun{h: h, learned: learned, attn: h.attn.ForPrefill(nPrompt)}
}

type hybridRun struct {
	h       *Hybrid
	learned sdtp.Scorer
	attn    sdtp.Scorer
}

func (r *hybridRun) Needs() sdtp.Needs { return r.h.Needs() }

func (r *hybridRun) Score(in sdtp.ScoreInput) ([]float32, error) {
	stage := slices.Index(r.h.layers, in.Layer)
	if stage < 0 {
		return nil, fmt.Errorf("hybrid scorer: no fusion weight for a pruning point before layer %d (the predictors prune before %v)", in.Layer, r.h.layers)
	}
	learned, err := r.learned.Score(in)
	if err != nil {
		return nil, err
	}
	attn, err := r.h.StageAttention(r.attn, in)
	if err != nil {
		return nil, err
	}
	return r.h.fusion.Fuse(stage, learned, attn, in.Positions, in.NPrompt)
}

// StageAttention is the question attention the stage pruning before
// in.Layer fuses, from attn (AttentionScorer's, for this prefill). A
// stage of attention weight 0 reads none (zeros) but still adds its layers
// for later stages: so a set whose attention skips sliding-window layers
// (Gemma 3: five in six) can prune before the first full-attention layer
// on its learned scores alone, where the accumulated attention would have
// nothing to score with.
func (h *Hybrid) StageAttention(attn sdtp.Scorer, in sdtp.ScoreInput) ([]float32, error) {
	stage := slices.Index(h.layers, in.Layer)
	if acc, ok := attn.(*accumulator); ok && stage >= 0 && h.fusion.AttentionWeights[stage] == 0 {
		return make([]float32, len(in.Positions)), acc.add(in)
	}
	return attn.Score(in)
}

// AttentionScorer returns, for one prompt, the accumulated attention
// scorer the hybrid fuses with (for tools that fuse by hand: sdtp-convert
// check).
func (h *Hybrid) AttentionScorer(nPrompt int) sdtp.Scorer { return h.attn.ForPrefill(nPrompt) }

// Fusion is the hybrid's fusion block.
func (h *Hybrid) Fusion() Fusion { return h.fusion }
