package sdtp_test

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/sdtp"
)

func tinyEngine(t *testing.T, cfg testmodel.Config) (*bridge.Context, *bridge.Engine) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, testmodel.Write(path, cfg))
	m, err := bridge.LoadModel(path, bridge.ModelParams{UseMMap: true})
	require.NoError(t, err)
	c, err := m.NewContext(bridge.ContextParams{NCtx: 1024, NBatch: 1024, Threads: 2})
	require.NoError(t, err)
	e, err := c.NewEngine(1024, 2)
	require.NoError(t, err)
	t.Cleanup(func() { e.Free(); c.Free(); m.Free() })
	return c, e
}

func prompt(n int) []int32 {
	toks := make([]int32, n)
	toks[0] = 1
	for i := 1; i < n; i++ {
		toks[i] = int32(300 + (i*37)%250)
	}
	return toks
}

func TestDensePrefillMatchesLlamaDecode(t *testing.T) {
	c, e := tinyEngine(t, testmodel.Gemma3())
	toks := prompt(300)
	require.NoError(t, c.Decode(toks, 0, bridge.OutputLast))
	want, err := c.Logits(-1)
	require.NoError(t, err)
	res, err := sdtp.Prefill(context.Background(), e, predictor.NewRandom(1), sdtp.Schedule{}, toks, 64)
	require.NoError(t, err)
	assert.InDeltaSlice(t, want, res.Logits, 1e-4)
	assert.Equal(t, []int{300}, res.KeptPerStage)
}

func TestPrunedPrefillKeepsScheduleAndProtectedTokens(t *testing.T) {
	cfg := testmodel.Gemma3()
	cfg.NLayer = 12 // room for several stages
	for _, scorer := range []string{"random", "attention"} {
		t.Run(scorer, func(t *testing.T) {
			_, e := tinyEngine(t, cfg)
			sched, err := sdtp.DefaultSchedule(e.NLayer(), 0.8)
			require.NoError(t, err)
			sc, err := predictor.New(scorer, 7)
			require.NoError(t, err)
			const n = 400
			res, err := sdtp.Prefill(context.Background(), e, sc, sched, prompt(n), 128)
			require.NoError(t, err)

			assert.Equal(t, sched.Expected(n), res.KeptPerStage)
			for l := range e.NLayer() {
				assert.Equal(t, res.KeptPerLayer[l], e.Cells(l), "cache of layer %d holds the live tokens", l)
			}
			last := res.LivePositions[len(res.LivePositions)-1]
			assert.IsIncreasing(t, last, "kept tokens keep their original order and positions")
			for p := range n {
				if sdtp.Protected(p, n) {
					assert.Zero(t, res.DroppedAt[p], "protected position %d dropped", p)
				}
			}
			assert.Len(t, res.Logits, e.NVocab())
			finite := true
			for _, v := range res.Logits {
				finite = finite && !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0)
			}
			assert.True(t, finite)
		})
	}
}

func TestAttentionScorerPrefersAttendedTokens(t *testing.T) {
	// Same prompt, two scorers: they must choose differently, and the
	// attention scorer's choice is deterministic.
	cfg := testmodel.Llama()
	_, e := tinyEngine(t, cfg)
	sched := sdtp.Schedule{Layers: []int{2}, KeepRatios: []float64{0.5}}
	a1, err := sdtp.Prefill(context.Background(), e, predictor.Attention{}, sched, prompt(200), 64)
	require.NoError(t, err)
	a2, err := sdtp.Prefill(context.Background(), e, predictor.Attention{}, sched, prompt(200), 64)
	require.NoError(t, err)
	r, err := sdtp.Prefill(context.Background(), e, predictor.NewRandom(3), sched, prompt(200), 64)
	require.NoError(t, err)
	assert.Equal(t, a1.LivePositions[1], a2.LivePositions[1])
	assert.NotEqual(t, a1.LivePositions[1], r.LivePositions[1])
	assert.Equal(t, a1.Logits, a2.Logits)
}

// captureScorer records what the stage loop hands a scorer.
type captureScorer struct {
	needs sdtp.Needs
	seen  []sdtp.ScoreInput
}

func (c *captureScorer) Needs() sdtp.Needs { return c.needs }
func (c *captureScorer) Score(in sdtp.ScoreInput) ([]float32, error) {
	c.seen = append(c.seen, in)
	return make([]float32, len(in.Positions)), nil
}

