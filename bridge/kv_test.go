package bridge

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/internal/numeric"
)

// kvPrompt is a deterministic prompt of n tokens.
func kvPrompt(n int) []int32 {
	toks := make([]int32, n)
	toks[0] = 1
	for i := 1; i < n; i++ {
		toks[i] = int32(300 + (i*37)%250)
	}
	return toks
}

// kvOrderTolerance bounds the logit difference between two caches holding
// the same K/V in another order: flash attention on the CPU accumulates V
// in F16, so the order of cells rounds differently (about 1e-3 here; 0 in
// the same order, see TestEngineDenseMatchesLlamaDecode).
const kvOrderTolerance = 5e-3

// Evicting cells and compacting the cache gives the logits of a cache that
// keeps them but masks them out: llama.cpp's own cache after removing the
// same positions. llama.cpp writes each new token into the first freed
// cell, where ours goes last, hence kvOrderTolerance.
func TestEvictMatchesMaskedReference(t *testing.T) {
	for name, cfg := range map[string]testmodel.Config{"llama": testmodel.Llama(), "gemma3": testmodel.Gemma3()} {
		t.Run(name, func(t *testing.T) {
			c, e := tinyEngine(t, cfg)
			prompt := kvPrompt(120)
			n := len(prompt)
			require.NoError(t, c.Decode(prompt, 0, OutputLast))
			require.NoError(t, e.Reset([]int{0}))
			_, err := e.Run(RunInput{First: 0, Last: e.NLayer(), Tokens: prompt, Positions: seq(0, n)})
			require.NoError(t, err)

			evicted := [][2]int{{5, 20}, {47, 48}, {60, 75}, {100, 104}} // [from, to) position ranges
			var keep []int
			for p := range n {
				gone := false
				for _, r := range evicted {
					gone = gone || (p >= r[0] && p < r[1])
				}
				if !gone {
					keep = append(keep, p) // cell index = position before any eviction
				}
			}
			bytesBefore := e.KVBytes()
			for il := range e.NLayer() {
				require.NoError(t, e.Evict(il, keep))
				assert.Equal(t, len(keep), e.Cells(il))
				want := make([]int32, len(keep))
				for i, p := range keep {
					want[i] = int32(p)
				}
				assert.Equal(t, want, e.Positions(il), "layer %d keeps original positions", il)
			}
			assert.Equal(t, bytesBefore*int64(len(keep))/int64(n), e.KVBytes())
			// What the next token sees without eviction, for scale.
			require.NoError(t, c.Decode([]int32{prompt[n-1]}, n, OutputLast))
			unevicted, err := c.Logits(-1)
			require.NoError(t, err)
			require.True(t, c.Truncate(n))
			for _, r := range evicted {
				require.True(t, c.Remove(r[0], r[1]))
			}

			tok := prompt[n-1]
			for step := range 6 {
				require.NoError(t, c.Decode([]int32{tok}, n+step, OutputLast))
				want, err := c.Logits(-1)
				require.NoError(t, err)
				out, err := e.Run(RunInput{First: 0, Last: e.NLayer(), Tokens: []int32{tok}, Positions: []int32{int32(n + step)}, WantLogits: true})
				require.NoError(t, err)
				d := numeric.MaxAbsDiff(want, out.Logits)
				t.Logf("decode step %d: max |Δlogit| %.2e", step, d)
				if step == 0 {
					t.Logf("eviction itself moves the logits by %.2e", numeric.MaxAbsDiff(unevicted, want))
					assert.Greater(t, numeric.MaxAbsDiff(unevicted, want), 10*kvOrderTolerance, "the evicted cells mattered")
				}
				assert.Less(t, d, kvOrderTolerance, "decode step %d", step)
				assert.Equal(t, numeric.Argmax(want), numeric.Argmax(out.Logits))
				tok = int32(numeric.Argmax(want))
			}
		})
	}
}

