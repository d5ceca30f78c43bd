package llama

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cancelModes are the two generation paths: llama.cpp's llama_decode and
// the staged engine.
func cancelModes() map[string]func(t *testing.T) *LLama {
	return map[string]func(t *testing.T) *LLama{
		ModeLlamaCpp: func(t *testing.T) *LLama { return loadTiny(t, tiny.llama, SetContext(1024)) },
		ModeAttention: func(t *testing.T) *LLama {
			return loadTiny(t, tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeAttention}))
		},
	}
}

func TestGenerateContextDoneBeforePrefill(t *testing.T) {
	for mode, load := range cancelModes() {
		t.Run(mode, func(t *testing.T) {
			l := load(t)
			want, err := l.Predict(longPrompt, opts(SetTokens(12), IgnoreEOS)...)
			require.NoError(t, err)

			cancelled, cancel := context.WithCancel(context.Background())
			cancel()
			expired, stop := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			defer stop()
			for ctx, ctxErr := range map[context.Context]error{cancelled: context.Canceled, expired: context.DeadlineExceeded} {
				res, err := l.GenerateContext(ctx, longPrompt, opts(SetTokens(12), IgnoreEOS)...)
				assert.ErrorIs(t, err, ErrCancelled)
				assert.ErrorIs(t, err, ctxErr)
				assert.Zero(t, res.PromptTokens, "nothing was evaluated")
				assert.Empty(t, res.Text)
			}

			got, err := l.PredictContext(context.Background(), longPrompt, opts(SetTokens(12), IgnoreEOS)...)
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
}

// A cancel during generation stops before the next token and returns the
// text so far; the next call gives the same greedy text as before.
func TestGenerateContextCancelledMidGeneration(t *testing.T) {
	for mode, load := range cancelModes() {
		t.Run(mode, func(t *testing.T) {
			l := load(t)
			want, err := l.Generate(longPrompt, opts(SetTokens(40), IgnoreEOS)...)
			require.NoError(t, err)
			require.Equal(t, 40, want.GeneratedTokens)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pieces := 0
			res, err := l.GenerateContext(ctx, longPrompt, opts(SetTokens(40), IgnoreEOS, SetTokenCallback(func(string) bool {
				if pieces++; pieces == 5 {
					cancel()
				}
				return true
			}))...)
			require.ErrorIs(t, err, ErrCancelled)
			require.ErrorIs(t, err, context.Canceled)
			// The fifth piece comes within the first dozen tokens (the
			// output holds back bytes of unfinished UTF-8 characters).
			assert.GreaterOrEqual(t, res.GeneratedTokens, 5)
			assert.Less(t, res.GeneratedTokens, 20, "stopped at the cancel, not at the 40-token budget")
			assert.True(t, strings.HasPrefix(want.Text, res.Text), "%q is the start of %q", res.Text, want.Text)

			again, err := l.Generate(longPrompt, opts(SetTokens(40), IgnoreEOS)...)
			require.NoError(t, err)
			assert.Equal(t, want.Text, again.Text)
			if mode == ModeLlamaCpp {
				assert.Equal(t, again.PromptTokens-1, again.ReusedTokens, "the prompt decoded before the cancel is reused")
			}
		})
	}
}

// Calls with and without cancels share one model: each call's cancel stops
// only that call, and the others still produce the greedy text (run with
// -race by `make test`).
func TestConcurrentCallsWithCancels(t *testing.T) {
	l := loadTiny(t, tiny.llama, SetContext(1024))
	want, err := l.Predict(longPrompt, opts(SetTokens(24), IgnoreEOS)...)
	require.NoError(t, err)
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if i%2 == 1 {
				time.AfterFunc(time.Duration(i)*100*time.Microsecond, cancel)
			}
			got, err := l.PredictContext(ctx, longPrompt, opts(SetTokens(24), IgnoreEOS)...)
			switch {
			case i%2 == 1 && errors.Is(err, ErrCancelled) && strings.HasPrefix(want, got):
				err = nil
			case err == nil && got != want:
				err = fmt.Errorf("call %d: got %q, want %q", i, got, want)
			}
			errs <- err
		}()
	}
	for range 16 {
		assert.NoError(t, <-errs)
	}
}
