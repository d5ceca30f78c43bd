package llama

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/sdtp"
)

var longPrompt = strings.Repeat("the quick brown fox jumps over the lazy dog. ", 12)

func TestDenseModeMatchesLlamaCpp(t *testing.T) {
	for arch, path := range tinyModels() {
		t.Run(arch, func(t *testing.T) {
			want, err := loadTiny(t, path, SetContext(1024)).Predict(longPrompt, opts(SetTokens(24), IgnoreEOS)...)
			require.NoError(t, err)
			l := loadTiny(t, path, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeDense}))
			res, err := l.Generate(longPrompt, opts(SetTokens(24), IgnoreEOS)...)
			require.NoError(t, err)
			assert.Equal(t, want, res.Text)
			require.NotNil(t, res.SDTP)
			assert.InDelta(t, 1.0, res.SDTP.FLOPRatio, 1e-9)
		})
	}
}

func TestPruningModesReportStats(t *testing.T) {
	for _, mode := range []string{ModeRandom, ModeAttention, ModeSDTP} {
		t.Run(mode, func(t *testing.T) {
			l := loadTiny(t, tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: mode, KeepRatio: 0.7, Seed: 1}))
			res, err := l.Generate(longPrompt, opts(SetTokens(16), IgnoreEOS)...)
			require.NoError(t, err)
			assert.Equal(t, 16, res.GeneratedTokens)
			st := res.SDTP
			require.NotNil(t, st)
			assert.Equal(t, st.Schedule.Expected(res.PromptTokens), st.KeptPerStage)
			assert.Greater(t, st.FLOPRatio, 1.2)
			assert.Len(t, st.KeptPerLayer, 6)
			assert.Less(t, st.KeptPerLayer[5], st.KeptPerLayer[0])
		})
	}
}

func TestSDTPOptionsValidation(t *testing.T) {
	_, err := New(tiny.llama, SetContext(256), WithSDTP(SDTPOptions{Mode: "bogus"}))
	assert.ErrorContains(t, err, "unknown SDTP mode")
	_, err = New(tiny.llama, SetContext(256), WithSDTP(SDTPOptions{Mode: ModeRandom, Layers: []int{0}}))
	assert.Error(t, err)
	_, err = New(tiny.llama, SetContext(256), WithSDTP(SDTPOptions{Mode: ModeRandom, KeepRatio: 1.5}))
	assert.Error(t, err)
	_, err = New(tiny.llama, SetContext(256), WithSDTP(SDTPOptions{Mode: ModeRandom, Layers: []int{3, 2}}))
	assert.Error(t, err)
	s, err := sdtp.DefaultSchedule(4, 0.9)
	require.NoError(t, err)
	l := loadTiny(t, tiny.llama, WithSDTP(SDTPOptions{Mode: ModeRandom, Layers: s.Layers}))
	_, err = l.Predict("the cat", opts(SetTokens(4))...)
	assert.NoError(t, err)
}

func TestConcurrentStagedRequests(t *testing.T) {
	l := loadTiny(t, tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeAttention}))
	want, err := l.Predict(longPrompt, opts(SetTokens(8), IgnoreEOS)...)
	require.NoError(t, err)
	errs := make(chan error, 6)
	for range 6 {
		go func() {
			got, err := l.Predict(longPrompt, opts(SetTokens(8), IgnoreEOS)...)
			if err == nil && got != want {
				err = assert.AnError
			}
			errs <- err
		}()
	}
	for range 6 {
		assert.NoError(t, <-errs)
	}
}

func TestStagedContextLimits(t *testing.T) {
	l := loadTiny(t, tiny.llama, SetContext(256), WithSDTP(SDTPOptions{Mode: ModeRandom}))
	_, err := l.Predict(strings.Repeat("the cat ", 200), opts(SetTokens(4))...)
	assert.ErrorIs(t, err, ErrContextFull)
	// Tokens = 0 stops at the window; more tokens than fit is an error.
	res, err := l.Generate("the cat", opts(SetTokens(0), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, 256-res.PromptTokens+1, res.GeneratedTokens)
	_, err = l.Generate("the cat", opts(SetTokens(400), IgnoreEOS)...)
	assert.ErrorIs(t, err, ErrContextFull)
}
