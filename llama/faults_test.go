package llama

// Issue 19: explicit edge values, options ignored in combination,
// re-entrant calls from a token callback, and a grammar that completes
// under IgnoreEOS.

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/gguf"
	"github.com/go-sdtp/sdtp/predictor/onnx/onnxtest"
	"github.com/go-sdtp/sdtp/sdtp"
)

// within runs f and fails the test if it does not return in time (a
// deadlock must fail the test, not hang it).
func within(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		// The deadlocked call holds the model, so the test's cleanup
		// (Free) would wait forever too: end the test binary instead.
		panic(fmt.Sprintf("%s: no return within %v: deadlock", t.Name(), d))
	}
}

// SetRepeat(-1) is go-llama.cpp's and llama.cpp's "the whole context";
// llama.cpp's penalty sampler itself reads -1 as 0 (off).
func TestRepeatMinusOneIsTheWholeContext(t *testing.T) {
	for mode, load := range cancelModes() {
		t.Run(mode, func(t *testing.T) {
			l := load(t)
			gen := func(extra ...PredictOption) string {
				out, err := l.Predict("the cat", opts(append([]PredictOption{SetTokens(24), IgnoreEOS}, extra...)...)...)
				require.NoError(t, err)
				return out
			}
			unpenalised := gen(SetPenalty(1))
			whole := gen(SetRepeat(-1), SetPenalty(3))
			assert.NotEqual(t, unpenalised, whole, "the penalty applies")
			assert.Equal(t, gen(SetRepeat(1024), SetPenalty(3)), whole, "-1 = n_ctx")
		})
	}
}

// Explicit edge values mean what llama.cpp / go-llama.cpp mean by them,
// or are refused with a message naming the option.
func TestPredictEdgeValues(t *testing.T) {
	for mode, load := range cancelModes() {
		t.Run(mode, func(t *testing.T) {
			l := load(t)
			for name, c := range map[string]struct {
				opt  PredictOption
				want string
			}{
				"tokens -3":  {SetTokens(-3), "tokens to predict -3"},
				"threads -2": {SetThreads(-2), "threads -2"},
				"batch 0":    {SetBatch(0), "batch 0"},
				"repeat -2":  {SetRepeat(-2), "repeat (last tokens penalised) -2"},
				"penalty 0":  {SetPenalty(0), "repeat penalty 0"},
				"nkeep -2":   {SetNKeep(-2), "NKeep -2"},
				"tfs 0.9":    {SetTailFreeSamplingZ(0.9), "tail-free sampling"},
				"negative":   {SetNegativePrompt("no"), "NegativePrompt"},
			} {
				_, err := l.Predict("the cat", append(opts(SetTokens(2)), c.opt)...)
				assert.ErrorContains(t, err, c.want, name)
			}
			// llama.cpp's -1 for n_predict ("infinity") and -2 ("until the
			// context is full") run to the end of the window; -1 threads
			// is every core.
			for _, n := range []int{-1, -2} {
				res, err := l.Generate(longPrompt, opts(SetTokens(n), IgnoreEOS, SetThreads(-1))...)
				require.NoError(t, err, n)
				assert.InDelta(t, 1024, res.PromptTokens+res.GeneratedTokens, 1, "tokens %d fills the context", n)
			}
			// top-p 0 and typical-p 0 keep only the most likely token, as in
			// llama.cpp (before: read as "off"), so sampling is greedy.
			greedyOut, err := l.Predict("the cat", opts(SetTokens(12), IgnoreEOS)...)
			require.NoError(t, err)
			typical := map[string]bool{}
			for seed := range 3 {
				sample := func(o PredictOption) string {
					out, err := l.Predict("the cat", SetThreads(2), SetTemperature(1.5), SetTopK(0), SetSeed(seed), SetTokens(12), IgnoreEOS, o)
					require.NoError(t, err)
					return out
				}
				assert.Equal(t, greedyOut, sample(SetTopP(0)), "top-p 0")
				typical[sample(SetTypicalP(0))] = true
			}
			assert.Len(t, typical, 1, "typical-p 0 keeps one token: no randomness left")
		})
	}
	_, err := New(tiny.llama, SetNBatch(0))
	assert.ErrorContains(t, err, "batch size 0")
}

