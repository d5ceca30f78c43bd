package bridge

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
)

func tinyContext(t *testing.T, nCtx int) *Context {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, testmodel.Write(path, testmodel.Llama()))
	m, err := LoadModel(path, ModelParams{UseMMap: true})
	require.NoError(t, err)
	c, err := m.NewContext(ContextParams{NCtx: nCtx, NBatch: 64, Threads: 2})
	require.NoError(t, err)
	t.Cleanup(func() { c.Free(); m.Free() })
	return c
}

func TestDecodeChunksAndLogits(t *testing.T) {
	c := tinyContext(t, 256)
	m := c.Model()
	toks, err := m.Tokenize("the cat sat on the mat and the dog sat on the log", true, false)
	require.NoError(t, err)
	// 150 tokens in chunks of 64 give the same last logits as one token at a
	// time would for the same sequence.
	long := make([]int32, 0, 150)
	for len(long) < 150 {
		long = append(long, toks...)
	}
	long = long[:150]
	require.NoError(t, c.Decode(long, 0, OutputLast))
	chunked, err := c.Logits(-1)
	require.NoError(t, err)
	assert.Len(t, chunked, m.NVocab())

	c.Clear()
	for i, tok := range long {
		require.NoError(t, c.Decode([]int32{tok}, i, OutputLast))
	}
	single, err := c.Logits(-1)
	require.NoError(t, err)
	assert.InDeltaSlice(t, single, chunked, 1e-3)
}

func TestDecodeRejectsBadInput(t *testing.T) {
	c := tinyContext(t, 256)
	assert.Error(t, c.Decode(nil, 0, OutputLast))
	assert.ErrorContains(t, c.Decode([]int32{1, 99999}, 0, OutputLast), "vocabulary")
	assert.ErrorContains(t, c.Decode([]int32{-1}, 0, OutputLast), "vocabulary")
	assert.ErrorIs(t, c.Decode(make([]int32, 10), 250, OutputLast), ErrContextFull)
	assert.Error(t, c.Decode([]int32{1}, -1, OutputLast))
	assert.ErrorContains(t, c.Decode(make([]int32, 100), 0, OutputAll), "batch")
	// The context still works after rejected input.
	require.NoError(t, c.Decode([]int32{1, 5, 6}, 0, OutputAll))
	for row := range 3 {
		_, err := c.Logits(row)
		assert.NoError(t, err)
	}
	_, err := c.Logits(7)
	assert.Error(t, err)
}

func TestLoadModelErrorsCarryLlamaCppReason(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.gguf")
	require.NoError(t, os.WriteFile(path, []byte("GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff"), 0o644))
	_, err := LoadModel(path, ModelParams{})
	require.Error(t, err)
	assert.Regexp(t, `could not load .*: .+`, err.Error(), "llama.cpp's own message is attached")
}

func TestSystemInfoReportsCPUFeatures(t *testing.T) {
	assert.Contains(t, SystemInfo(), "CPU")
}
