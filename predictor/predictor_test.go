package predictor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/sdtp"
)

func TestRegistry(t *testing.T) {
	assert.Equal(t, []string{"attention", "attention-acc", "attention-acc-mean", "attention-acc-top2", "random"}, Names())
	_, err := New("nope", 0)
	assert.ErrorContains(t, err, "unknown scorer")
	assert.Panics(t, func() { Register("random", nil) })
}

func TestRandomIsSeeded(t *testing.T) {
	in := sdtp.ScoreInput{Positions: make([]int32, 50)}
	a, err := NewRandom(1).Score(in)
	require.NoError(t, err)
	b, err := NewRandom(1).Score(in)
	require.NoError(t, err)
	c, err := NewRandom(2).Score(in)
	require.NoError(t, err)
	assert.Equal(t, a, b)
	assert.NotEqual(t, a, c)
}

func TestAttentionPassesScoresThrough(t *testing.T) {
	s, err := New("attention", 0)
	require.NoError(t, err)
	assert.True(t, s.Needs().Attention)
	got, err := s.Score(sdtp.ScoreInput{Positions: []int32{0, 1}, Attention: []float32{0.25, 0.75}})
	require.NoError(t, err)
	assert.Equal(t, []float32{0.25, 0.75}, got)
	_, err = s.Score(sdtp.ScoreInput{Positions: []int32{0, 1}, Attention: []float32{1}})
	assert.Error(t, err)
}