// SetNDraft(0) drafts nothing (go-llama.cpp's meaning): the target
// decodes alone, with the same text.
func TestSpeculativeNDraftZero(t *testing.T) {
	target, draft := loadTiny(t, tiny.llama), loadTiny(t, tiny.draft)
	want, err := target.Predict("the cat", opts(SetTokens(16), IgnoreEOS)...)
	require.NoError(t, err)
	got, err := target.SpeculativeSampling(draft, "the cat", opts(SetTokens(16), IgnoreEOS, SetNDraft(0))...)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	_, err = target.SpeculativeSampling(draft, "the cat", opts(SetTokens(4), SetNDraft(-1))...)
	assert.ErrorContains(t, err, "NDraft -1")
}

// Pruning settings in a mode that prunes nothing, predictors outside mode
// sdtp, and a LoRA adapter in a staged mode are refused, not ignored.
func TestSDTPOptionsIgnoredInModeAreRefused(t *testing.T) {
	lora := filepath.Join(t.TempDir(), "lora.gguf")
	require.NoError(t, testmodel.WriteLora(lora, testmodel.Gemma3(), 4, 0.5, 3))
	for name, c := range map[string]struct {
		opts []ModelOption
		want string
	}{
		"keep ratio, llamacpp":  {[]ModelOption{WithSDTP(SDTPOptions{KeepRatio: 0.5})}, "keep ratio 0.5 given in mode llamacpp"},
		"keep ratio, dense":     {[]ModelOption{WithSDTP(SDTPOptions{Mode: ModeDense, KeepRatio: 0.5})}, "keep ratio 0.5 given in mode dense"},
		"layers, llamacpp":      {[]ModelOption{WithSDTP(SDTPOptions{Mode: ModeLlamaCpp, Layers: []int{2}})}, "pruning layers [2] given in mode llamacpp"},
		"predictors, random":    {[]ModelOption{WithSDTP(SDTPOptions{Mode: ModeRandom, Predictors: "p"})}, "predictors p given in mode random"},
		"ubatch negative":       {[]ModelOption{WithSDTP(SDTPOptions{Mode: ModeDense, UBatch: -1})}, "ubatch -1"},
		"ubatch, llamacpp":      {[]ModelOption{WithSDTP(SDTPOptions{UBatch: 64})}, "ubatch 64 given in mode llamacpp"},
		"KV budget, no policy":  {[]ModelOption{WithSDTP(SDTPOptions{Mode: ModeDense, KVBudget: 0.5})}, "KV budget 0.5 given without a KV policy"},
		"LoRA, staged":          {[]ModelOption{SetLoraAdapter(lora), WithSDTP(SDTPOptions{Mode: ModeDense})}, "LoRA adapter"},
		"LoRA, attention":       {[]ModelOption{SetLoraAdapter(lora), WithSDTP(SDTPOptions{Mode: ModeAttention})}, "LoRA adapter"},
		"empty layers, pruning": {[]ModelOption{WithSDTP(SDTPOptions{Mode: ModeRandom, Layers: []int{}})}, "no stages"},
	} {
		l, err := New(tiny.gemma3, append([]ModelOption{SetContext(256)}, c.opts...)...)
		assert.Nil(t, l, name)
		assert.ErrorContains(t, err, c.want, name)
	}
	_, err := New(tiny.gemma3, SetContext(256), SetLoraAdapter(lora), WithSDTP(SDTPOptions{Mode: ModeDense}))
	assert.ErrorIs(t, err, ErrStagedUnsupported)
}