func TestAttentionScoresAreADistributionOverLiveTokens(t *testing.T) {
	for name, cfg := range map[string]testmodel.Config{"llama": testmodel.Llama(), "gemma3": testmodel.Gemma3()} {
		t.Run(name, func(t *testing.T) {
			_, e := tinyEngine(t, cfg)
			sc := &captureScorer{needs: sdtp.Needs{Attention: true, Hidden: true}}
			sched := sdtp.Schedule{Layers: []int{1, 3}, KeepRatios: []float64{0.6, 0.6}}
			_, err := sdtp.Prefill(context.Background(), e, sc, sched, prompt(300), 64)
			require.NoError(t, err)
			require.Len(t, sc.seen, 2)
			for _, in := range sc.seen {
				assert.Len(t, in.Attention, len(in.Positions))
				assert.Len(t, in.Hidden, len(in.Positions)*e.NEmbd())
				sum := 0.0
				for _, a := range in.Attention {
					assert.GreaterOrEqual(t, a, float32(0))
					sum += float64(a)
				}
				// Each query's softmax sums to 1; the mean over queries too.
				assert.InDelta(t, 1.0, sum, 1e-3, "stage %d", in.Stage)
			}
			// Scores use the full causal mask even on sliding-window layers
			// (layer 0 of gemma3), so distant tokens are ranked too.
			assert.Positive(t, sc.seen[0].Attention[50], "position 50 lies outside the 32-token window yet is scored")
		})
	}
}

func TestContextFeaturesReachTheScorer(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Llama())
	sc := &captureScorer{needs: sdtp.Needs{Context: true}}
	toks := prompt(200)
	sched := sdtp.Schedule{Layers: []int{1, 3}, KeepRatios: []float64{0.6, 0.6}}
	_, err := sdtp.Prefill(context.Background(), e, sc, sched, toks, 64)
	require.NoError(t, err)
	require.Len(t, sc.seen, 2)
	for _, in := range sc.seen {
		assert.Equal(t, sdtp.Context(toks, in.Positions), in.Context, "stage %d: the live tokens' features", in.Stage)
	}
	assert.Less(t, len(sc.seen[1].Positions), len(sc.seen[0].Positions))
}

// cancelAfterRuns is the engine with a cancel after its n-th Run.
type cancelAfterRuns struct {
	*bridge.Engine
	n, runs int
	cancel  context.CancelFunc
}

func (r *cancelAfterRuns) Run(in bridge.RunInput) (bridge.RunOutput, error) {
	out, err := r.Engine.Run(in)
	if r.runs++; r.runs == r.n {
		r.cancel()
	}
	return out, err
}

// cancellingScorer cancels when it scores.
type cancellingScorer struct {
	cancel context.CancelFunc
	calls  int
}

func (c *cancellingScorer) Needs() sdtp.Needs { return sdtp.Needs{} }
func (c *cancellingScorer) Score(in sdtp.ScoreInput) ([]float32, error) {
	c.calls++
	c.cancel()
	return make([]float32, len(in.Positions)), nil
}

func TestPrefillStopsWhenContextIsDone(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Llama())
	sched := sdtp.Schedule{Layers: []int{1, 3}, KeepRatios: []float64{0.8, 0.8}}
	toks := prompt(200) // 4 chunks of 64 per stage
	want, err := sdtp.Prefill(context.Background(), e, predictor.NewRandom(1), sched, toks, 64)
	require.NoError(t, err)

	t.Run("before the first chunk", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := sdtp.Prefill(ctx, e, predictor.NewRandom(1), sched, toks, 64)
		require.ErrorIs(t, err, context.Canceled)
		assert.Zero(t, e.Cells(0))
	})
	t.Run("between chunks", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		r := &cancelAfterRuns{Engine: e, n: 2, cancel: cancel}
		_, err := sdtp.Prefill(ctx, r, predictor.NewRandom(1), sched, toks, 64)
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 2, r.runs)
		assert.Equal(t, 8+64, e.Cells(0), "the two chunks before the cancel: 200 mod 64 tokens, then 64")
	})
	t.Run("between stages", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		sc := &cancellingScorer{cancel: cancel}
		_, err := sdtp.Prefill(ctx, e, sc, sched, toks, 64)
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 1, sc.calls)
		assert.Equal(t, 200, e.Cells(0), "the first stage finished")
		assert.Zero(t, e.Cells(1), "the second never started")
	})

	again, err := sdtp.Prefill(context.Background(), e, predictor.NewRandom(1), sched, toks, 64)
	require.NoError(t, err)
	assert.Equal(t, want, again, "the engine is usable after a cancel")
}

