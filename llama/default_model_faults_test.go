package llama

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 19's instances on the default model (integration), in llama.cpp's
// own path and a staged mode: SetRepeat(-1) penalises over the whole
// context, a completed grammar ends generation under IgnoreEOS, and a
// callback may tokenize while Predict runs.
func TestDefaultModelIssue19Faults(t *testing.T) {
	for _, mode := range []string{ModeLlamaCpp, ModeAttention} {
		t.Run(mode, func(t *testing.T) {
			l := loadDefault(t, WithSDTP(SDTPOptions{Mode: mode}))
			greedy := []PredictOption{SetTemperature(0), SetThreads(1), SetTokens(16), IgnoreEOS}
			gen := func(extra ...PredictOption) string {
				out, err := l.Predict("one one one one one one one one", append(greedy, extra...)...)
				require.NoError(t, err)
				return out
			}
			unpenalised := gen(SetPenalty(1))
			whole := gen(SetRepeat(-1), SetPenalty(3))
			assert.NotEqual(t, unpenalised, whole, "repeat -1 penalises")
			assert.Equal(t, gen(SetRepeat(1024), SetPenalty(3)), whole, "repeat -1 = the context size")

			for seed := range 3 {
				out, err := l.Predict("Is the sky blue? Answer yes or no:", SetThreads(1), SetTemperature(0.8), SetSeed(seed),
					IgnoreEOS, SetTokens(8), WithGrammar(`root ::= "yes" | "no"`))
				require.NoError(t, err)
				assert.Contains(t, []string{"yes", "no"}, out)
			}

			var counted int32
			within(t, 2*time.Minute, func() {
				_, err := l.Predict("The capital of France is", append(greedy, SetTokenCallback(func(piece string) bool {
					n, _, err := l.TokenizeString(piece)
					assert.NoError(t, err)
					counted += n
					return true
				}))...)
				assert.NoError(t, err)
			})
			assert.Positive(t, counted)
		})
	}
}