// Learned predictors run at the layers asked for when they have a
// predictor there (a subset of their stages), and refuse other layers
// naming the ones they cover: ONNX predictors and heads in the GGUF.
func TestLearnedPredictorsAtChosenLayers(t *testing.T) {
	hash, err := predictor.EmbeddingHash(tiny.gemma3)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "preds")
	onnxtest.WriteGemma3(t, dir, hash, []int{2, 4}, 0.6, nil)
	withHeads := filepath.Join(t.TempDir(), "with-heads.gguf")
	heads := &gguf.Heads{Layers: []int{2, 4}, KeepRatios: []float64{0.6, 0.6}, HeadKeep: sdtp.HeadKeep, TailKeepFrac: sdtp.TailKeepFrac}
	for i := range heads.Layers {
		heads.MLPs = append(heads.MLPs, predictor.RandomMLP(64, 16, uint64(5+i)))
	}
	require.NoError(t, gguf.Embed(tiny.gemma3, withHeads, heads))

	for name, load := range map[string]func(o SDTPOptions) (*LLama, error){
		"onnx": func(o SDTPOptions) (*LLama, error) {
			o.Predictors = dir
			return New(tiny.gemma3, SetContext(1024), WithSDTP(o))
		},
		"gguf-heads": func(o SDTPOptions) (*LLama, error) { return New(withHeads, SetContext(1024), WithSDTP(o)) },
	} {
		t.Run(name, func(t *testing.T) {
			l, err := load(SDTPOptions{Mode: ModeLearned, Layers: []int{4}})
			require.NoError(t, err)
			defer l.Free()
			res, err := l.Generate(longPrompt, opts(SetTokens(2), IgnoreEOS)...)
			require.NoError(t, err)
			assert.Equal(t, sdtp.Schedule{Layers: []int{4}, KeepRatios: []float64{0.6}}, res.SDTP.Schedule, "the user's layer at its trained ratio")
			assert.Len(t, res.SDTP.KeptPerStage, 2, "one stage")
			assert.Equal(t, res.PromptTokens, res.SDTP.KeptPerLayer[3], "nothing pruned before layer 4")
			assert.Less(t, res.SDTP.KeptPerLayer[4], res.PromptTokens)

			l2, err := load(SDTPOptions{Mode: ModeLearned, Layers: []int{2, 4}, KeepRatio: 0.8})
			require.NoError(t, err)
			defer l2.Free()
			res, err = l2.Generate(longPrompt, opts(SetTokens(2), IgnoreEOS)...)
			require.NoError(t, err)
			assert.Equal(t, sdtp.Uniform([]int{2, 4}, 0.8), res.SDTP.Schedule)

			_, err = load(SDTPOptions{Mode: ModeLearned, Layers: []int{3}})
			assert.ErrorContains(t, err, "pruning layer 3 has no learned predictor: the predictors cover layers [2 4]")
		})
	}
}

// The prompt-cache options, Eval, SaveState/LoadState and speculative
// sampling cannot apply to the staged engine (it starts every call from an
// empty cache): refused with ErrStagedUnsupported, nothing written.
func TestStagedModesRefuseWhatTheyCannotHonour(t *testing.T) {
	l := loadTiny(t, tiny.gemma3, WithSDTP(SDTPOptions{Mode: ModeAttention}))
	file := filepath.Join(t.TempDir(), "cache.bin")
	// (Prompt cache files are supported in staged modes: staged_cache_test.go.)
	assert.ErrorIs(t, l.Eval("the cat"), ErrStagedUnsupported)
	assert.ErrorIs(t, l.SaveState(file), ErrStagedUnsupported)
	assert.ErrorIs(t, l.LoadState(file), ErrStagedUnsupported)
	assert.NoFileExists(t, file)
	_, err := l.SpeculativeSampling(loadTiny(t, tiny.gemma3), "the cat", opts(SetTokens(2))...)
	assert.ErrorIs(t, err, ErrStagedUnsupported)
	_, err = loadTiny(t, tiny.gemma3).SpeculativeSampling(l, "the cat", opts(SetTokens(2))...)
	assert.ErrorIs(t, err, ErrStagedUnsupported)
	// The model still works.
	_, err = l.Predict("the cat", opts(SetTokens(2))...)
	assert.NoError(t, err)
}

