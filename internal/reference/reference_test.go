package reference_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/internal/numeric"
	"github.com/go-sdtp/sdtp/internal/reference"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/sdtp"
)

// The engine's pruned prefill and the decode steps after it agree with an
// independent pure-Go forward pass given the same surviving tokens.
func TestEngineMatchesReferenceWithPruning(t *testing.T) {
	gemma := testmodel.Gemma3()
	gemma.NLayer = 7 // six sliding-window layers and a global one
	for name, cfg := range map[string]testmodel.Config{"llama": testmodel.Llama(), "gemma3": gemma} {
		for _, sched := range []sdtp.Schedule{{}, {Layers: []int{1, 3}, KeepRatios: []float64{0.6, 0.5}}} {
			t.Run(name, func(t *testing.T) {
				ref, e := tinyEngine(t, cfg)

				n := 160
				toks := testPrompt(n)
				pre, err := sdtp.Prefill(context.Background(), e, predictor.NewRandom(5), sched, toks, 48)
				require.NoError(t, err)
				live := make([][]int, e.NLayer())
				for l, ps := range sdtp.LivePerLayer(sched, e.NLayer(), pre.LivePositions) {
					for _, p := range ps {
						live[l] = append(live[l], int(p))
					}
				}
				want, cache := ref.Prefill(toks, live)
				d := numeric.MaxAbsDiff(want, pre.Logits)
				t.Logf("%d stages: prefill max |Δlogit| %.2e (logit range ±%.2f)", len(sched.Layers), d, math.Abs(float64(want[int32(numeric.Argmax(want))])))
				assert.Less(t, d, 1e-2)
				assert.Equal(t, int32(numeric.Argmax(want)), int32(numeric.Argmax(pre.Logits)))

				got := pre.Logits
				for step := range 6 {
					tok := int32(numeric.Argmax(want))
					want = ref.Decode(cache, tok, int32(n+step))
					out, err := e.Run(bridge.RunInput{First: 0, Last: e.NLayer(), Tokens: []int32{tok}, Positions: []int32{int32(n + step)}, WantLogits: true})
					require.NoError(t, err)
					got = out.Logits
					assert.Less(t, numeric.MaxAbsDiff(want, got), 1e-2, "decode step %d", step)
				}
			})
		}
	}
}

