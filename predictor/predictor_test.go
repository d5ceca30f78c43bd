package predictor

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
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

// The identity is kept per file version: the same file answers from memory,
// a file rewritten with other embeddings is hashed again.
func TestEmbeddingHashFollowsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	cfg := testmodel.Llama()
	require.NoError(t, testmodel.Write(path, cfg))
	first, err := EmbeddingHash(path)
	require.NoError(t, err)
	again, err := EmbeddingHash(path)
	require.NoError(t, err)
	assert.Equal(t, first, again)

	cfg.Seed = 2
	require.NoError(t, testmodel.Write(path, cfg))
	later := time.Now().Add(time.Second) // a new version even within the file system's time granularity
	require.NoError(t, os.Chtimes(path, later, later))
	other, err := EmbeddingHash(path)
	require.NoError(t, err)
	assert.NotEqual(t, first, other, "other embeddings, another identity")
	fresh, err := hashEmbeddings(path)
	require.NoError(t, err)
	assert.Equal(t, fresh, other)

	_, err = EmbeddingHash(filepath.Join(t.TempDir(), "missing.gguf"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