// A token callback may tokenize, detokenize and read token pieces of its
// own model (a common go-llama.cpp pattern: counting tokens while
// streaming); before, Predict held the lock the callback waited for.
func TestCallbackMayTokenize(t *testing.T) {
	for mode, load := range cancelModes() {
		t.Run(mode, func(t *testing.T) {
			l := load(t)
			var counted int
			var pieces, detok string
			var errs []error
			cb := func(piece string) bool {
				n, toks, err := l.TokenizeString(piece)
				errs = append(errs, err)
				counted += int(n)
				if n == 0 {
					return true
				}
				p, err := l.TokenToPiece(toks[len(toks)-1])
				errs = append(errs, err)
				pieces += p
				d, err := l.Detokenize(toks)
				errs = append(errs, err)
				detok += d
				if _, err := l.ApplyChatTemplate([]ChatMessage{{Role: "user", Content: piece}}, true); !errors.Is(err, ErrNoChatTemplate) {
					errs = append(errs, err)
				}
				return true
			}
			var out string
			within(t, 60*time.Second, func() {
				var err error
				// (A grammar keeps a random model's text valid UTF-8.)
				out, err = l.Predict("the cat", opts(SetTokens(8), IgnoreEOS, WithGrammar(`root ::= [a-z ]+`), SetTokenCallback(cb))...)
				assert.NoError(t, err)
			})
			assert.NoError(t, errors.Join(errs...))
			assert.Positive(t, counted)
			assert.NotEmpty(t, pieces)
			assert.NotEmpty(t, out)

			// The same through SetTokenCallback.
			errs = nil
			l.SetTokenCallback(func(string) bool { _, _, err := l.TokenizeString("x"); errs = append(errs, err); return true })
			defer l.SetTokenCallback(nil)
			within(t, 60*time.Second, func() {
				_, err := l.Predict("the cat", opts(SetTokens(4), IgnoreEOS)...)
				assert.NoError(t, err)
			})
			assert.NoError(t, errors.Join(errs...))

			_, err := l.Detokenize([]int32{-1})
			assert.ErrorContains(t, err, "outside the vocabulary")
			_, err = l.TokenToPiece(1 << 30)
			assert.ErrorContains(t, err, "outside the vocabulary")
		})
	}
}

// Calls that need the context return ErrReentrant from inside a callback
// instead of deadlocking; Free there takes effect when the call returns.
func TestCallbackReentrantCallsReturnErrReentrant(t *testing.T) {
	for mode, load := range cancelModes() {
		t.Run(mode, func(t *testing.T) {
			l := load(t)
			state := filepath.Join(t.TempDir(), "state.bin")
			calls := map[string]func() error{
				"Predict":  func() error { _, err := l.Predict("x", opts(SetTokens(1))...); return err },
				"Generate": func() error { _, err := l.Generate("x", opts(SetTokens(1))...); return err },
				"Eval":     func() error { return l.Eval("x") },
				"Embeddings": func() error {
					_, err := l.Embeddings("x")
					return err
				},
				"TokenEmbeddings": func() error { _, err := l.TokenEmbeddings([]int{1}); return err },
				"SaveState":       func() error { return l.SaveState(state) },
				"LoadState":       func() error { return l.LoadState(state) },
			}
			got := map[string]error{}
			cb := func(string) bool {
				for name, call := range calls {
					if _, done := got[name]; !done {
						got[name] = call()
					}
				}
				return true
			}
			within(t, 60*time.Second, func() {
				_, err := l.Predict("the cat", opts(SetTokens(3), IgnoreEOS, SetTokenCallback(cb))...)
				assert.NoError(t, err)
			})
			for name := range calls {
				assert.ErrorIs(t, got[name], ErrReentrant, name)
			}
			assert.NoFileExists(t, state)

			// Free from a callback: the call finishes, then the model is freed.
			var n int
			within(t, 60*time.Second, func() {
				out, err := l.Predict("the cat", opts(SetTokens(4), IgnoreEOS, SetTokenCallback(func(string) bool {
					n++
					l.Free()
					return true
				}))...)
				assert.NoError(t, err)
				assert.NotEmpty(t, out)
			})
			assert.Positive(t, n)
			_, err := l.Predict("the cat", opts(SetTokens(1))...)
			assert.ErrorIs(t, err, ErrFreed)
			_, _, err = l.TokenizeString("the cat")
			assert.ErrorIs(t, err, ErrFreed)
		})
	}
}