// The attention statistics are a side output: the logits do not change,
// and every query's attention over a layer's cells sums to one per head.
func TestAttnStatsAreASideOutput(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Gemma3())
	prompt := kvPrompt(100)
	n := len(prompt)
	run := func(mode AttnStats, window int) []float32 {
		e.TrackAttention(mode, window)
		require.NoError(t, e.Reset([]int{0, 3}))
		first, err := e.Run(RunInput{First: 0, Last: 3, Tokens: prompt[:60], Positions: seq(0, 60), WantHidden: true})
		require.NoError(t, err)
		second, err := e.Run(RunInput{First: 0, Last: 3, Tokens: prompt[60:], Positions: seq(60, n-60), WantHidden: true})
		require.NoError(t, err)
		hidden := append(first.Hidden, second.Hidden...)
		last, err := e.Run(RunInput{First: 3, Last: e.NLayer(), Hidden: hidden, Positions: seq(0, n), WantLogits: true})
		require.NoError(t, err)
		return last.Logits
	}
	const nHead = 4
	sum := func(x []float32) float64 {
		s := 0.0
		for _, v := range x {
			s += float64(v)
		}
		return s
	}

	plain := run(AttnStatsOff, 0)
	for il := range e.NLayer() {
		assert.Zero(t, sum(e.AttnScores(il)), "no statistics without tracking")
	}

	assert.Equal(t, plain, run(AttnStatsAccumulate, 0), "bit-identical logits")
	// Layers 0-2 ran 60 + 40 queries over two runs, layers 3-5 ran 100 in one.
	for il := range e.NLayer() {
		require.Len(t, e.AttnScores(il), n)
		assert.InDelta(t, float64(n*nHead), sum(e.AttnScores(il)), 1e-2, "layer %d", il)
	}

	assert.Equal(t, plain, run(AttnStatsReplace, 8), "bit-identical logits")
	for il := range e.NLayer() {
		assert.InDelta(t, float64(8*nHead), sum(e.AttnScores(il)), 1e-3, "layer %d: the last run's 8 queries", il)
	}
	scores := e.AttnScores(0)
	// Layer 0 is a sliding-window layer (32): the last 8 queries see nothing before position 100-8-31.
	assert.Zero(t, sum(scores[:n-8-31]), "cells outside the sliding window get no attention")
	assert.Positive(t, sum(scores[n-8-31:]))
	e.TrackAttention(AttnStatsOff, 0)
}

func TestEvictRejectsBadCells(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Llama())
	require.NoError(t, e.Reset([]int{0}))
	_, err := e.Run(RunInput{First: 0, Last: e.NLayer(), Tokens: kvPrompt(10), Positions: seq(0, 10)})
	require.NoError(t, err)
	assert.Error(t, e.Evict(0, []int{3, 2}), "not increasing")
	assert.Error(t, e.Evict(0, []int{0, 10}), "past the cells")
	assert.Error(t, e.Evict(e.NLayer(), []int{0}), "layer out of range")
	assert.Equal(t, 10, e.Cells(0), "a rejected eviction changes nothing")
	require.NoError(t, e.Evict(1, nil))
	assert.Equal(t, 0, e.Cells(1))
	assert.Equal(t, 10, e.Cells(0), "eviction is per layer")
}

