package train

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/internal/numeric"
	"github.com/go-sdtp/sdtp/sdtp"
)

// tinyLlama loads a tiny random-weight llama with a 64-token context, its
// gradient pass and its staged engine, all freed when the test ends.
func tinyLlama(t *testing.T) (*bridge.Model, *bridge.Context, *bridge.Grad, *bridge.Engine) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.gguf")
	require.NoError(t, testmodel.Write(path, testmodel.Llama()))
	m, err := bridge.LoadModel(path, bridge.ModelParams{UseMMap: true})
	require.NoError(t, err)
	t.Cleanup(m.Free)
	ctx, err := m.NewContext(bridge.ContextParams{NCtx: 64, NBatch: 64, Threads: 1})
	require.NoError(t, err)
	t.Cleanup(ctx.Free)
	g, err := ctx.NewGrad(1)
	require.NoError(t, err)
	t.Cleanup(g.Free)
	eng, err := ctx.NewEngine(64, 1)
	require.NoError(t, err)
	t.Cleanup(eng.Free)
	return m, ctx, g, eng
}

// Answer-conditioned saliency on a tiny model: the gradient pass runs over
// prompt + answer, its loss is the mean cross-entropy of the answer tokens
// alone (checked against llama.cpp's own logits), and the record keeps
// the prompt's tokens, saliencies and streams only.
func TestCalibrateWithAnswer(t *testing.T) {
	m, ctx, g, eng := tinyLlama(t)
	cal := Calibrator{Grad: g, Engine: eng, Schedule: sdtp.Uniform([]int{1, 2}, 0.8), UBatch: 64, LossWindow: 0.1}

	rng := rand.New(rand.NewPCG(5, 6))
	prompt, answer := testmodel.RandomTokens(rng, m.NVocab(), 40), testmodel.RandomTokens(rng, m.NVocab(), 6)
	rec, err := cal.Run(Sequence{Prompt: prompt, Answer: answer})
	require.NoError(t, err)
	assert.Equal(t, prompt, rec.Tokens)
	assert.Equal(t, answer, rec.Answer)
	assert.Equal(t, 39, rec.LossFrom, "the last prompt token predicts the answer's first")
	d := m.NEmbd()
	for s := range cal.Schedule.Layers {
		assert.Len(t, rec.Saliency[s], 40, "stage %d: prompt tokens only", s)
		assert.Len(t, rec.GradNorm[s], 40)
		assert.Len(t, rec.Hidden[s], 40*d)
		for _, p := range rec.PrunedPos[s] {
			assert.Less(t, p, int32(40), "the pruned pass prefills the prompt")
		}
	}

	full := append(append([]int32{}, prompt...), answer...)
	require.NoError(t, ctx.Decode(full, 0, bridge.OutputAll))
	var ce float64
	for i := 39; i < len(full)-1; i++ {
		logits, err := ctx.Logits(i)
		require.NoError(t, err)
		ce += numeric.LogSumExp(logits) - float64(logits[full[i+1]])
	}
	assert.InEpsilon(t, ce/float64(len(answer)), rec.Loss, 1e-4, "the loss is the answer tokens' mean cross-entropy")

	plain, err := cal.Run(Sequence{Prompt: prompt})
	require.NoError(t, err)
	assert.Equal(t, 35, plain.LossFrom, "no answer: the prompt's final 10%")
	assert.NotEqual(t, plain.Saliency, rec.Saliency, "another loss, other saliencies")
}

// A record holds what each stage scores, which only the earlier stages'
// pruning changes: CacheKey leaves out the last stage's keep ratio, and
// this is what lets it.
func TestRecordIgnoresLastKeepRatio(t *testing.T) {
	m, _, g, eng := tinyLlama(t)
	prompt := testmodel.RandomTokens(rand.New(rand.NewPCG(7, 8)), m.NVocab(), 40)
	run := func(keep ...float64) Record {
		cal := Calibrator{Grad: g, Engine: eng, Schedule: sdtp.Schedule{Layers: []int{1, 2}, KeepRatios: keep}, UBatch: 64, LossWindow: 0.1}
		rec, err := cal.Run(Sequence{Prompt: prompt})
		require.NoError(t, err)
		return rec
	}
	base := run(0.8, 0.8)
	assert.Equal(t, base, run(0.8, 0.3), "the last stage's keep ratio changes nothing recorded")
	other := run(0.5, 0.8)
	assert.NotEqual(t, base.PrunedPos[1], other.PrunedPos[1], "an earlier stage's keep ratio changes what the last one scores")
}

// A one-stage calibration skips the oracle-pruned prefill: its record's
// pruned states are what that prefill records, the dense ones.
func TestOneStageRecordIsThePrunedPass(t *testing.T) {
	m, _, g, eng := tinyLlama(t)
	prompt := testmodel.RandomTokens(rand.New(rand.NewPCG(9, 10)), m.NVocab(), 40)
	cal := Calibrator{Grad: g, Engine: eng, Schedule: sdtp.Uniform([]int{2}, 0.5), UBatch: 64, LossWindow: 0.1}
	rec, err := cal.Run(Sequence{Prompt: prompt})
	require.NoError(t, err)
	oracle := &recorder{importance: rec.Saliency}
	_, err = sdtp.Prefill(context.Background(), eng, oracle, cal.Schedule, prompt, 64)
	require.NoError(t, err)
	require.Len(t, oracle.pos, 1)
	assert.Equal(t, oracle.pos, rec.PrunedPos)
	assert.Equal(t, oracle.hidden, rec.PrunedHidden)
	assert.Equal(t, rec.Hidden, rec.PrunedHidden)
}

// The calibration cache is keyed by what changes a record: the model, the
// stages, the keep ratios before the last stage and the loss window.
func TestCacheKey(t *testing.T) {
	key := func(window float64, keep ...float64) string {
		return CacheKey("abc", sdtp.Schedule{Layers: []int{3, 10}[2-len(keep):], KeepRatios: keep}, window)
	}
	assert.Equal(t, key(0.1, 0.9, 0.9), key(0.1, 0.9, 0.4))
	assert.Equal(t, key(0.1, 0.9), key(0.1, 0.399))
	assert.NotEqual(t, key(0.1, 0.9, 0.9), key(0.1, 0.8, 0.9))
	assert.NotEqual(t, key(0.1, 0.9), key(0.1, 0.9, 0.9))
	assert.NotEqual(t, key(0.1, 0.9), key(0.2, 0.9))
	// Existing caches keep their directory names: the key's text is fixed.
	assert.Equal(t, "226768c574559a15", key(0.1, 0.399))
}
