package predictor

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/sdtp"
)

// positions 0..n-1 of an n-token prompt.
func livePositions(n int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(i)
	}
	return p
}

// order returns the indices of the unprotected tokens, best first.
func order(scores []float32, nPrompt int) []int {
	keep, _ := sdtp.Select(livePositions(len(scores)), scores, nPrompt, 1)
	var out []int
	for _, i := range keep {
		if !sdtp.Protected(i, nPrompt) {
			out = append(out, i)
		}
	}
	for a := range out { // insertion sort by score, stable on position
		for b := a; b > 0 && scores[out[b]] > scores[out[b-1]]; b-- {
			out[b], out[b-1] = out[b-1], out[b]
		}
	}
	return out
}

func TestFusionOnHandMadeScores(t *testing.T) {
	const n = 20 // protected: 0..3 and 18..19
	learned := make([]float32, n)
	attn := make([]float32, n)
	for i := range n {
		learned[i] = float32(i)        // learned: later is better
		attn[i] = float32(100 - i*i%7) // attention: another order
	}
	learned[0], attn[0] = -1000, 1e6 // a sink: must not sway the statistics
	pos := livePositions(n)
	for _, method := range []string{FuseRank, FuseZScore} {
		f := DefaultFusion(3)
		f.Method = method
		f.AttentionWeights = []float64{0, 1, 0.5}
		require.NoError(t, f.Validate(3))

		onlyLearned, err := f.Fuse(0, learned, attn, pos, n)
		require.NoError(t, err)
		assert.Equal(t, order(learned, n), order(onlyLearned, n), "%s, weight 0: the learned ranking", method)
		onlyAttn, err := f.Fuse(1, learned, attn, pos, n)
		require.NoError(t, err)
		assert.Equal(t, order(attn, n), order(onlyAttn, n), "%s, weight 1: the attention ranking", method)
		for i := range n {
			if sdtp.Protected(i, n) {
				assert.GreaterOrEqual(t, onlyLearned[i], onlyLearned[17], "%s: protected tokens score highest", method)
			}
		}
		half, err := f.Fuse(2, learned, attn, pos, n)
		require.NoError(t, err)
		assert.NotEqual(t, order(learned, n), order(half, n))
		assert.NotEqual(t, order(attn, n), order(half, n))

		_, err = f.Fuse(3, learned, attn, pos, n)
		assert.ErrorContains(t, err, "no weight for stage 3")
		_, err = f.Fuse(0, learned[:5], attn, pos, n)
		assert.Error(t, err)
	}

	// Rank mixing by hand: 4 rivals at positions 4..7 of a 12-token prompt
	// (protected: 0..3, 10..11).
	f := DefaultFusion(1)
	f.AttentionWeights = []float64{0.5}
	got, err := f.Fuse(0, []float32{0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0}, []float32{0, 0, 0, 0, 4, 3, 2, 1, 0, 0, 0, 0},
		livePositions(12), 12)
	require.NoError(t, err)
	// Rivals are 4..9; learned ranks of 4..9: 8 and 9 tie lowest with 0.
	// Attention: 4 highest, 5, 6, 7, then 8 and 9 tie at 0.
	want := []float64{0.5*0.4 + 0.5*1, 0.5*0.6 + 0.5*0.8, 0.5*0.8 + 0.5*0.6, 0.5*1 + 0.5*0.4, 0.5*0.1 + 0.5*0.1, 0.5*0.1 + 0.5*0.1}
	for k, w := range want {
		assert.InDelta(t, w, got[4+k], 1e-6, "position %d", 4+k)
	}
}

func TestFusionValidate(t *testing.T) {
	f := DefaultFusion(2)
	require.NoError(t, f.Validate(2))
	assert.ErrorContains(t, f.Validate(3), "2 attention weights for 3 stages")
	for _, bad := range []func(*Fusion){
		func(f *Fusion) { f.Version = 2 },
		func(f *Fusion) { f.Method = "sum" },
		func(f *Fusion) { f.AttentionWeights[1] = 1.5 },
		func(f *Fusion) { f.HeadPool = "median" },
		func(f *Fusion) { f.HeadPool, f.TopK = PoolTopK, 0 },
		func(f *Fusion) { f.LayerNorm = "z" },
		func(f *Fusion) { f.SlidingWindow = "window" },
		func(f *Fusion) { f.AttentionLayers = []int{3, 1} },
		func(f *Fusion) { f.AttentionLayers = []int{} },
		func(f *Fusion) { f.AttentionWindow = -1 },
		func(f *Fusion) { f.AttentionSampled = -1 },
	} {
		g := DefaultFusion(2)
		bad(&g)
		assert.Error(t, g.Validate(2), "%+v", g)
	}
	raw, err := json.Marshal(f)
	require.NoError(t, err)
	assert.JSONEq(t, `{"version":1,"method":"rank","attention_weights":[0.25,0.25],"head_pool":"max","layer_norm":"mean","sliding_window":"full-mask","attention_window":16,"attention_sampled":48}`, string(raw))
}

