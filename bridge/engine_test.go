package bridge

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/internal/numeric"
)

func tinyEngine(t *testing.T, cfg testmodel.Config) (*Context, *Engine) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, testmodel.Write(path, cfg))
	m, err := LoadModel(path, ModelParams{UseMMap: true})
	require.NoError(t, err)
	c, err := m.NewContext(ContextParams{NCtx: 512, NBatch: 512, Threads: 2})
	require.NoError(t, err)
	e, err := c.NewEngine(512, 2)
	require.NoError(t, err)
	t.Cleanup(func() { e.Free(); c.Free(); m.Free() })
	return c, e
}

func seq(from, n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(from + i)
	}
	return out
}

// With nothing pruned the engine reproduces llama_decode: prompt logits,
// then decode steps over the cache.
func TestEngineDenseMatchesLlamaDecode(t *testing.T) {
	for name, cfg := range map[string]testmodel.Config{"llama": testmodel.Llama(), "gemma3": testmodel.Gemma3(),
		"qwen2": testmodel.Qwen2(), "qwen3": testmodel.Qwen3()} {
		t.Run(name, func(t *testing.T) {
			c, e := tinyEngine(t, cfg)
			arch, ok := StagedArch(c.Model())
			require.True(t, ok)
			assert.Equal(t, name, arch)
			prompt, err := c.Model().Tokenize("the quick brown fox jumps over the lazy dog and the cat sat on the mat while the bird sang", true, false)
			require.NoError(t, err)
			for len(prompt) < 100 { // longer than gemma3's 32-token window
				prompt = append(prompt, prompt[1:]...)
			}
			n := len(prompt)

			require.NoError(t, c.Decode(prompt, 0, OutputLast))
			want, err := c.Logits(-1)
			require.NoError(t, err)
			require.NoError(t, e.Reset([]int{0}))
			// Two runs (chunks) for the prompt.
			half := n / 2
			_, err = e.Run(RunInput{First: 0, Last: e.NLayer(), Tokens: prompt[:half], Positions: seq(0, half)})
			require.NoError(t, err)
			out, err := e.Run(RunInput{First: 0, Last: e.NLayer(), Tokens: prompt[half:], Positions: seq(half, n-half), WantLogits: true})
			require.NoError(t, err)
			t.Logf("prompt: max abs diff %.2e over %d logits (spread %.2f)", numeric.MaxAbsDiff(want, out.Logits), len(want), want[numeric.Argmax(want)])
			assert.Less(t, numeric.MaxAbsDiff(want, out.Logits), 1e-3, "prompt logits")
			assert.Equal(t, n, e.Cells(0))

			tok := int32(numeric.Argmax(want))
			for step := range 8 {
				require.NoError(t, c.Decode([]int32{tok}, n+step, OutputLast))
				want, err = c.Logits(-1)
				require.NoError(t, err)
				out, err = e.Run(RunInput{First: 0, Last: e.NLayer(), Tokens: []int32{tok}, Positions: []int32{int32(n + step)}, WantLogits: true})
				require.NoError(t, err)
				assert.Less(t, numeric.MaxAbsDiff(want, out.Logits), 1e-3, "decode step %d", step)
				tok = int32(numeric.Argmax(want))
			}
		})
	}
}

func TestEngineAllLogitsMatchLlamaDecode(t *testing.T) {
	c, e := tinyEngine(t, testmodel.Llama())
	toks := seq(5, 40)
	require.NoError(t, c.Decode(toks[:32], 0, OutputNone))
	require.NoError(t, c.Decode(toks[32:], 32, OutputAll))
	require.NoError(t, e.Reset([]int{0}))
	_, err := e.Run(RunInput{First: 0, Last: e.NLayer(), Tokens: toks[:32], Positions: seq(0, 32)})
	require.NoError(t, err)
	out, err := e.Run(RunInput{First: 0, Last: e.NLayer(), Tokens: toks[32:], Positions: seq(32, 8), WantLogits: true, AllLogits: true})
	require.NoError(t, err)
	nv := c.Model().NVocab()
	require.Len(t, out.Logits, 8*nv)
	for row := range 8 {
		want, err := c.Logits(row)
		require.NoError(t, err)
		assert.Less(t, numeric.MaxAbsDiff(want, out.Logits[row*nv:(row+1)*nv]), 1e-4, "row %d", row)
	}
}
