package llama

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf"
	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/predictor/onnx/onnxtest"
)

// Each documented error (docs/ERRORS.md) is what the matching bad input
// produces, testable with errors.Is; bad model files are in
// TestNewRejectsBadFiles.
func TestErrorsAreTestable(t *testing.T) {
	dir := t.TempDir()
	newErr := func(path string, opts ...ModelOption) error {
		l, err := New(path, opts...)
		if l != nil {
			l.Free()
		}
		return err
	}
	freed, err := New(tiny.llama, SetContext(256))
	require.NoError(t, err)
	freed.Free()
	_, freedErr := freed.Predict("x")
	_, longErr := loadTiny(t, tiny.llama).Predict(strings.Repeat("the cat ", 300))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, cancelledErr := loadTiny(t, tiny.llama).PredictContext(cancelled, "the cat")
	reentrant := loadTiny(t, tiny.llama)
	var reentrantErr error
	_, err = reentrant.Predict("the cat", opts(SetTokens(1), IgnoreEOS, SetTokenCallback(func(string) bool {
		_, reentrantErr = reentrant.Predict("x")
		return true
	}))...)
	require.NoError(t, err)
	stagedErr := loadTiny(t, tiny.gemma3, WithSDTP(SDTPOptions{Mode: ModeAttention})).Eval("the cat")
	_, noTemplateErr := loadTiny(t, tiny.llama).ApplyChatTemplate([]ChatMessage{{Role: "user", Content: "hi"}}, true)
	other := filepath.Join(dir, "preds")
	onnxtest.WriteGemma3(t, other, "", []int{2}, 0.6, nil)

	for name, c := range map[string]struct {
		err    error
		target error
	}{
		"prompt too long": {longErr, ErrContextFull},
		"used after Free": {freedErr, ErrFreed},
		"predictors of another model": {newErr(tiny.llama, SetContext(256),
			WithSDTP(SDTPOptions{Mode: ModeSDTP, Predictors: other})), ErrPredictorMismatch},
		"pruning an unstaged architecture": {newErr(tiny.mistral3, SetContext(256),
			WithSDTP(SDTPOptions{Mode: ModeAttention})), ErrUnsupportedArch},
		"cancelled":                     {cancelledErr, ErrCancelled},
		"re-entrant call from callback": {reentrantErr, ErrReentrant},
		"Eval in a staged mode":         {stagedErr, ErrStagedUnsupported},
		"chat template of a base model": {noTemplateErr, ErrNoChatTemplate},
	} {
		t.Run(name, func(t *testing.T) {
			require.Error(t, c.err)
			assert.True(t, errors.Is(c.err, c.target), "%v is not %v", c.err, c.target)
		})
	}
}

// Bad arguments to New and Predict are refused with a message naming the
// value, in both generation paths; edge values that are valid work.
func TestBadInputsAreRefused(t *testing.T) {
	for mode, load := range cancelModes() {
		t.Run(mode, func(t *testing.T) {
			l := load(t)
			for name, c := range map[string]struct {
				text string
				opts []PredictOption
				want string
			}{
				"invalid UTF-8":         {"bad \xff utf-8", nil, "not valid UTF-8"},
				"negative tokens":       {"the cat", []PredictOption{SetTokens(-3)}, "tokens to predict -3"},
				"negative threads":      {"the cat", []PredictOption{SetThreads(-2)}, "threads -2 is negative"},
				"negative batch":        {"the cat", []PredictOption{SetBatch(-3)}, "batch -3 is negative"},
				"prompt over context":   {strings.Repeat("the cat ", 600), nil, "needs a context of at least"},
				"unterminated grammar":  {"the cat", []PredictOption{WithGrammar(`root ::= "x`)}, "grammar"},
				"logit bias not a bias": {"the cat", []PredictOption{SetLogitBias("banana")}, "logit bias"},
			} {
				_, err := l.Predict(c.text, append(opts(SetTokens(2)), c.opts...)...)
				assert.ErrorContains(t, err, c.want, name)
			}
			// Valid edge values: an empty prompt is BOS alone; 0 threads
			// means every core (capped by SDTP_THREADS).
			for name, call := range map[string][]PredictOption{
				"empty prompt": nil,
				"0 threads":    {SetThreads(0)},
			} {
				res, err := l.Generate("", append(opts(SetTokens(3), IgnoreEOS), call...)...)
				require.NoError(t, err, name)
				assert.Equal(t, 3, res.GeneratedTokens, name)
			}
		})
	}

	// A model that adds no BOS has nothing to start from.
	w, err := testmodel.Build(testmodel.Llama())
	require.NoError(t, err)
	w.Set("tokenizer.ggml.add_bos_token", gguf.Bool(false))
	noBOS := filepath.Join(t.TempDir(), "no-bos.gguf")
	require.NoError(t, w.WriteFile(noBOS))
	_, err = loadTiny(t, noBOS).Predict("")
	assert.ErrorContains(t, err, "empty prompt")

	for name, c := range map[string]struct {
		opts []ModelOption
		want string
	}{
		"negative context":      {[]ModelOption{SetContext(-1)}, "context size -1 is negative"},
		"negative batch":        {[]ModelOption{SetNBatch(-1)}, "batch size -1 is negative"},
		"unknown mode":          {[]ModelOption{WithSDTP(SDTPOptions{Mode: "bogus"})}, "unknown SDTP mode"},
		"keep ratio negative":   {[]ModelOption{WithSDTP(SDTPOptions{Mode: ModeRandom, KeepRatio: -0.5})}, "keep ratio -0.5"},
		"keep ratio over 1":     {[]ModelOption{WithSDTP(SDTPOptions{Mode: ModeRandom, KeepRatio: 1.5})}, "keep ratio 1.5"},
		"keep ratio NaN":        {[]ModelOption{WithSDTP(SDTPOptions{Mode: ModeRandom, KeepRatio: math.NaN()})}, "keep ratio NaN"},
		"prune layer 0":         {[]ModelOption{WithSDTP(SDTPOptions{Mode: ModeRandom, Layers: []int{0}})}, "out of range"},
		"prune layer past last": {[]ModelOption{WithSDTP(SDTPOptions{Mode: ModeRandom, Layers: []int{1, 6}})}, "out of range"},
		"prune layers unsorted": {[]ModelOption{WithSDTP(SDTPOptions{Mode: ModeRandom, Layers: []int{3, 2}})}, "strictly increasing"},
		"prune layer twice":     {[]ModelOption{WithSDTP(SDTPOptions{Mode: ModeRandom, Layers: []int{2, 2}})}, "strictly increasing"},
	} {
		l, err := New(tiny.gemma3, append([]ModelOption{SetContext(256)}, c.opts...)...)
		assert.Nil(t, l, name)
		assert.ErrorContains(t, err, c.want, name)
	}
}
