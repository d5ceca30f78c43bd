package sdtp_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/internal/numeric"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/sdtp"
)

func TestKeepCells(t *testing.T) {
	scores := []float32{9, 9, 9, 9, 0.1, 0.7, 0.2, 0.7, 0.3, 0.9, 0.5, 0, 0}
	// 4 sinks, 3 heavy hitters (0.9, then the later of the two 0.7s, then the other), 2 recent.
	assert.Equal(t, []int{0, 1, 2, 3, 5, 7, 9, 11, 12}, sdtp.KeepCells(13, 9, 2, scores))
	assert.Equal(t, []int{0, 1, 2, 3, 8, 9, 10, 11, 12}, sdtp.KeepCells(13, 9, 5, nil), "sinks + recent window")
	assert.Equal(t, []int{0, 1, 2}, sdtp.KeepCells(3, 9, 5, nil), "under the limit: everything")
}

func TestNewKVLimiterRejectsBadPolicies(t *testing.T) {
	for _, c := range []struct {
		policy string
		budget float64
	}{{"lru", 0.5}, {sdtp.KVH2O, 0}, {sdtp.KVStreaming, -1}} {
		_, err := sdtp.NewKVLimiter(nil, c.policy, c.budget)
		assert.Error(t, err, "%s at %v", c.policy, c.budget)
	}
	k, err := sdtp.NewKVLimiter(nil, "", 0)
	require.NoError(t, err)
	assert.Equal(t, sdtp.KVNone, k.Policy())
}

// generate runs a pruned prefill and greedy decode steps under a KV
// policy, checking the caches after every step, and returns the logits.
func generate(t *testing.T, e *bridge.Engine, policy string, budget float64, steps int) [][]float32 {
	t.Helper()
	toks := prompt(200)
	n := len(toks)
	lim, err := sdtp.NewKVLimiter(e, policy, budget)
	require.NoError(t, err)
	lim.Start()
	sched := sdtp.Schedule{Layers: []int{1, 3}, KeepRatios: []float64{0.8, 0.8}}
	pre, err := sdtp.Prefill(context.Background(), e, predictor.Attention{}, sched, toks, 64)
	require.NoError(t, err)
	require.NoError(t, lim.Prefilled(n))
	logits := [][]float32{pre.Logits}
	for step := range steps {
		pos := int32(n + step)
		out, err := e.Run(bridge.RunInput{First: 0, Last: e.NLayer(), Tokens: []int32{int32(numeric.Argmax(logits[step]))},
			Positions: []int32{pos}, WantLogits: true})
		require.NoError(t, err)
		require.NoError(t, lim.Enforce())
		logits = append(logits, out.Logits)
		if lim.Limit() == 0 {
			continue
		}
		for il := range e.NLayer() {
			cells := e.Positions(il)
			require.LessOrEqual(t, len(cells), lim.Limit(), "layer %d at step %d", il, step)
			require.Equal(t, []int32{0, 1, 2, 3}, cells[:4], "sinks in layer %d", il)
			for i := range min(step+1, sdtp.SnapKVWindow) { // the generated part of the recent window
				require.Equal(t, pos-int32(i), cells[len(cells)-1-i], "recent window in layer %d at step %d", il, step)
			}
		}
	}
	return logits
}

// Every policy holds each layer to the budget over a long generation,
// keeping the sinks and the recent window, and decodes deterministically.
func TestKVPoliciesHoldTheBudget(t *testing.T) {
	for _, policy := range []string{sdtp.KVStreaming, sdtp.KVH2O, sdtp.KVSnapKV} {
		t.Run(policy, func(t *testing.T) {
			_, e := tinyEngine(t, testmodel.Gemma3())
			first := generate(t, e, policy, 0.4, 300)
			limit := 80 // 0.4 × 200 prompt tokens
			for il := range e.NLayer() {
				assert.Equal(t, limit, e.Cells(il), "full to the budget after 300 steps")
			}
			assert.Equal(t, first, generate(t, e, policy, 0.4, 300), "same logits twice")
		})
	}
}

// Policies differ: what they keep beyond the sinks and the window.
func TestKVPoliciesKeepDifferentCells(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Llama())
	kept := map[string][]int32{}
	for _, policy := range []string{sdtp.KVStreaming, sdtp.KVH2O, sdtp.KVSnapKV} {
		generate(t, e, policy, 0.4, 20)
		kept[policy] = e.Positions(e.NLayer() - 1)
	}
	assert.NotEqual(t, kept[sdtp.KVStreaming], kept[sdtp.KVH2O])
	assert.NotEqual(t, kept[sdtp.KVStreaming], kept[sdtp.KVSnapKV])
	assert.NotEqual(t, kept[sdtp.KVH2O], kept[sdtp.KVSnapKV])
}

// Policy none is no policy at all, and a budget no layer reaches changes
// nothing either (the statistics are a side output).
func TestKVNoneAndUnreachedBudgetsAreBitExact(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Gemma3())
	e.TrackAttention(bridge.AttnStatsOff, 0)
	toks := prompt(200)
	sched := sdtp.Schedule{Layers: []int{1, 3}, KeepRatios: []float64{0.8, 0.8}}
	pre, err := sdtp.Prefill(context.Background(), e, predictor.Attention{}, sched, toks, 64)
	require.NoError(t, err)
	plain := [][]float32{pre.Logits}
	for step := range 20 {
		out, err := e.Run(bridge.RunInput{First: 0, Last: e.NLayer(), Tokens: []int32{int32(numeric.Argmax(plain[step]))},
			Positions: []int32{int32(200 + step)}, WantLogits: true})
		require.NoError(t, err)
		plain = append(plain, out.Logits)
	}
	assert.Equal(t, plain, generate(t, e, sdtp.KVNone, 0, 20))
	assert.Equal(t, plain, generate(t, e, sdtp.KVH2O, 1000, 20))
	assert.Equal(t, plain, generate(t, e, sdtp.KVSnapKV, 1000, 20))
}