// layer builds one layer's [heads][live] attention from per-head rows.
func layer(il int, heads ...[]float32) bridge.LayerAttention {
	la := bridge.LayerAttention{Layer: il, NHead: len(heads)}
	for _, h := range heads {
		la.Scores = append(la.Scores, h...)
	}
	return la
}

func TestAttentionAccPoolsHeadsAndAccumulatesLayers(t *testing.T) {
	const n = 12 // protected: 0..3, 10..11; rivals 4..9
	pos := livePositions(n)
	h1 := []float32{5, 0, 0, 0, 1, 2, 3, 0, 0, 6, 1, 1}
	h2 := []float32{5, 0, 0, 0, 3, 0, 0, 0, 9, 0, 1, 1}
	h3 := []float32{5, 0, 0, 0, 2, 2, 0, 3, 0, 0, 1, 1}

	score := func(a AttentionAcc, stages ...sdtp.ScoreInput) []float32 {
		t.Helper()
		require.NoError(t, a.Validate())
		run := a.ForPrefill(n)
		var out []float32
		for _, in := range stages {
			var err error
			out, err = run.Score(in)
			require.NoError(t, err)
		}
		return out
	}
	in := sdtp.ScoreInput{Layer: 2, NPrompt: n, Positions: pos, LayerAttention: []bridge.LayerAttention{layer(1, h1, h2, h3)}}
	// Rivals' mean (NormMean): max pool → 3,2,3,3,9,6 = mean 26/6.
	maxed := score(AttentionAcc{Pool: PoolMax, Norm: NormMean}, in)
	assert.InDeltaSlice(t, []float32{3 * 6 / 26., 2 * 6 / 26., 3 * 6 / 26., 3 * 6 / 26., 9 * 6 / 26., 6 * 6 / 26.}, maxed[4:10], 1e-6)
	mean := score(AttentionAcc{Pool: PoolMean, Norm: NormMean}, in)
	// Mean pool → 2, 4/3, 1, 1, 3, 2: rivals' mean 31/18.
	assert.InDeltaSlice(t, []float32{2 * 18 / 31., 4. / 3 * 18 / 31., 18 / 31., 18 / 31., 3 * 18 / 31., 2 * 18 / 31.}, mean[4:10], 1e-6)
	top2 := score(AttentionAcc{Pool: PoolTopK, TopK: 2, Norm: NormMean}, in)
	// Top-2 pool → 2.5, 2, 1.5, 1.5, 4.5, 3: mean 2.5.
	assert.InDeltaSlice(t, []float32{1, 0.8, 0.6, 0.6, 1.8, 1.2}, top2[4:10], 1e-6)
	// Ranks among all 12 live tokens, max pool: 9 at position 8 is the
	// highest, the three zeros at 1..3 tie lowest.
	ranked := score(AttentionAcc{Pool: PoolMax, Norm: NormRank}, in)
	assert.Equal(t, float32(1), ranked[8])
	assert.Equal(t, []float32{1. / 11, 1. / 11, 1. / 11}, ranked[1:4])

	// Accumulation: stage 2 sees layers 2 and 3 over the survivors
	// (positions 0..3, 4, 8, 9, 10, 11); a token's score is its mean over
	// the 3 layers seen.
	kept := []int32{0, 1, 2, 3, 4, 8, 9, 10, 11}
	g := []float32{1, 1, 1, 1, 2, 4, 0, 1, 1} // rivals 4, 8, 9: mean 2
	in2 := sdtp.ScoreInput{Stage: 1, Layer: 4, NPrompt: n, Positions: kept, LayerAttention: []bridge.LayerAttention{layer(2, g), layer(3, g)}}
	acc := score(AttentionAcc{Pool: PoolMax, Norm: NormMean}, in, in2)
	assert.InDeltaSlice(t, []float32{(maxed[4] + 2) / 3, (maxed[8] + 4) / 3, (maxed[9] + 0) / 3}, acc[4:7], 1e-6)

	// Errors: Score outside a prefill, shapes, top-k above the heads, no
	// layer under skip.
	_, err := DefaultAttentionAcc().Score(in)
	assert.ErrorContains(t, err, "ForPrefill")
	_, err = DefaultAttentionAcc().ForPrefill(n).Score(sdtp.ScoreInput{Positions: pos, LayerAttention: []bridge.LayerAttention{layer(1, h1[:5])}})
	assert.ErrorContains(t, err, "5 scores for 1 heads × 12 live tokens")
	_, err = AttentionAcc{Pool: PoolTopK, TopK: 4, Norm: NormMean}.ForPrefill(n).Score(in)
	assert.ErrorContains(t, err, "layer 1 has 3 heads")
	skip := AttentionAcc{Pool: PoolMax, Norm: NormMean, SWA: bridge.SWASkip}
	assert.Equal(t, sdtp.Needs{LayerAttention: true, SWA: bridge.SWASkip}, skip.Needs())
	_, err = skip.ForPrefill(n).Score(sdtp.ScoreInput{Layer: 2, NPrompt: n, Positions: pos})
	assert.ErrorContains(t, err, "no layer before layer 2")
	assert.ErrorContains(t, err, "sliding-window layers skip")
	_, err = AttentionAcc{Pool: "median", Norm: NormMean}.ForPrefill(n).Score(in)
	assert.ErrorContains(t, err, `head pooling "median"`)
}