// Multi-turn reuse: a prompt that extends the cached one prefills only its
// new tokens (sdtp.Extend), and the result is what a one-shot forward pass
// gives with the same survivors per layer; so is a prompt that diverges
// after the caches are truncated at the divergence.
func TestExtendMatchesReferenceOfSameSurvivors(t *testing.T) {
	gemma := testmodel.Gemma3()
	gemma.NLayer = 7
	sched := sdtp.Schedule{Layers: []int{1, 3}, KeepRatios: []float64{0.6, 0.5}}
	for name, cfg := range map[string]testmodel.Config{"llama": testmodel.Llama(), "gemma3": gemma} {
		for _, scorer := range []string{"random", "attention"} {
			t.Run(name+"/"+scorer, func(t *testing.T) {
				ref, e := tinyEngine(t, cfg)
				sc, err := predictor.New(scorer, 5)
				require.NoError(t, err)

				text := func(n, salt int) []int32 {
					out := make([]int32, n)
					for i := range out {
						out[i] = int32(260 + (i*31+salt*17)%300)
					}
					return out
				}
				// Turn 1: a prompt, then three greedy decode steps fed back.
				toks := append([]int32{1}, text(119, 0)...)
				pre, err := sdtp.Prefill(context.Background(), e, sc, sched, toks, 48)
				require.NoError(t, err)
				logits := pre.Logits
				for range 3 {
					tok := int32(numeric.Argmax(logits))
					out, err := e.Run(bridge.RunInput{First: 0, Last: e.NLayer(), Tokens: []int32{tok}, Positions: []int32{int32(len(toks))}, WantLogits: true})
					require.NoError(t, err)
					toks, logits = append(toks, tok), out.Logits
				}
				before := positions(e)

				// Turn 2 extends turn 1 and its answer.
				from := len(toks)
				toks = append(toks, text(70, 1)...)
				pre, err = sdtp.Extend(context.Background(), e, sc, sched, toks, from, 48)
				require.NoError(t, err)
				assert.Equal(t, sched.Expected(70), pre.KeptPerStage, "the new segment is pruned on its own")
				after := positions(e)
				for l := range after {
					assert.Equal(t, before[l], after[l][:len(before[l])], "layer %d: cached cells are not revisited", l)
					for _, p := range after[l][len(before[l]):] {
						assert.GreaterOrEqual(t, p, int32(from))
					}
				}
				last := after[e.NLayer()-1]
				for p := range len(toks) - from {
					if sdtp.Protected(p, 70) {
						assert.Contains(t, last, int32(from+p), "segment-protected position %d", from+p)
					}
				}
				assert.Less(t, len(last)-len(before[e.NLayer()-1]), 70, "the segment was pruned")
				checkAgainstReference(t, ref, e, toks, pre.Logits)

				// Turn 3 diverges from turn 2 after position 150.
				div := 150
				e.Remove(div, -1)
				for l, ps := range positions(e) {
					require.NotEmpty(t, ps)
					assert.Less(t, ps[len(ps)-1], int32(div), "layer %d keeps nothing past the divergence", l)
				}
				toks = append(toks[:div], text(50, 2)...)
				pre, err = sdtp.Extend(context.Background(), e, sc, sched, toks, div, 48)
				require.NoError(t, err)
				checkAgainstReference(t, ref, e, toks, pre.Logits)
			})
		}
	}
}

func positions(e *bridge.Engine) [][]int32 {
	out := make([][]int32, e.NLayer())
	for l := range out {
		out[l] = e.Positions(l)
	}
	return out
}

// checkAgainstReference compares the engine's logits for toks with a
// reference prefill of the survivors the engine's caches hold, then three
// decode steps on both.
func checkAgainstReference(t *testing.T, ref *reference.Model, e *bridge.Engine, toks []int32, got []float32) {
	t.Helper()
	live := make([][]int, e.NLayer())
	for l, ps := range positions(e) {
		for _, p := range ps {
			live[l] = append(live[l], int(p))
		}
	}
	want, cache := ref.Prefill(toks, live)
	d := numeric.MaxAbsDiff(want, got)
	t.Logf("%d tokens: max |Δlogit| %.2e vs the reference on the same survivors", len(toks), d)
	assert.Less(t, d, 1e-2)
	assert.Equal(t, numeric.Argmax(want), numeric.Argmax(got))
	for step := range 3 {
		tok, pos := int32(numeric.Argmax(want)), int32(len(toks)+step)
		want = ref.Decode(cache, tok, pos)
		out, err := e.Run(bridge.RunInput{First: 0, Last: e.NLayer(), Tokens: []int32{tok}, Positions: []int32{pos}, WantLogits: true})
		require.NoError(t, err)
		assert.Less(t, numeric.MaxAbsDiff(want, out.Logits), 1e-2, "decode step %d", step)
	}
	e.Remove(len(toks), -1) // the decode steps were a check only
}

// layerAttnCapture scores at random and keeps the per-head layer
// attention the stage loop hands it.
type layerAttnCapture struct {
	swa  bridge.SWAAttention
	rnd  *predictor.Random
	seen []sdtp.ScoreInput
}

func (c *layerAttnCapture) Needs() sdtp.Needs { return sdtp.Needs{LayerAttention: true, SWA: c.swa} }
func (c *layerAttnCapture) Score(in sdtp.ScoreInput) ([]float32, error) {
	c.seen = append(c.seen, in)
	return c.rnd.Score(in)
}

