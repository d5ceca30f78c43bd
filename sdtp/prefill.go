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
	// TokenPiece is a token's text (bytes; llama_token_to_piece).
	TokenPiece(tok int32) []byte
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
	// AttnSampled > 0 adds at most this many queries spread evenly over
	// the rest of the tail, before the window, each counted for the
	// tokens it stands for (bridge.RunInput's LayerAttnSampled): an
	// estimate of the whole tail's attention.
	AttnSampled int
}

// WithLayerAttentionOf returns n asking for the layer attention a asks
// for (LayerAttention and its settings): what a scorer composed of
// another one and an attention scorer needs.
func (n Needs) WithLayerAttentionOf(a Needs) Needs {
	n.LayerAttention, n.SWA, n.AttnLayers, n.AttnWindow, n.AttnSampled = a.LayerAttention, a.SWA, a.AttnLayers, a.AttnWindow, a.AttnSampled
	return n
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
	NPrompt      int       // length of the prefilled segment (for Protected)
	Positions    []int32   // positions of the live tokens in the prefilled segment (original positions when it starts at 0)
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
// survived where. Counts and positions cover the tokens this call
// prefilled (the whole prompt for Prefill, the new segment for Extend).
type PrefillResult struct {
	Logits       []float32
	KeptPerStage []int // live tokens entering each stage's first layer; [0] = prefilled tokens
	KeptPerLayer []int // live tokens (= K/V entries appended) per layer
	// DroppedAt[i] is the stage whose pruning dropped the i-th prefilled
	// token (position from+i; 1-based: stage s prunes before
	// Schedule.Layers[s-1]), 0 if it reached the last layer.
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
	return Extend(ctx, r, sc, sched, tokens, 0, ubatch)
}

// Extend is Prefill of tokens[from:] over caches that already hold
// tokens[:from] at positions 0..from-1, as an earlier Prefill or Extend
// with the same schedule (and decode steps after it) left them: multi-turn
// reuse. The new tokens, at positions from.., go through the stages and
// compete only among themselves: cached cells are not revisited, and the
// first HeadKeep and last TailKeepFrac of the new segment are protected
// (Select on segment-relative positions). from = 0 is Prefill (Reset
// first). The caller removes cells at positions >= from beforehand
// (bridge.Engine.Remove). On an error the caches may hold part of the
// segment; Remove(from, -1) restores them.
func Extend(ctx context.Context, r Runner, sc Scorer, sched Schedule, tokens []int32, from, ubatch int) (PrefillResult, error) {
	var res PrefillResult
	if from < 0 || from >= len(tokens) {
		return res, fmt.Errorf("sdtp: prefill from position %d of a %d-token prompt: nothing to prefill", from, len(tokens))
	}
	release := r.AbortWhen(ctx)
	defer release()
	if len(sched.Layers) > 0 {
		if err := sched.Validate(r.NLayer()); err != nil {
			return res, err
		}
	}
	starts := append([]int{0}, sched.Layers...)
	if from == 0 {
		if err := r.Reset(starts); err != nil {
			return res, err
		}
	}
	seg := tokens[from:]
	n := len(seg)
	if p, ok := sc.(PrefillScorer); ok {
		sc = p.ForPrefill(n) // fresh per-prompt state: the segment competes only with itself
	}
	pos := make([]int32, n)
	for i := range pos {
		pos[i] = int32(from + i)
	}
	res.DroppedAt = make([]int, n)
	wholeSentences := sched.SpanSentences && AsksQuestion(r.TokenPiece, seg)
	ends := sentenceEnds(r, sched, seg, wholeSentences)
	var hidden, table []float32 // table: the segment's ContextTable, if the scorer reads it
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
		rel := relative(pos, from)
		var feats []float32
		if needs.Context {
			if table == nil {
				table = ContextTable(seg)
			}
			feats = contextRows(table, rel)
		}
		out, err := runStage(ctx, r, first, last, tokens, hidden, pos, feats, ubatch, final, needs, TailLen(n))
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
		if len(out.Attn) > len(pos) {
			out.Attn = out.Attn[len(out.Attn)-len(pos):] // the segment's cells come last
		}
		// Scorers see segment-relative positions, so protection and span
		// pooling apply to the new segment (from = 0: original positions).
		in := ScoreInput{Stage: s, Layer: last, NEmbd: r.NEmbd(), NPrompt: n, Positions: rel, Attention: out.Attn, HeadScores: out.Head,
			Context: feats, LayerAttention: segmentAttention(out.LayerAttn, len(pos))}
		if needs.Hidden {
			in.Hidden = out.Hidden
		}
		scores, err := sc.Score(in)
		if err != nil {
			return res, fmt.Errorf("sdtp: scoring before layer %d: %w", last, err)
		}
		if len(scores) == len(rel) {
			scores = spanScores(sched, seg, ends, rel, scores, wholeSentences)
		}
		keep, err := Select(rel, scores, n, sched.KeepRatios[s])
		if err != nil {
			return res, err
		}
		pos, hidden = gather(pos, out.Hidden, keep, r.NEmbd(), res.DroppedAt, from, s+1)
	}
	return res, nil
}

