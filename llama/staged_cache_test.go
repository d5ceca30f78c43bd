package llama

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The staged modes' prompt cache file holds the pruned per-layer caches:
// a fresh *LLama that reads it continues exactly as the one that wrote it.
func TestStagedPromptCacheFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "prompt.cache")
	o := WithSDTP(SDTPOptions{Mode: ModeAttention, KeepRatio: 0.7})
	gen := opts(SetTokens(6), IgnoreEOS, SetPathPromptCache(file))

	writer := loadTiny(t, tiny.gemma3, SetContext(1024), o)
	first, err := writer.Generate(longPrompt, gen...)
	require.NoError(t, err)
	require.FileExists(t, file)
	// The writer goes on from memory, a fresh reader from the file.
	inMemory, err := writer.Generate(longPrompt+"and more", opts(SetTokens(6), IgnoreEOS)...)
	require.NoError(t, err)
	reader := loadTiny(t, tiny.gemma3, SetContext(1024), o)
	fromFile, err := reader.Generate(longPrompt+"and more", opts(SetTokens(6), IgnoreEOS, SetPathPromptCache(file), EnablePromptCacheRO)...)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, fromFile.ReusedTokens, first.PromptTokens-1)
	assert.Equal(t, inMemory.ReusedTokens, fromFile.ReusedTokens)
	assert.Equal(t, inMemory.Text, fromFile.Text)
	assert.Equal(t, inMemory.SDTP.KeptPerLayer, fromFile.SDTP.KeptPerLayer)
	assert.Equal(t, inMemory.SDTP.DroppedAt, fromFile.SDTP.DroppedAt)

	// A file for another mode or schedule, or llama.cpp's own, is refused.
	_, err = loadTiny(t, tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeDense})).Generate(longPrompt+"x", opts(SetTokens(2), SetPathPromptCache(file))...)
	assert.ErrorContains(t, err, "another model, mode or schedule")
	plain := filepath.Join(t.TempDir(), "llamacpp.cache")
	_, err = loadTiny(t, tiny.gemma3, SetContext(1024)).Generate(longPrompt, opts(SetTokens(2), SetPathPromptCache(plain))...)
	require.NoError(t, err)
	_, err = loadTiny(t, tiny.gemma3, SetContext(1024), o).Generate(longPrompt+"x", opts(SetTokens(2), SetPathPromptCache(plain))...)
	assert.ErrorContains(t, err, "not a staged-mode prompt cache")

	// Read-only: never written.
	ro := filepath.Join(t.TempDir(), "ro.cache")
	_, err = loadTiny(t, tiny.gemma3, SetContext(1024), o).Generate(longPrompt, opts(SetTokens(2), SetPathPromptCache(ro), EnablePromptCacheRO)...)
	require.NoError(t, err)
	_, err = os.Stat(ro)
	assert.True(t, os.IsNotExist(err))
}