// fixed returns preset scores.
type fixed []float32

func (fixed) Needs() sdtp.Needs                          { return sdtp.Needs{Hidden: true} }
func (f fixed) Score(sdtp.ScoreInput) ([]float32, error) { return f, nil }

func TestHybridFusesLearnedWithAccumulatedAttention(t *testing.T) {
	const n = 12
	pos := livePositions(n)
	learned := fixed{0, 0, 0, 0, 6, 5, 4, 3, 2, 1, 0, 0}
	h := []float32{5, 0, 0, 0, 1, 2, 3, 4, 5, 6, 1, 1}
	in := sdtp.ScoreInput{Layer: 3, NPrompt: n, Positions: pos, LayerAttention: []bridge.LayerAttention{layer(1, h)}}
	f := DefaultFusion(2)
	f.AttentionWeights = []float64{1, 0}
	hy, err := NewHybrid(learned, []int{3, 5}, f)
	require.NoError(t, err)
	assert.Equal(t, sdtp.Needs{Hidden: true, LayerAttention: true, SWA: bridge.SWAFullMask, AttnWindow: DefaultWindow, AttnSampled: DefaultSampled}, hy.Needs())
	_, err = hy.Score(in)
	assert.ErrorContains(t, err, "ForPrefill")
	got, err := hy.ForPrefill(n).Score(in)
	require.NoError(t, err)
	assert.Equal(t, order(h, n), order(got, n), "weight 1 at layer 3: attention alone")
	in.Layer = 5
	got, err = hy.ForPrefill(n).Score(in)
	require.NoError(t, err)
	assert.Equal(t, order(learned, n), order(got, n), "weight 0 at layer 5: learned alone")
	in.Layer = 4
	_, err = hy.ForPrefill(n).Score(in)
	assert.ErrorContains(t, err, "before layer 4")
	_, err = NewHybrid(learned, []int{3}, f)
	assert.ErrorContains(t, err, "2 attention weights for 1 stages")
}

// Under sliding_window skip a stage before the first full-attention layer
// has no attention to read: at weight 0 it prunes on the learned scores and
// accumulates what it ran, at weight > 0 it is refused.
func TestHybridWeightZeroStageOnlyAccumulates(t *testing.T) {
	const n = 12
	pos := livePositions(n)
	learned := fixed{0, 0, 0, 0, 6, 5, 4, 3, 2, 1, 0, 0}
	h := []float32{5, 0, 0, 0, 1, 2, 3, 4, 5, 6, 1, 1}
	f := DefaultFusion(2)
	f.SlidingWindow, f.AttentionWeights = bridge.SWASkip.String(), []float64{0, 1}
	hy, err := NewHybrid(learned, []int{3, 5}, f)
	require.NoError(t, err)

	// Stage 0 (layer 3): the engine sent no layer (every one was a
	// sliding-window layer). Stage 1 (layer 5) sent layer 4's.
	early := sdtp.ScoreInput{Stage: 0, Layer: 3, NPrompt: n, Positions: pos}
	late := sdtp.ScoreInput{Stage: 1, Layer: 5, NPrompt: n, Positions: pos, LayerAttention: []bridge.LayerAttention{layer(4, h)}}
	run := hy.ForPrefill(n)
	got, err := run.Score(early)
	require.NoError(t, err)
	assert.Equal(t, order(learned, n), order(got, n), "weight 0: learned alone")
	got, err = run.Score(late)
	require.NoError(t, err)
	assert.Equal(t, order(h, n), order(got, n), "weight 1: layer 4's attention")

	// A weight-0 stage that did see a layer adds it for the stages after.
	g := []float32{5, 0, 0, 0, 9, 1, 1, 1, 1, 0, 1, 1}
	early.LayerAttention = []bridge.LayerAttention{layer(2, g)}
	attn, err := f.Attention()
	require.NoError(t, err)
	plain := attn.ForPrefill(n)
	_, err = plain.Score(early)
	require.NoError(t, err)
	want, err := plain.Score(late)
	require.NoError(t, err)
	run = hy.ForPrefill(n)
	_, err = run.Score(early)
	require.NoError(t, err)
	got, err = run.Score(late)
	require.NoError(t, err)
	assert.Equal(t, order(want, n), order(got, n), "layers 2 and 4")
	assert.NotEqual(t, order(h, n), order(got, n))
	early.LayerAttention = nil

	f.AttentionWeights = []float64{0.25, 1}
	hy, err = NewHybrid(learned, []int{3, 5}, f)
	require.NoError(t, err)
	_, err = hy.ForPrefill(n).Score(early)
	assert.ErrorContains(t, err, "give this stage attention weight 0")
}