// A context shift (Remove then Shift, llama_memory_seq_rm + seq_add) gives
// the logits of llama.cpp's own shifted cache: the same keys re-rotated by
// the same RoPE. llama.cpp leaves the shifted cells in their slots and
// writes new tokens into the freed ones, hence kvOrderTolerance.
func TestShiftMatchesLlamaCppKShift(t *testing.T) {
	for name, cfg := range map[string]testmodel.Config{"llama": testmodel.Llama(), "gemma3": testmodel.Gemma3(), "qwen2": testmodel.Qwen2()} {
		t.Run(name, func(t *testing.T) {
			c, e := tinyEngine(t, cfg)
			require.True(t, c.CanShift())
			prompt := kvPrompt(120)
			n := len(prompt)
			require.NoError(t, c.Decode(prompt, 0, OutputLast))
			require.NoError(t, e.Reset([]int{0}))
			_, err := e.Run(RunInput{First: 0, Last: e.NLayer(), Tokens: prompt, Positions: seq(0, n)})
			require.NoError(t, err)

			const keep, discard = 10, 50
			require.True(t, c.Discard(keep, discard, n))
			assert.Equal(t, discard*e.NLayer(), e.Remove(keep, keep+discard))
			assert.Error(t, e.Shift(keep+discard, -discard-1), "onto a kept cell")
			require.NoError(t, e.Shift(keep+discard, -discard))
			for il := range e.NLayer() {
				assert.Equal(t, append(seq(0, keep), seq(keep, n-keep-discard)...), e.Positions(il), "layer %d", il)
			}

			tok := prompt[n-1]
			for step := range 6 {
				pos := n - discard + step
				require.NoError(t, c.Decode([]int32{tok}, pos, OutputLast))
				want, err := c.Logits(-1)
				require.NoError(t, err)
				out, err := e.Run(RunInput{First: 0, Last: e.NLayer(), Tokens: []int32{tok}, Positions: []int32{int32(pos)}, WantLogits: true})
				require.NoError(t, err)
				d := numeric.MaxAbsDiff(want, out.Logits)
				t.Logf("decode step %d after the shift: max |Δlogit| %.2e", step, d)
				assert.Less(t, d, kvOrderTolerance, "decode step %d", step)
				assert.Equal(t, numeric.Argmax(want), numeric.Argmax(out.Logits))
				tok = int32(numeric.Argmax(want))
			}
		})
	}
}

// Layer attention of a window and sampled queries before it is the sum
// of those queries' own attention, each sampled one counted stride times,
// each read as the difference of two contiguous windows: the last k
// tokens minus the last k − 1.
func TestLayerAttentionSampledQueries(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Gemma3())
	prompt := kvPrompt(90)
	n := len(prompt)
	run := func(window, sampled, stride int) ([]LayerAttention, error) {
		require.NoError(t, e.Reset([]int{0}))
		out, err := e.Run(RunInput{First: 0, Last: e.NLayer(), Tokens: prompt, Positions: seq(0, n),
			LayerAttnWindow: window, LayerAttnSampled: sampled, LayerAttnStride: stride, LayerAttnSWA: SWAFullMask})
		return out.LayerAttn, err
	}
	const window, sampled, stride = 3, 5, 7
	got, err := run(window, sampled, stride)
	require.NoError(t, err)
	require.Len(t, got, e.NLayer())
	ks, weights := []int{1, 2, 3}, []float64{1, 1, 1} // query n−k
	for i := range sampled {
		ks, weights = append(ks, window+1+i*stride), append(weights, stride)
	}
	want := make([][]float64, len(got))
	for q, k := range ks {
		upTo, err := run(k, 0, 0)
		require.NoError(t, err)
		var before []LayerAttention
		if k > 1 {
			before, err = run(k-1, 0, 0)
			require.NoError(t, err)
		}
		for l, la := range upTo {
			if want[l] == nil {
				want[l] = make([]float64, len(la.Scores))
			}
			for j, v := range la.Scores {
				want[l][j] += weights[q] * float64(v)
				if before != nil {
					want[l][j] -= weights[q] * float64(before[l].Scores[j])
				}
			}
		}
	}
	for l, la := range got {
		require.Len(t, la.Scores, len(want[l]))
		for j, v := range la.Scores {
			assert.InDelta(t, want[l][j], float64(v), 1e-4, "layer %d score %d", l, j)
		}
	}

	_, err = run(10, 9, 10) // the last sample would be token 90 − 10 − 1 − 80 = −1
	assert.ErrorContains(t, err, "do not fit")
	_, err = run(10, 2, 0)
	assert.ErrorContains(t, err, "do not fit")
}