// Extend scores only the new segment: the scorer sees its positions
// (relative to the segment), the attention those cells get (a distribution over the whole cache, old
// cells included, so the segment's share is below 1), and context
// features computed on the segment alone.
func TestExtendScoresTheNewSegmentOnly(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Llama())
	sched := sdtp.Schedule{Layers: []int{1, 3}, KeepRatios: []float64{0.6, 0.6}}
	toks := prompt(300)
	_, err := sdtp.Prefill(context.Background(), e, predictor.NewRandom(1), sched, toks[:200], 64)
	require.NoError(t, err)
	sc := &captureScorer{needs: sdtp.Needs{Attention: true, Context: true, LayerAttention: true}}
	res, err := sdtp.Extend(context.Background(), e, sc, sched, toks, 200, 64)
	require.NoError(t, err)
	assert.Equal(t, sched.Expected(100), res.KeptPerStage)
	assert.Len(t, res.DroppedAt, 100)
	require.Len(t, sc.seen, 2)
	for _, in := range sc.seen {
		assert.Equal(t, 100, in.NPrompt, "stage %d: the segment's length", in.Stage)
		assert.Less(t, in.Positions[len(in.Positions)-1], int32(100), "stage %d: positions relative to the segment", in.Stage)
		assert.Len(t, in.Attention, len(in.Positions))
		assert.Equal(t, sdtp.Context(toks[200:], in.Positions), in.Context, "stage %d: features of the segment", in.Stage)
		require.NotEmpty(t, in.LayerAttention)
		for _, la := range in.LayerAttention {
			assert.Len(t, la.Scores, la.NHead*len(in.Positions), "stage %d layer %d: the segment's cells only", in.Stage, la.Layer)
		}
		sum := 0.0
		for _, a := range in.Attention {
			sum += float64(a)
		}
		assert.Less(t, sum, 1.0, "stage %d: the cached cells take part of the attention", in.Stage)
		assert.Greater(t, sum, 0.0)
	}
	_, err = sdtp.Extend(context.Background(), e, sc, sched, toks, 300, 64)
	assert.ErrorContains(t, err, "nothing to prefill")
}

// perPrefill counts ForPrefill calls and hands out capture scorers.
type perPrefill struct {
	captureScorer
	calls []int
	runs  []*captureScorer
}

func (p *perPrefill) ForPrefill(n int) sdtp.Scorer {
	p.calls = append(p.calls, n)
	r := &captureScorer{needs: p.needs}
	p.runs = append(p.runs, r)
	return r
}

// A PrefillScorer gets a fresh scorer per prompt, and per-head attention
// of every layer of each stage reaches it: [NHead][live], each head's
// window sums to one per query.
func TestLayerAttentionReachesAPrefillScorer(t *testing.T) {
	cfg := testmodel.Gemma3()
	cfg.NLayer = 7
	_, e := tinyEngine(t, cfg)
	toks := prompt(300)
	sched := sdtp.Schedule{Layers: []int{2, 5}, KeepRatios: []float64{0.6, 0.6}}
	layers, _, _ := e.Shape()
	for _, c := range []struct {
		swa     bridge.SWAAttention
		layers  []int
		window  int
		sampled int     // more queries over the rest of the 30-token tail
		want    float64 // the queries' weight; of the 22 tokens left, 5 samples at stride 5 count 25, 40 asked take all 22
	}{{bridge.SWAFullMask, nil, 0, 0, 30}, {bridge.SWAOwnMask, nil, 0, 0, 30}, {bridge.SWASkip, nil, 0, 0, 30},
		{bridge.SWAFullMask, []int{1, 3}, 8, 0, 8}, {bridge.SWAFullMask, nil, 8, 5, 8 + 25}, {bridge.SWAFullMask, nil, 8, 40, 30}} {
		swa := c.swa
		sc := &perPrefill{captureScorer: captureScorer{needs: sdtp.Needs{LayerAttention: true, SWA: swa, AttnLayers: c.layers, AttnWindow: c.window, AttnSampled: c.sampled}}}
		_, err := sdtp.Prefill(context.Background(), e, sc, sched, toks, 64)
		require.NoError(t, err)
		_, err = sdtp.Prefill(context.Background(), e, sc, sched, toks[:200], 64)
		require.NoError(t, err)
		assert.Equal(t, []int{300, 200}, sc.calls, "one ForPrefill per prompt")
		assert.Empty(t, sc.seen, "the PrefillScorer itself never scores")
		seen := sc.runs[0].seen
		require.Len(t, seen, 2)
		win := c.want
		require.Equal(t, 30, sdtp.TailLen(300))
		for s, in := range seen {
			first := []int{0, 2}[s]
			var want []int
			for il := first; il < sched.Layers[s]; il++ {
				if (swa != bridge.SWASkip || layers[il].Window == 0) && (c.layers == nil || slices.Contains(c.layers, il)) {
					want = append(want, il)
				}
			}
			var got []int
			for _, la := range in.LayerAttention {
				got = append(got, la.Layer)
				require.Len(t, la.Scores, la.NHead*len(in.Positions))
				for h := range la.NHead {
					sum := 0.0
					for _, v := range la.Scores[h*len(in.Positions) : (h+1)*len(in.Positions)] {
						sum += float64(v)
					}
					assert.InDelta(t, win, sum, 1e-2, "swa %d stage %d layer %d head %d: queries of weight %g", swa, s, la.Layer, h, win)
				}
			}
			assert.Equal(t, want, got, "swa %d stage %d", swa, s)
			assert.Equal(t, 300, in.NPrompt)
		}
	}
}