// Speculative sampling holds both models: a callback calling either one
// gets ErrReentrant.
func TestSpeculativeCallbackReentrant(t *testing.T) {
	target, draft := loadTiny(t, tiny.llama), loadTiny(t, tiny.draft)
	var errTarget, errDraft error
	var once bool
	cb := func(string) bool {
		if !once {
			once = true
			_, errTarget = target.Predict("x", opts(SetTokens(1))...)
			_, errDraft = draft.Predict("x", opts(SetTokens(1))...)
		}
		return true
	}
	within(t, 60*time.Second, func() {
		_, err := target.SpeculativeSampling(draft, "the cat", opts(SetTokens(6), IgnoreEOS, SetTokenCallback(cb))...)
		assert.NoError(t, err)
	})
	assert.ErrorIs(t, errTarget, ErrReentrant)
	assert.ErrorIs(t, errDraft, ErrReentrant)
}

// Another goroutine's calls still wait their turn (they are not
// re-entrant), and tokenizing runs beside a generation.
func TestOtherGoroutinesStillWait(t *testing.T) {
	l := loadTiny(t, tiny.llama)
	inCallback := make(chan struct{})
	release := make(chan struct{})
	var once bool
	cb := func(string) bool {
		if !once {
			once = true
			close(inCallback)
			<-release
		}
		return true
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Predict("the cat", opts(SetTokens(4), IgnoreEOS, SetTokenCallback(cb))...)
		done <- err
	}()
	<-inCallback
	within(t, 30*time.Second, func() {
		_, _, err := l.TokenizeString("the dog")
		assert.NoError(t, err, "tokenizing beside a running generation")
	})
	other := make(chan error, 1)
	go func() { _, err := l.Predict("the dog", opts(SetTokens(2))...); other <- err }()
	select {
	case err := <-other:
		t.Fatalf("a second Predict ran inside the first: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	within(t, 60*time.Second, func() {
		assert.NoError(t, <-done)
		assert.NoError(t, <-other)
	})
}

// A grammar that has matched completely admits only end-of-generation
// tokens; with IgnoreEOS the generation ends there normally (before: the
// grammar's "Unexpected empty grammar stack" error).
func TestCompletedGrammarEndsGenerationWithIgnoreEOS(t *testing.T) {
	modes := cancelModes()
	modes[ModeDense] = func(t *testing.T) *LLama {
		return loadTiny(t, tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeDense}))
	}
	for mode, load := range modes {
		t.Run(mode, func(t *testing.T) {
			l := load(t)
			for seed := range 4 {
				res, err := l.Generate("answer:", SetThreads(2), SetTemperature(1), SetSeed(seed), IgnoreEOS, SetTokens(8),
					WithGrammar(`root ::= "yes" | "no"`))
				require.NoError(t, err)
				assert.Regexp(t, regexp.MustCompile(`^(yes|no)$`), res.Text)
				assert.Less(t, res.GeneratedTokens, 8, "ended at the grammar's end")
			}
			// A completed grammar with every end-of-generation token banned
			// by the caller's logit bias leaves no token: an error, where
			// llama.cpp's sampler would abort the process.
			var ban []string
			for _, t := range l.model.EOGTokens() {
				ban = append(ban, fmt.Sprintf("%d-inf", t))
			}
			_, err := l.Predict("answer:", SetThreads(2), SetTemperature(1), SetTokens(8), SetLogitBias(strings.Join(ban, " ")),
				WithGrammar(`root ::= "yes" | "no"`))
			assert.ErrorContains(t, err, "no token is possible")

			// IgnoreEOS still holds where the grammar may go on.
			res, err := l.Generate("answer:", opts(IgnoreEOS, SetTokens(6), WithGrammar(`root ::= [a-z]+`))...)
			require.NoError(t, err)
			assert.Equal(t, 6, res.GeneratedTokens)
		})
	}
}
