package llama

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/internal/cache"
	"github.com/go-sdtp/sdtp/sdtp"
)

// loadDefault loads the default model (Gemma 3 270M Q4_K_M) that `make deps`
// fetches; these are the integration tests.
func loadDefault(t *testing.T, opts ...ModelOption) *LLama {
	t.Helper()
	path := cache.DefaultModel()
	_, err := os.Stat(path)
	require.NoError(t, err, "default model missing: run `make deps` (or `make test`)")
	l, err := New(path, append([]ModelOption{SetContext(1024)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(l.Free)
	return l
}

func TestDefaultModelGreedyIsDeterministicAndCacheSafe(t *testing.T) {
	l := loadDefault(t)
	greedy := []PredictOption{SetTemperature(0), SetTokens(24), SetThreads(2)}
	const a, b = "The capital of France is", "def fibonacci(n):"

	first, err := l.Predict(a, greedy...)
	require.NoError(t, err)
	assert.NotEmpty(t, first)

	other, err := l.Predict(b, greedy...)
	require.NoError(t, err)
	assert.NotEqual(t, first, other)

	// Same prompt again: the cache now holds b, so a is re-evaluated, and a
	// third call reuses a's whole prefix; all must give the same text.
	again, err := l.Predict(a, greedy...)
	require.NoError(t, err)
	assert.Equal(t, first, again)
	res, err := l.Generate(a, greedy...)
	require.NoError(t, err)
	assert.Equal(t, first, res.Text)
	assert.Equal(t, res.PromptTokens-1, res.ReusedTokens, "the cached prompt prefix is reused")
}

func TestDefaultModelTokenizeAndEmbeddings(t *testing.T) {
	l := loadDefault(t, EnableEmbeddings)
	n, toks, err := l.TokenizeString("Hello world")
	require.NoError(t, err)
	assert.Equal(t, int32(len(toks)), n)
	assert.Equal(t, int32(2), toks[0], "Gemma's BOS comes first")
	assert.Equal(t, "Hello world", l.model.Detokenize(toks))

	emb, err := l.Embeddings("Hello world")
	require.NoError(t, err)
	assert.Len(t, emb, 640, "Gemma 3 270M has n_embd = 640")
	nonzero := 0
	for _, v := range emb {
		if v != 0 {
			nonzero++
		}
	}
	assert.Greater(t, nonzero, 600)

	same, err := l.TokenEmbeddings(toInts(toks))
	require.NoError(t, err)
	assert.Equal(t, emb, same)
}

func toInts(toks []int32) []int {
	out := make([]int, len(toks))
	for i, t := range toks {
		out[i] = int(t)
	}
	return out
}

func TestDefaultModelDenseEngineEqualsLlamaCpp(t *testing.T) {
	prompt := strings.Repeat("The history of the city begins with a small settlement on the river. ", 20)
	greedy := []PredictOption{SetTemperature(0), SetTokens(24), SetThreads(2)}
	want, err := loadDefault(t).Predict(prompt, greedy...)
	require.NoError(t, err)
	res, err := loadDefault(t, WithSDTP(SDTPOptions{Mode: ModeDense})).Generate(prompt, greedy...)
	require.NoError(t, err)
	assert.Equal(t, want, res.Text, "the staged engine without pruning reproduces llama.cpp")

	pruned, err := loadDefault(t, WithSDTP(SDTPOptions{Mode: ModeRandom, Seed: 1})).Generate(prompt, greedy...)
	require.NoError(t, err)
	assert.Equal(t, sdtpExpected(pruned), pruned.SDTP.KeptPerStage)
	assert.Equal(t, []int{2, 4, 5, 7, 9, 10, 12, 14, 15, 17}, pruned.SDTP.Schedule.Layers, "docs/SCHEDULES.md row for 18 layers")
	assert.Greater(t, pruned.SDTP.FLOPRatio, 1.5)
}

func sdtpExpected(r Result) []int { return r.SDTP.Schedule.Expected(r.PromptTokens) }

// A cancel during a long prompt's prefill returns within 200 ms in both
// paths: llama_decode and the staged engine stop inside the running batch.
func TestDefaultModelCancelStopsPrefillQuickly(t *testing.T) {
	prompt := strings.Repeat("The history of the city begins with a small settlement on the river. ", 150)
	greedy := []PredictOption{SetTemperature(0), SetTokens(8), SetThreads(2)}
	for _, mode := range []string{ModeLlamaCpp, ModeAttention} {
		t.Run(mode, func(t *testing.T) {
			l := loadDefault(t, SetContext(4096), WithSDTP(SDTPOptions{Mode: mode}))
			n, _, err := l.TokenizeString(prompt)
			require.NoError(t, err)
			require.Greater(t, n, int32(1900))
			want, err := l.Predict("The capital of France is", greedy...)
			require.NoError(t, err)

			// The full prefill takes seconds; the deadline falls inside it.
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			res, err := l.GenerateContext(ctx, prompt, greedy...)
			deadline, _ := ctx.Deadline()
			latency := time.Since(deadline)
			require.ErrorIs(t, err, ErrCancelled)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Zero(t, res.GeneratedTokens, "stopped in the prefill")
			t.Logf("%s: %d-token prompt, returned %v after the deadline", mode, n, latency.Round(time.Millisecond))
			assert.Less(t, latency, 200*time.Millisecond)

			got, err := l.Predict("The capital of France is", greedy...)
			require.NoError(t, err)
			assert.Equal(t, want, got, "the model works as before")
		})
	}
}

// Modes learned and sdtp find the predictors shipped for the default model
// with no option naming them (package predictors); sdtp fuses them with
// the question attention at the retrieval schedule.
func TestDefaultModelFindsShippedPredictors(t *testing.T) {
	l := loadDefault(t, WithSDTP(SDTPOptions{Mode: ModeLearned}))
	res, err := l.Generate("The capital of France is", SetTemperature(0), SetTokens(2), SetThreads(1))
	require.NoError(t, err)
	require.NotNil(t, res.SDTP)
	assert.Equal(t, ScorerONNX, res.SDTP.Scorer)
	assert.Equal(t, []int{2, 4, 5, 7, 9, 10, 12, 14, 15, 17}, res.SDTP.Schedule.Layers, "the shipped set's schedule")

	require.NoError(t, l.SetSDTP(SDTPOptions{Mode: ModeSDTP}))
	res, err = l.Generate("The capital of France is", SetTemperature(0), SetTokens(2), SetThreads(1))
	require.NoError(t, err)
	assert.Equal(t, ModeHybrid+"/"+ScorerONNX, res.SDTP.Scorer)
	assert.Equal(t, []int{7}, res.SDTP.Schedule.Layers, "the retrieval schedule: one cut at the layer nearest 0.4·18")
	assert.InDelta(t, 0.4131, res.SDTP.Schedule.KeepRatios[0], 1e-4)
	assert.Equal(t, sdtp.RetrievalSpanTrail, res.SDTP.Schedule.SpanTrail)
}
