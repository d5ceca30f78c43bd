package bridge

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
)

func cancelledContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// An armed abort flag stops llama_decode inside its graph; afterwards the
// cache holds none of the aborted tokens and decoding works as before.
func TestDecodeStopsWhenContextIsDone(t *testing.T) {
	c := tinyContext(t, 256)
	toks := seq(5, 100)
	require.NoError(t, c.Decode(toks, 0, OutputLast))
	want, err := c.Logits(-1)
	require.NoError(t, err)
	c.Clear()

	release := c.AbortWhen(cancelledContext())
	err = c.Decode(toks, 0, OutputLast)
	release()
	require.ErrorIs(t, err, ErrAborted)
	_, err = c.Logits(-1)
	assert.Error(t, err, "an aborted decode leaves no logits")

	release = c.AbortWhen(context.Background())
	require.NoError(t, c.Decode(toks, 0, OutputLast), "positions 0.. are free again")
	release()
	got, err := c.Logits(-1)
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestEngineRunStopsWhenContextIsDone(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Llama())
	in := RunInput{First: 0, Last: e.NLayer(), Tokens: seq(5, 40), Positions: seq(0, 40), WantLogits: true}
	require.NoError(t, e.Reset([]int{0}))
	want, err := e.Run(in)
	require.NoError(t, err)

	require.NoError(t, e.Reset([]int{0}))
	release := e.AbortWhen(cancelledContext())
	_, err = e.Run(in)
	release()
	require.ErrorIs(t, err, ErrAborted)
	assert.Equal(t, 0, e.Cells(0), "an aborted run appends nothing")

	got, err := e.Run(in)
	require.NoError(t, err)
	assert.Equal(t, want.Logits, got.Logits)
}
