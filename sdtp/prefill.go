package sdtp

import (
	"context"
	"fmt"

	"github.com/go-sdtp/sdtp/bridge"
)

// Runner is the staged engine as the stage loop sees it (bridge.Engine).
type Runner interface {
	NLayer() int
	NEmbd() int
	Reset(segmentStarts []int) error
	Run(in bridge.RunInput) (bridge.RunOutput, error)
	// AbortWhen makes a Run in progress stop once ctx is done.
	AbortWhen(ctx context.Context) (release func())
}

// Scorer rates the live tokens at a pruning point; higher means keep.
// Implementations live in package predictor.
type Scorer interface {
	// Needs says what Score reads, so the engine computes only that.
	Needs() Needs
	Score(in ScoreInput) ([]float32, error)
}

// Needs lists a scorer's inputs.
type Needs struct {
	Hidden    bool // hidden states entering the pruning layer
	Attention bool // attention of the last-window queries at the layer before
	Head      bool // in-graph predictor head scores (bridge.Engine.SetHeads)
	// Context features (see Context) of the live tokens: in
	// ScoreInput.Context, and the in-graph heads' second input with Head.
	Context bool
	// LayerAttention: per-head attention of the last-window queries at
	// every layer of the stage just run (ScoreInput.LayerAttention), with
	// sliding-window layers treated as SWA says.
	LayerAttention bool
	SWA            bridge.SWAAttention
	AttnLayers     []int // with LayerAttention: only these layers (nil: every layer)
	// AttnWindow > 0 caps LayerAttention's window of queries (the last
	// tokens of the prompt) below TailLen: its cost is proportional.
	AttnWindow int
}

// PrefillScorer is a Scorer that keeps state over one prefill, such as
// attention accumulated over every layer run so far: Prefill calls
// ForPrefill once per prompt of nPrompt tokens and scores every stage of
// that prompt with the scorer it returns. The PrefillScorer itself stays
// shareable between concurrent prefills.
type PrefillScorer interface {
	Scorer
	ForPrefill(nPrompt int) Scorer
}

// ScoreInput is what a scorer sees at stage Stage, before layer Layer.
type ScoreInput struct {
	Stage, Layer int
	NEmbd        int
	NPrompt      int       // prompt length (for Protected)
	Positions    []int32   // original positions of the live tokens
	Hidden       []float32 // [live][NEmbd], when Needs.Hidden
	Attention    []float32 // [live], when Needs.Attention
	HeadScores   []float32 // [live], when Needs.Head
	Context      []float32 // [live][len(ContextFeatures)], when Needs.Context
	// LayerAttention has one entry per layer of the stage just run (in
	// order; sliding-window layers left out under bridge.SWASkip, and
	// layers not in Needs.AttnLayers when that is set), each
	// [NHead][live] in the order of Positions, when Needs.LayerAttention.
	LayerAttention []bridge.LayerAttention
}

// PrefillResult is a pruned prefill: the last token's logits and what
// survived where.
type PrefillResult struct {
	Logits       []float32
	KeptPerStage []int // live tokens entering each stage's first layer; [0] = prompt
	KeptPerLayer []int // live tokens (= cached K/V entries) per layer
	// DroppedAt[p] is the stage whose pruning dropped the token at position
	// p (1-based: stage s prunes before Schedule.Layers[s-1]), 0 if it
	// reached the last layer.
	DroppedAt []int
	// LivePositions[s] are the positions alive in stage s (for accounting).
	LivePositions [][]int32
}

