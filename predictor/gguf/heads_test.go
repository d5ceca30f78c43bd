package gguf

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/bridge"
	ggufio "github.com/go-sdtp/sdtp/gguf"
	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/sdtp"
)

// randomHeads makes random heads of width d/4 on d-wide hidden states,
// followed by the context features when withContext.
func randomHeads(d int, layers []int, withContext bool) *Heads {
	h := &Heads{Layers: layers, HeadKeep: sdtp.HeadKeep, TailKeepFrac: sdtp.TailKeepFrac, Training: `{"note":"random"}`}
	k := 0
	if withContext {
		k = len(sdtp.ContextFeatures)
	}
	for i := range layers {
		h.KeepRatios = append(h.KeepRatios, 0.6)
		m := predictor.RandomMLP(d+k, d/4, uint64(i+3))
		m.D, m.Context = d, k
		h.MLPs = append(h.MLPs, m)
	}
	return h
}

// compareScorer checks the in-graph scores against the Go MLP on the same
// hidden states, then prunes with them.
type compareScorer struct {
	heads *Heads
	diff  float64
	calls int
}

func (c *compareScorer) Needs() sdtp.Needs {
	return sdtp.Needs{Head: true, Hidden: true, Context: c.heads.MLPs[0].Context > 0}
}

func (c *compareScorer) Score(in sdtp.ScoreInput) ([]float32, error) {
	want := c.heads.MLPs[slices.Index(c.heads.Layers, in.Layer)].Scores(in.Hidden, in.Context)
	for i := range want {
		c.diff = math.Max(c.diff, math.Abs(float64(want[i]-in.HeadScores[i])))
	}
	c.calls++
	return in.HeadScores, nil
}

func TestHeadsInsideGGUF(t *testing.T) {
	t.Run("hidden state", func(t *testing.T) { testHeadsInsideGGUF(t, false) })
	t.Run("with context", func(t *testing.T) { testHeadsInsideGGUF(t, true) })
}

func testHeadsInsideGGUF(t *testing.T, withContext bool) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "model.gguf"), filepath.Join(dir, "model-sdtp.gguf")
	require.NoError(t, testmodel.Write(in, testmodel.Gemma3()))
	none, err := Read(in)
	require.NoError(t, err)
	assert.Nil(t, none, "a plain model has no heads")

	heads := randomHeads(64, []int{2, 4}, withContext)
	require.NoError(t, Embed(in, out, heads))
	got, err := Read(out)
	require.NoError(t, err)
	assert.Equal(t, heads, got)

	// Stock llama.cpp still loads the file; the engine scores in-graph.
	m, err := bridge.LoadModel(out, bridge.ModelParams{UseMMap: true})
	require.NoError(t, err)
	defer m.Free()
	c, err := m.NewContext(bridge.ContextParams{NCtx: 512, Threads: 2})
	require.NoError(t, err)
	defer c.Free()
	e, err := c.NewEngine(512, 2)
	require.NoError(t, err)
	defer e.Free()
	sc, err := got.Scorer(e)
	require.NoError(t, err)
	assert.True(t, sc.Needs().Head)
	assert.Equal(t, withContext, sc.Needs().Context)

	toks := make([]int32, 300)
	toks[0] = 2
	for i := 1; i < len(toks); i++ {
		toks[i] = int32(270 + (i*13)%300)
	}
	copy(toks[280:], toks[100:120]) // some tokens recur in the tail: context features vary
	check := &compareScorer{heads: got}
	res, err := sdtp.Prefill(context.Background(), e, check, got.Schedule(), toks, 96)
	require.NoError(t, err)
	assert.Equal(t, 2, check.calls)
	t.Logf("max |in-graph − Go MLP| = %.2e", check.diff)
	assert.Less(t, check.diff, 1e-4, "in-graph heads match the Go MLP")
	viaScorer, err := sdtp.Prefill(context.Background(), e, sc, got.Schedule(), toks, 96)
	require.NoError(t, err)
	assert.Equal(t, res.LivePositions, viaScorer.LivePositions)
	assert.Equal(t, got.Schedule().Expected(len(toks)), viaScorer.KeptPerStage)

	// Re-embedding replaces the heads; bad heads are refused.
	require.NoError(t, Embed(out, out, randomHeads(64, []int{3}, !withContext)))
	again, err := Read(out)
	require.NoError(t, err)
	assert.Equal(t, []int{3}, again.Layers)
	assert.Equal(t, !withContext, again.MLPs[0].Context > 0)
	assert.Error(t, Embed(in, out, randomHeads(64, []int{0}, withContext)))
	_, err = randomHeads(32, []int{2}, withContext).Scorer(e)
	assert.ErrorContains(t, err, "width")
}