// The engine's per-head window attention at every layer of a pruned
// prefill (computed in-graph, window × live) matches the pure-Go forward
// pass given the same surviving tokens, with sliding-window layers scored
// under the full causal mask or their own.
func TestLayerAttentionMatchesReference(t *testing.T) {
	gemma := testmodel.Gemma3()
	gemma.NLayer = 7 // six sliding-window layers (32 tokens) and a global one
	ref, e := tinyEngine(t, gemma)

	n := 160
	toks := testPrompt(n)
	sched := sdtp.Schedule{Layers: []int{2, 4, 6}, KeepRatios: []float64{0.6, 0.7, 0.8}}
	win := sdtp.TailLen(n) // 16; the last 48-token chunk holds it at every stage
	shape, _, _ := e.Shape()
	for _, swa := range []bridge.SWAAttention{bridge.SWAFullMask, bridge.SWAOwnMask} {
		sc := &layerAttnCapture{swa: swa, rnd: predictor.NewRandom(2)}
		pre, err := sdtp.Prefill(context.Background(), e, sc, sched, toks, 48)
		require.NoError(t, err)
		live := make([][]int, e.NLayer())
		for l, ps := range sdtp.LivePerLayer(sched, e.NLayer(), pre.LivePositions) {
			for _, p := range ps {
				live[l] = append(live[l], int(p))
			}
		}
		want := ref.WindowAttention(toks, live, win, swa == bridge.SWAFullMask)
		require.Len(t, sc.seen, 3)
		checked, farNonZero := 0, 0
		for _, in := range sc.seen {
			for _, la := range in.LayerAttention {
				require.Len(t, want[la.Layer], la.NHead)
				cells := len(in.Positions)
				maxDiff := 0.0
				for h := range la.NHead {
					require.Len(t, want[la.Layer][h], cells)
					for ci := range cells {
						maxDiff = math.Max(maxDiff, math.Abs(float64(la.Scores[h*cells+ci])-want[la.Layer][h][ci]))
						if shape[la.Layer].Window > 0 && int(in.Positions[ci]) < n-win-32 && la.Scores[h*cells+ci] > 0 {
							farNonZero++
						}
					}
				}
				// Sums over 16 queries of probabilities from F16 cached keys.
				t.Logf("swa %d layer %d: max |engine − reference| %.1e over %d heads × %d cells", swa, la.Layer, maxDiff, la.NHead, cells)
				assert.Less(t, maxDiff, 1e-2, "swa %d layer %d", swa, la.Layer)
				checked++
			}
		}
		assert.Equal(t, 6, checked, "layers 0–5 feed the three pruning points")
		if swa == bridge.SWAOwnMask {
			assert.Zero(t, farNonZero, "a sliding-window layer's own mask cannot reach beyond its 32-token window")
		} else {
			assert.Positive(t, farNonZero, "the full causal mask scores far tokens too")
		}
	}
}

// tinyEngine writes cfg as a tiny GGUF and loads it twice: as the pure-Go
// reference and as the staged engine (512 cells), freed with the test.
func tinyEngine(t *testing.T, cfg testmodel.Config) (*reference.Model, *bridge.Engine) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, testmodel.Write(path, cfg))
	ref, err := reference.Load(path)
	require.NoError(t, err)
	m, err := bridge.LoadModel(path, bridge.ModelParams{UseMMap: true})
	require.NoError(t, err)
	t.Cleanup(m.Free)
	c, err := m.NewContext(bridge.ContextParams{NCtx: 512, Threads: 2})
	require.NoError(t, err)
	t.Cleanup(c.Free)
	e, err := c.NewEngine(512, 2)
	require.NoError(t, err)
	t.Cleanup(e.Free)
	return ref, e
}

// testPrompt is BOS and n-1 tokens cycling through the tiny vocabulary.
func testPrompt(n int) []int32 {
	toks := make([]int32, n)
	toks[0] = 1
	for i := 1; i < n; i++ {
		toks[i] = int32(260 + (i*31)%300)
	}
	return toks
}