// Prefill runs the prompt through the model stage by stage: each stage's
// layers process the live tokens in chunks of ubatch, the scorer rates them
// at the next pruning layer, and Select decides who continues. A schedule
// with no layers is a dense prefill through the same engine.
//
// Once ctx is done Prefill stops, inside the running chunk or before the
// next one, and returns an error that wraps ctx.Err(). The next Prefill
// starts afresh (Reset), so the engine stays usable.
func Prefill(ctx context.Context, r Runner, sc Scorer, sched Schedule, tokens []int32, ubatch int) (PrefillResult, error) {
	n := len(tokens)
	var res PrefillResult
	if n == 0 {
		return res, fmt.Errorf("sdtp: empty prompt")
	}
	release := r.AbortWhen(ctx)
	defer release()
	if len(sched.Layers) > 0 {
		if err := sched.Validate(r.NLayer()); err != nil {
			return res, err
		}
	}
	if p, ok := sc.(PrefillScorer); ok {
		sc = p.ForPrefill(n)
	}
	starts := append([]int{0}, sched.Layers...)
	if err := r.Reset(starts); err != nil {
		return res, err
	}
	pos := make([]int32, n)
	for i := range pos {
		pos[i] = int32(i)
	}
	res.DroppedAt = make([]int, n)
	var hidden, table []float32 // table: the prompt's ContextTable, if the scorer reads it
	for s, first := range starts {
		last := r.NLayer()
		final := s == len(starts)-1
		if !final {
			last = starts[s+1]
		}
		res.KeptPerStage = append(res.KeptPerStage, len(pos))
		res.LivePositions = append(res.LivePositions, pos)
		for range last - first {
			res.KeptPerLayer = append(res.KeptPerLayer, len(pos))
		}
		var needs Needs
		if !final {
			needs = sc.Needs()
		}
		var feats []float32
		if needs.Context {
			if table == nil {
				table = ContextTable(tokens)
			}
			feats = contextRows(table, pos)
		}
		out, err := runStage(ctx, r, first, last, tokens, hidden, pos, feats, ubatch, final, needs)
		if ctx.Err() != nil {
			return res, fmt.Errorf("sdtp: prefill stopped in the stage of layers [%d, %d): %w", first, last, ctx.Err())
		}
		if err != nil {
			return res, err
		}
		if final {
			res.Logits = out.Logits
			break
		}
		in := ScoreInput{Stage: s, Layer: last, NEmbd: r.NEmbd(), NPrompt: n, Positions: pos, Attention: out.Attn, HeadScores: out.Head,
			Context: feats, LayerAttention: out.LayerAttn}
		if needs.Hidden {
			in.Hidden = out.Hidden
		}
		scores, err := sc.Score(in)
		if err != nil {
			return res, fmt.Errorf("sdtp: scoring before layer %d: %w", last, err)
		}
		if len(scores) == len(pos) && sched.SpanKernel > 0 {
			scores = PoolSpans(pos, scores, n, sched.SpanKernel)
		}
		keep, err := Select(pos, scores, n, sched.KeepRatios[s])
		if err != nil {
			return res, err
		}
		pos, hidden = gather(pos, out.Hidden, keep, r.NEmbd(), res.DroppedAt, s+1)
	}
	return res, nil
}

// runStage runs layers [first, last) over the live tokens in chunks of
// ubatch, cut from the end so that the last chunk holds the whole
// last-window (the attention scorer's queries) whenever it fits.
func runStage(ctx context.Context, r Runner, first, last int, tokens []int32, hidden []float32, pos []int32, feats []float32,
	ubatch int, final bool, needs Needs) (bridge.RunOutput, error) {
	n, d, k := len(pos), r.NEmbd(), len(ContextFeatures)
	var all bridge.RunOutput
	if !final {
		all.Hidden = make([]float32, 0, n*d)
	}
	for end := n % ubatch; end <= n; end += ubatch {
		if end == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return all, err
		}
		start := max(0, end-ubatch)
		in := bridge.RunInput{First: first, Last: last, Positions: pos[start:end], WantHidden: !final,
			WantLogits: final && end == n, ScoreHead: needs.Head}
		if first == 0 {
			in.Tokens = tokens[start:end]
		} else {
			in.Hidden = hidden[start*d : end*d]
		}
		if needs.Head && needs.Context {
			in.HeadContext = feats[start*k : end*k]
		}
		if needs.Attention && end == n {
			in.AttnWindow = min(end-start, TailLen(len(tokens)))
		}
		if needs.LayerAttention && end == n {
			win := TailLen(len(tokens))
			if needs.AttnWindow > 0 {
				win = min(win, needs.AttnWindow)
			}
			in.LayerAttnWindow, in.LayerAttnSWA, in.LayerAttnLayers = min(end-start, win), needs.SWA, needs.AttnLayers
		}
		out, err := r.Run(in)
		if err != nil {
			return all, err
		}
		all.Hidden = append(all.Hidden, out.Hidden...)
		all.Head = append(all.Head, out.Head...)
		all.Logits, all.Attn, all.LayerAttn = out.Logits, out.Attn, out.LayerAttn
	}
	return all, nil
}

// gather keeps the rows in keep and marks the others dropped at stage.
func gather(pos []int32, hidden []float32, keep []int, d int, droppedAt []int, stage int) ([]int32, []float32) {
	newPos := make([]int32, len(keep))
	newHidden := make([]float32, len(keep)*d)
	k := 0
	for i, p := range pos {
		if k < len(keep) && keep[k] == i {
			newPos[k] = p
			copy(newHidden[k*d:(k+1)*d], hidden[i*d:(i+1)*d])
			k++
		} else {
			droppedAt[p] = stage
		}
	}
	return newPos, newHidden
}
