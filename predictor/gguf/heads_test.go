package gguf

import (
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

func randomHeads(d int, layers []int) *Heads {
	h := &Heads{Layers: layers, HeadKeep: sdtp.HeadKeep, TailKeepFrac: sdtp.TailKeepFrac, Training: `{"note":"random"}`}
	for i := range layers {
		h.KeepRatios = append(h.KeepRatios, 0.6)
		h.MLPs = append(h.MLPs, predictor.RandomMLP(d, d/4, uint64(i+3)))
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

func (c *compareScorer) Needs() sdtp.Needs { return sdtp.Needs{Head: true, Hidden: true} }

func (c *compareScorer) Score(in sdtp.ScoreInput) ([]float32, error) {
	want := c.heads.MLPs[slices.Index(c.heads.Layers, in.Layer)].Scores(in.Hidden)
	for i := range want {
		c.diff = math.Max(c.diff, math.Abs(float64(want[i]-in.HeadScores[i])))
	}
	c.calls++
	return in.HeadScores, nil
}

func TestHeadsInsideGGUF(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "model.gguf"), filepath.Join(dir, "model-sdtp.gguf")
	require.NoError(t, testmodel.Write(in, testmodel.Gemma3()))
	none, err := Read(in)
	require.NoError(t, err)
	assert.Nil(t, none, "a plain model has no heads")

	heads := randomHeads(64, []int{2, 4})
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

	toks := make([]int32, 300)
	toks[0] = 2
	for i := 1; i < len(toks); i++ {
		toks[i] = int32(270 + (i*13)%300)
	}
	check := &compareScorer{heads: got}
	res, err := sdtp.Prefill(e, check, got.Schedule(), toks, 96)
	require.NoError(t, err)
	assert.Equal(t, 2, check.calls)
	t.Logf("max |in-graph − Go MLP| = %.2e", check.diff)
	assert.Less(t, check.diff, 1e-4, "in-graph heads match the Go MLP")
	viaScorer, err := sdtp.Prefill(e, sc, got.Schedule(), toks, 96)
	require.NoError(t, err)
	assert.Equal(t, res.LivePositions, viaScorer.LivePositions)
	assert.Equal(t, got.Schedule().Expected(len(toks)), viaScorer.KeptPerStage)

	// Re-embedding replaces the heads; bad heads are refused.
	require.NoError(t, Embed(out, out, randomHeads(64, []int{3})))
	again, err := Read(out)
	require.NoError(t, err)
	assert.Equal(t, []int{3}, again.Layers)
	assert.Error(t, Embed(in, out, randomHeads(64, []int{0})))
	_, err = randomHeads(32, []int{2}).Scorer(e)
	assert.ErrorContains(t, err, "width")
}