func TestReadRefusesBadHeads(t *testing.T) {
	dir := t.TempDir()
	model, good := filepath.Join(dir, "model.gguf"), filepath.Join(dir, "heads.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Gemma3()))
	require.NoError(t, Embed(model, good, randomHeads(64, []int{2, 4}, false))) // H = 16
	edit := func(change func(w *ggufio.Writer)) string {
		f, err := ggufio.Open(good)
		require.NoError(t, err)
		defer f.Close()
		w := ggufio.NewWriterFrom(f)
		change(w)
		out := filepath.Join(t.TempDir(), "edited.gguf")
		require.NoError(t, w.WriteFile(out))
		return out
	}
	withNaN := make([]float32, 16*64)
	withNaN[5] = float32(math.NaN())
	for name, c := range map[string]struct{ path, want string }{
		"NaN weight":         {edit(func(w *ggufio.Writer) { w.Set("sdtp.1.fc1.weight", ggufio.Slice(withNaN)) }), "fc1.weight[5] is NaN"},
		"wrong width":        {edit(func(w *ggufio.Writer) { w.Set("sdtp.0.fc1.bias", ggufio.Slice(make([]float32, 15))) }), "shapes do not match"},
		"stage count":        {edit(func(w *ggufio.Writer) { w.Set("sdtp.keep_ratios", ggufio.Slice([]float32{0.6})) }), "2 pruning layers but 1 keep ratios"},
		"layer out of range": {edit(func(w *ggufio.Writer) { w.Set("sdtp.layers", ggufio.Slice([]int32{2, 6})) }), "out of range"},
		"missing head":       {edit(func(w *ggufio.Writer) { w.Delete("sdtp.1.fc2.bias") }), "sdtp.1.fc2.bias"},
		"other context": {edit(func(w *ggufio.Writer) { w.Set("sdtp.context_features", ggufio.Slice([]string{"in_tail"})) }),
			"read context features [in_tail], this build computes"},
	} {
		h, err := Read(c.path)
		assert.Nil(t, h, name)
		assert.ErrorContains(t, err, c.want, name)
	}
}

// The fusion block round-trips through the sdtp.fusion.* keys (with and
// without a layer subset), a bad block is refused on write and on read,
// and heads without one read back without one.
func TestFusionInsideGGUF(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Gemma3()))
	out := filepath.Join(dir, "heads.gguf")
	h := randomHeads(64, []int{2, 4}, false)
	require.NoError(t, Embed(model, out, h))
	back, err := Read(out)
	require.NoError(t, err)
	assert.Nil(t, back.Fusion)

	for i, layers := range [][]int{nil, {1, 3}} {
		f := predictor.DefaultFusion(2)
		f.Method, f.AttentionWeights, f.HeadPool, f.TopK, f.LayerNorm, f.SlidingWindow = predictor.FuseZScore, []float64{0.3, 0.7}, predictor.PoolTopK, 2, predictor.NormRank, "skip"
		f.AttentionLayers, f.AttentionWindow, f.AttentionSampled = layers, 32*i, 48*(1-i)
		h.Fusion = &f
		require.NoError(t, Embed(model, out, h))
		back, err := Read(out)
		require.NoError(t, err)
		require.NotNil(t, back.Fusion)
		assert.Equal(t, f, *back.Fusion)
	}

	bad := predictor.DefaultFusion(3) // three weights for two stages
	h.Fusion = &bad
	assert.ErrorContains(t, Embed(model, out, h), "3 attention weights for 2 stages")
	// Written by hand past Embed's check: Read refuses it too.
	f, err := ggufio.Open(out)
	require.NoError(t, err)
	w := ggufio.NewWriterFrom(f)
	w.Set("sdtp.fusion.method", ggufio.String("sum"))
	broken := filepath.Join(dir, "broken.gguf")
	require.NoError(t, w.WriteFile(broken))
	f.Close()
	_, err = Read(broken)
	assert.ErrorContains(t, err, `fusion method "sum"`)
}