// spanScores applies sched's span rules to one stage's scores of the
// live tokens at segment positions rel, in this order: echoes share their
// best copy's score (and rank first, with SpanEchoFirst), echo hops reach
// the facts the question leads to, the kernel and trail pool spans, and
// each sentence is kept or dropped whole when wholeSentences (the prompt
// asks a question). docs/HYBRID.md says why each is there.
func spanScores(sched Schedule, seg []int32, ends []bool, rel []int32, scores []float32, wholeSentences bool) []float32 {
	scores = ShareEchoes(seg, rel, scores, sched.SpanEcho)
	if sched.SpanEchoFirst {
		scores = EchoesFirst(seg, rel, scores, sched.SpanEcho)
	}
	scores = ChainEchoes(seg, ends, rel, scores, sched.SpanEcho, sched.SpanEchoHops)
	var stops []bool // where trails stop, if they stop at sentences
	if sched.SpanTrailSentence {
		stops = stopsAt(ends, rel)
	}
	scores = PoolSpans(rel, scores, stops, len(seg), sched.SpanKernel, sched.SpanTrail)
	if wholeSentences {
		scores = PoolSentences(ends, rel, scores)
	}
	return scores
}

// segmentAttention keeps, of each layer's per-head attention over its
// cached cells, the last live cells: the segment's, which come after the
// cells an earlier call cached.
func segmentAttention(las []bridge.LayerAttention, live int) []bridge.LayerAttention {
	out := make([]bridge.LayerAttention, len(las))
	for i, la := range las {
		cells := len(la.Scores) / max(la.NHead, 1)
		if cells == live {
			out[i] = la
			continue
		}
		out[i] = bridge.LayerAttention{Layer: la.Layer, NHead: la.NHead, Scores: make([]float32, 0, la.NHead*live)}
		for h := range la.NHead {
			out[i].Scores = append(out[i].Scores, la.Scores[h*cells+cells-live:(h+1)*cells]...)
		}
	}
	return out
}

// sentenceEnds says, per token of seg, whether it ends a sentence
// (EndsSentence), for trails that stop there, echo hops and whole
// sentences (wholeSentences: this prompt asks a question); nil when the
// prompt uses none of them.
func sentenceEnds(r Runner, sched Schedule, seg []int32, wholeSentences bool) []bool {
	if (sched.SpanTrail == 0 || !sched.SpanTrailSentence) && sched.SpanEchoHops == 0 && !wholeSentences {
		return nil
	}
	ends := make([]bool, len(seg))
	for i, t := range seg {
		ends[i] = EndsSentence(r.TokenPiece(t))
	}
	return ends
}

// stopsAt gathers ends at the segment positions rel (nil stays nil).
func stopsAt(ends []bool, rel []int32) []bool {
	if ends == nil {
		return nil
	}
	out := make([]bool, len(rel))
	for i, p := range rel {
		out[i] = ends[p]
	}
	return out
}

// relative returns the positions minus from.
func relative(pos []int32, from int) []int32 {
	if from == 0 {
		return pos
	}
	out := make([]int32, len(pos))
	for i, p := range pos {
		out[i] = p - int32(from)
	}
	return out
}

// runStage runs layers [first, last) over the live tokens in chunks of
// ubatch, cut from the end so that the last chunk holds the whole
// last-window (the attention scorer's queries, the last tail tokens)
// whenever it fits. tokens are indexed by position.
func runStage(ctx context.Context, r Runner, first, last int, tokens []int32, hidden []float32, pos []int32, feats []float32,
	ubatch int, final bool, needs Needs, tail int) (bridge.RunOutput, error) {
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
			in.Tokens = tokens[pos[start] : pos[end-1]+1] // nothing is pruned before the first stage
		} else {
			in.Hidden = hidden[start*d : end*d]
		}
		if needs.Head && needs.Context {
			in.HeadContext = feats[start*k : end*k]
		}
		if needs.Attention && end == n {
			in.AttnWindow = min(end-start, tail)
		}
		if needs.LayerAttention && end == n {
			asking := min(end-start, tail) // the tail, within this chunk
			win := asking
			if needs.AttnWindow > 0 {
				win = min(win, needs.AttnWindow)
			}
			in.LayerAttnWindow = win
			if rest := asking - win; needs.AttnSampled > 0 && rest > 0 {
				in.LayerAttnStride = (rest + needs.AttnSampled - 1) / needs.AttnSampled
				in.LayerAttnSampled = (rest + in.LayerAttnStride - 1) / in.LayerAttnStride
			}
			in.LayerAttnSWA, in.LayerAttnLayers = needs.SWA, needs.AttnLayers
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

// gather keeps the rows in keep and marks the others dropped at stage
// (droppedAt is indexed by position - from).
func gather(pos []int32, hidden []float32, keep []int, d int, droppedAt []int, from, stage int) ([]int32, []float32) {
	newPos := make([]int32, len(keep))
	newHidden := make([]float32, len(keep)*d)
	k := 0
	for i, p := range pos {
		if k < len(keep) && keep[k] == i {
			newPos[k] = p
			copy(newHidden[k*d:(k+1)*d], hidden[i*d:(i+1)*d])
			k++
		} else {
			droppedAt[int(p)-from] = stage
		}
	}
	return newPos, newHidden
}
