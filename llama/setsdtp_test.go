package llama

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// SetSDTP switches a loaded model between modes: each call then runs as on
// a model loaded in that mode, and a refused switch keeps the old one.
func TestSetSDTPSwitchesMode(t *testing.T) {
	attention := SDTPOptions{Mode: ModeAttention, KeepRatio: 0.7}
	fresh, err := loadTiny(t, tiny.gemma3, SetContext(512), WithSDTP(attention)).Generate(longPrompt, opts(SetTokens(8), IgnoreEOS)...)
	require.NoError(t, err)
	l := loadTiny(t, tiny.gemma3, SetContext(512))
	dense, err := l.Generate(longPrompt, opts(SetTokens(8), IgnoreEOS)...)
	require.NoError(t, err)
	require.Nil(t, dense.SDTP)

	require.NoError(t, l.SetSDTP(attention))
	got, err := l.Generate(longPrompt, opts(SetTokens(8), IgnoreEOS)...)
	require.NoError(t, err)
	require.NotNil(t, got.SDTP)
	assert.Equal(t, fresh.Text, got.Text)
	assert.Equal(t, fresh.SDTP.KeptPerStage, got.SDTP.KeptPerStage)

	assert.Error(t, l.SetSDTP(SDTPOptions{Mode: "bogus"}))
	again, err := l.Generate(longPrompt, opts(SetTokens(8), IgnoreEOS)...)
	require.NoError(t, err)
	require.NotNil(t, again.SDTP, "the refused switch kept attention")
	assert.Equal(t, "attention", again.SDTP.Scorer)
	assert.Equal(t, got.Text, again.Text)

	require.NoError(t, l.SetSDTP(SDTPOptions{Mode: ModeLlamaCpp}))
	back, err := l.Generate(longPrompt, opts(SetTokens(8), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Nil(t, back.SDTP)
	assert.Equal(t, dense.Text, back.Text)

	l.Free()
	assert.ErrorIs(t, l.SetSDTP(attention), ErrFreed)
}
