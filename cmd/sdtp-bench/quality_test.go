package main

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/internal/report"
	"github.com/go-sdtp/sdtp/sdtp"
)

func TestLogSoftmax(t *testing.T) {
	lp := logSoftmax([]float32{0, float32(math.Log(3))})
	assert.InDelta(t, 0.25, math.Exp(float64(lp[0])), 1e-6)
	assert.InDelta(t, 0.75, math.Exp(float64(lp[1])), 1e-6)
	// Shifting every logit changes nothing; a large shift does not overflow.
	shifted := logSoftmax([]float32{1000, 1000 + float32(math.Log(3))})
	assert.InDeltaSlice(t, lp, shifted, 1e-4)
	// Uniform over V tokens: every log-probability is -ln V, so a
	// continuation's perplexity is V.
	for _, v := range logSoftmax(make([]float32, 8)) {
		assert.InDelta(t, 8, math.Exp(-float64(v)), 1e-5)
	}
}

func TestKL(t *testing.T) {
	p := logSoftmax([]float32{0, 0})
	q := logSoftmax([]float32{0, float32(math.Log(3))})
	assert.Zero(t, kl(p, p))
	// 0.5·ln(0.5/0.25) + 0.5·ln(0.5/0.75) = 0.5·ln(4/3)
	assert.InDelta(t, 0.5*math.Log(4.0/3), kl(p, q), 1e-6)
	assert.Greater(t, kl(q, p), 0.0)
	// A token dense gives no probability contributes nothing, even where
	// the other mode's log-probability is -Inf too.
	inf := float32(math.Inf(-1))
	assert.InDelta(t, 0, kl([]float32{0, inf}, []float32{0, inf}), 1e-12)
}

func TestAgreement(t *testing.T) {
	assert.Equal(t, 1.0, agreement([]int32{1, 2, 3, 4}, []int32{1, 2, 3, 4}))
	assert.Equal(t, 0.75, agreement([]int32{1, 2, 3, 4}, []int32{1, 2, 0, 4}))
	assert.Equal(t, 0.5, agreement([]int32{1, 2, 3, 4}, []int32{1, 2}), "a shorter continuation disagrees where it is missing")
}

// At keep ratio 1 the pruning modes keep every token, so they must match
// dense exactly: KL 0, top-1 1, the same perplexity.
func TestQualityKeepAllEqualsDense(t *testing.T) {
	model, text := tinyInputs(t, 6, 30)
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"--model", model, "--text", text, "--quality", "--context-tokens", "200", "--continuation-tokens", "16",
		"--samples", "2", "--modes", "dense,random,attention,oracle", "--keep-ratios", "1", "--json"}, &stdout, &stderr), stderr.String())
	var rep report.Run
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	require.Len(t, rep.Results, 4)
	dense := rep.Results[0]
	require.Equal(t, "dense", dense.Mode)
	for _, r := range rep.Results[1:] {
		assert.Equal(t, 1.0, r.KeepRatio)
		assert.Zero(t, r.KLVsDense, r.Mode)
		assert.Equal(t, 1.0, r.Top1VsDense, r.Mode)
		assert.Equal(t, dense.PPL, r.PPL, r.Mode)
	}
}

// replay gives back what it recorded, stage by stage and by position,
// whatever order the positions come in; a position the recording never
// scored ranks below every recorded score.
func TestOracleReplay(t *testing.T) {
	recorded := []map[int32]float32{{0: 0.5, 1: -2, 2: 3, 3: 1}, {0: 0.25, 2: 0.75}}
	r := &replay{record: fixedScores(recorded)}
	for s := range recorded {
		var pos []int32
		for p := range int32(4) {
			if _, ok := recorded[s][p]; ok {
				pos = append(pos, p)
			}
		}
		_, err := r.Score(sdtp.ScoreInput{Stage: s, Positions: pos})
		require.NoError(t, err)
	}
	r.record = nil
	got, err := r.Score(sdtp.ScoreInput{Stage: 0, Positions: []int32{3, 0, 2}})
	require.NoError(t, err)
	assert.Equal(t, []float32{1, 0.5, 3}, got)
	got, err = r.Score(sdtp.ScoreInput{Stage: 1, Positions: []int32{1, 2, 3}})
	require.NoError(t, err)
	assert.Equal(t, float32(0.75), got[1])
	assert.Less(t, got[0], float32(0.25), "position 1 was dropped before stage 1 while recording")
	assert.Less(t, got[2], float32(0.25))
	_, err = r.Score(sdtp.ScoreInput{Stage: 2, Positions: []int32{0}})
	assert.ErrorContains(t, err, "stage 2 was not recorded")
}

// fixedScores scores each stage's positions from a table.
type fixedScores []map[int32]float32

func (fixedScores) Needs() sdtp.Needs { return sdtp.Needs{} }

func (f fixedScores) Score(in sdtp.ScoreInput) ([]float32, error) {
	out := make([]float32, len(in.Positions))
	for i, p := range in.Positions {
		out[i] = f[in.Stage][p]
	}
	return out, nil
}
