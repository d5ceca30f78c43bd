package llama

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Prefix rules in the staged modes, as llama.cpp's path applies them: a
// prompt that extends the cached tokens (the previous prompt and the
// answer) prefills only its new tokens; one that diverges reuses the
// common prefix. Without pruning the answers equal a fresh prefill's.
func TestStagedPromptReuse(t *testing.T) {
	for arch, path := range tinyModels() {
		t.Run(arch, func(t *testing.T) {
			ref := loadTiny(t, path, SetContext(1024))
			l := loadTiny(t, path, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeDense}))
			turn := func(prompt string) (staged, fresh Result) {
				t.Helper()
				staged, err := l.Generate(prompt, opts(SetTokens(6), IgnoreEOS)...)
				require.NoError(t, err)
				want, err := ref.Generate(prompt, opts(SetTokens(6), IgnoreEOS)...)
				require.NoError(t, err)
				assert.Equal(t, want.Text, staged.Text, "same answer as llama.cpp")
				assert.Equal(t, want.ReusedTokens, staged.ReusedTokens, "same prefix reused as llama.cpp")
				require.NotNil(t, staged.SDTP)
				assert.Equal(t, staged.PromptTokens-staged.ReusedTokens, staged.SDTP.KeptPerStage[0], "only the new tokens are prefilled")
				return staged, want
			}
			first, _ := turn(longPrompt)
			assert.Zero(t, first.ReusedTokens)
			extended := longPrompt + strings.ToValidUTF8(first.Text, "") + " and then the dog slept."
			second, _ := turn(extended)
			assert.GreaterOrEqual(t, second.ReusedTokens, first.PromptTokens, "extends the first prompt")
			third, _ := turn(longPrompt[:len(longPrompt)/2] + "a cat sat on the mat.")
			assert.Less(t, third.ReusedTokens, first.PromptTokens, "diverges inside the first prompt")
			assert.Positive(t, third.ReusedTokens)
			again, _ := turn(longPrompt[:len(longPrompt)/2] + "a cat sat on the mat.")
			assert.Equal(t, again.PromptTokens-1, again.ReusedTokens, "a repeated prompt re-runs its last token only")
		})
	}
}

// In a pruning mode the new tokens of an extended prompt are pruned among
// themselves; the cached layers keep what they held.
func TestPrunedPromptReuseKeepsTheCache(t *testing.T) {
	l := loadTiny(t, tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeAttention, KeepRatio: 0.7}))
	first, err := l.Generate(longPrompt, opts(SetTokens(4), IgnoreEOS)...)
	require.NoError(t, err)
	cells := first.SDTP.KeptPerLayer
	second, err := l.Generate(longPrompt+first.Text+longPrompt, opts(SetTokens(4), IgnoreEOS)...)
	require.NoError(t, err)
	require.Positive(t, second.ReusedTokens)
	st := second.SDTP
	assert.Equal(t, "attention", st.Scorer)
	n := second.PromptTokens - second.ReusedTokens
	assert.Equal(t, st.Schedule.Expected(n), st.KeptPerStage, "the new segment is pruned on its own")
	for il := range cells {
		assert.Greater(t, st.KeptPerLayer[il], cells[il], "layer %d keeps its cells and adds new ones", il)
	}
	assert.Len(t, st.DroppedAt, second.PromptTokens)
	assert.Greater(t, st.FLOPRatio, 1.2)
}

// A generation that fills the window shifts it as llama.cpp's path does
// (keep NKeep, drop half of the rest) and goes on: the dense staged
// engine writes what llama_decode writes.
func TestStagedContextShiftMatchesLlamaCpp(t *testing.T) {
	for arch, path := range tinyModels() {
		t.Run(arch, func(t *testing.T) {
			// One shift, then 40 tokens: random-weight models soon repeat
			// themselves into near-ties that rounding may break either way.
			var n int
			gen := func(mode string) Result {
				l := loadTiny(t, path, SetContext(256), WithSDTP(SDTPOptions{Mode: mode}))
				toks, err := l.model.Tokenize(longPrompt[:200], true, false)
				require.NoError(t, err)
				n = 256 - len(toks) + 40
				res, err := l.Generate(longPrompt[:200], opts(SetTokens(n), SetNKeep(8), IgnoreEOS)...)
				require.NoError(t, err)
				return res
			}
			want, got := gen(ModeLlamaCpp), gen(ModeDense)
			require.Equal(t, n, want.GeneratedTokens)
			assert.Equal(t, n, got.GeneratedTokens, "shifted instead of stopping")
			assert.Equal(t, want.Text, got.Text)
		})
	}
	l := loadTiny(t, tiny.gemma3, SetContext(256), WithSDTP(SDTPOptions{Mode: ModeAttention}))
	res, err := l.Generate(longPrompt[:200], opts(SetTokens(300), SetNKeep(8), IgnoreEOS)...)
	require.NoError(t, err, "a pruning mode shifts too")
	assert.Equal(t, 300, res.GeneratedTokens)
}
