package llama

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
)

func TestNewRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o644))
		return p
	}
	good, err := os.ReadFile(tiny.llama)
	require.NoError(t, err)
	// patch returns the model with a little-endian uint64 written at off.
	patch := func(name string, off int, v uint64) string {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint64(b[off:], v)
		return write(name, b)
	}
	// The first tensor's info: name length, name, n_dims, dims, type, offset.
	name := "token_embd.weight"
	info := bytes.Index(good, append(binary.LittleEndian.AppendUint64(nil, uint64(len(name))), name...))
	require.Positive(t, info)
	dims := info + 8 + len(name) + 4
	offset := dims + 2*8 + 4
	require.Equal(t, uint32(2), binary.LittleEndian.Uint32(good[dims-4:]), "n_dims")
	require.Equal(t, uint64(testmodel.Llama().NEmbd), binary.LittleEndian.Uint64(good[dims:]), "first dimension")
	require.Zero(t, binary.LittleEndian.Uint64(good[offset:]), "the first tensor's data offset")
	random := make([]byte, 4096)
	rand.NewChaCha8([32]byte{1}).Read(random)

	cases := map[string]struct {
		path string
		want string
		is   error // what errors.Is must match (docs/ERRORS.md)
	}{
		"missing":               {filepath.Join(dir, "nope.gguf"), "no such file", os.ErrNotExist},
		"directory":             {dir, "not a regular file", nil},
		"empty":                 {write("empty.gguf", nil), "not a GGUF", ErrNotGGUF},
		"random bytes":          {write("rand.gguf", []byte("this is not a model at all")), "not a GGUF", ErrNotGGUF},
		"magic only":            {write("magic.gguf", []byte("GGUF\x03\x00\x00\x00garbage")), "could not load", ErrModelLoad},
		"random after magic":    {write("magic-rand.gguf", append([]byte("GGUF"), random...)), "could not load", ErrModelLoad},
		"truncated in header":   {write("trunc-header.gguf", good[:20]), "could not load", ErrModelLoad},
		"truncated in metadata": {write("trunc-kv.gguf", good[:info/2]), "could not load", ErrModelLoad},
		"truncated in tensors":  {write("trunc-info.gguf", good[:dims]), "could not load", ErrModelLoad},
		"truncated in data":     {write("trunc.gguf", good[:len(good)/2]), "could not load", ErrModelLoad},
		"last byte missing":     {write("trunc-end.gguf", good[:len(good)-1]), "could not load", ErrModelLoad},
		"absurd tensor count":   {patch("n-tensors.gguf", 8, 1<<62), "could not load", ErrModelLoad},
		"absurd metadata count": {patch("n-kv.gguf", 16, 1<<62), "could not load", ErrModelLoad},
		"absurd dimension":      {patch("dims.gguf", dims, 1<<62), "could not load", ErrModelLoad},
		"absurd offset":         {patch("offset.gguf", offset, 1<<40), "could not load", ErrModelLoad},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			l, err := New(c.path)
			require.Error(t, err)
			assert.Nil(t, l)
			assert.Contains(t, err.Error(), c.want)
			if c.is != nil {
				assert.ErrorIs(t, err, c.is)
			}
		})
	}
}

func TestTokenizeRoundTrip(t *testing.T) {
	for arch, path := range tinyModels() {
		t.Run(arch, func(t *testing.T) {
			l := loadTiny(t, path)
			for _, text := range []string{"Hello, world! ünïcödé 日本 🙂", "the cat", " leading and  double  spaces\n\ttabs"} {
				n, toks, err := l.TokenizeString(text)
				require.NoError(t, err)
				assert.Equal(t, int(n), len(toks))
				assert.Equal(t, l.model.BOS(), toks[0], "BOS first")
				assert.Equal(t, text, l.model.Detokenize(toks[1:]))
			}
			_, _, err := l.TokenizeString("bad \xff utf-8")
			assert.Error(t, err)
		})
	}
}

func TestGreedyIsDeterministic(t *testing.T) {
	for arch, path := range tinyModels() {
		t.Run(arch, func(t *testing.T) {
			l := loadTiny(t, path)
			a, err := l.Generate("the cat sat on the", opts(SetTokens(20), IgnoreEOS)...)
			require.NoError(t, err)
			assert.Equal(t, 20, a.GeneratedTokens)
			assert.NotEmpty(t, a.Text)
			_, err = l.Predict("a different prompt", opts(SetTokens(5))...)
			require.NoError(t, err)
			b, err := l.Generate("the cat sat on the", opts(SetTokens(20), IgnoreEOS)...)
			require.NoError(t, err)
			assert.Equal(t, a.Text, b.Text)

			// A fresh model instance gives the same text.
			c, err := loadTiny(t, path).Predict("the cat sat on the", opts(SetTokens(20), IgnoreEOS)...)
			require.NoError(t, err)
			assert.Equal(t, a.Text, c)
		})
	}
}

func TestSeededSamplingIsReproducible(t *testing.T) {
	l := loadTiny(t, tiny.llama)
	for _, mode := range [][]PredictOption{
		{SetTopK(20), SetTopP(0.9)},
		{SetTypicalP(0.8)},
		{SetMirostat(1)},
		{SetMirostat(2)},
		{SetPenalty(1.3), SetFrequencyPenalty(0.5), SetPresencePenalty(0.5)},
	} {
		base := append([]PredictOption{SetTemperature(1.5), SetTokens(24), IgnoreEOS}, mode...)
		a, err := l.Predict("the", append(base, SetSeed(42))...)
		require.NoError(t, err)
		b, err := l.Predict("the", append(base, SetSeed(42))...)
		require.NoError(t, err)
		assert.Equal(t, a, b, "same seed, same text")
		c, err := l.Predict("the", append(base, SetSeed(43))...)
		require.NoError(t, err)
		assert.NotEqual(t, a, c, "another seed, another text")
	}
}

func TestStopWordsCutOutput(t *testing.T) {
	l := loadTiny(t, tiny.llama)
	full, err := l.Predict("the cat", opts(SetTokens(40), IgnoreEOS)...)
	require.NoError(t, err)
	require.Greater(t, len(full), 12)
	stop := full[len(full)/2 : len(full)/2+3]
	cut := full[:strings.Index(full, stop)]

	var streamed strings.Builder
	res, err := l.Generate("the cat", opts(SetTokens(40), IgnoreEOS, SetStopWords("zzzz-never", stop),
		SetTokenCallback(func(s string) bool { streamed.WriteString(s); return true }))...)
	require.NoError(t, err)
	assert.Equal(t, cut, res.Text)
	assert.Equal(t, cut, streamed.String(), "the callback never sees the stop word")
	assert.Less(t, res.GeneratedTokens, 40)
}

func TestCallbackFalseStopsEarly(t *testing.T) {
	l := loadTiny(t, tiny.llama)
	var pieces []string
	res, err := l.Generate("the cat", opts(SetTokens(50), IgnoreEOS, SetTokenCallback(func(s string) bool {
		pieces = append(pieces, s)
		return len(pieces) < 3
	}))...)
	require.NoError(t, err)
	assert.Len(t, pieces, 3)
	assert.Equal(t, strings.Join(pieces, ""), res.Text)
	assert.Less(t, res.GeneratedTokens, 50)

	// The model-wide callback works the same and can be removed.
	calls := 0
	l.SetTokenCallback(func(string) bool { calls++; return false })
	_, err = l.Predict("the cat", opts(SetTokens(50), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, 1, calls)
	l.SetTokenCallback(nil)
	res, err = l.Generate("the cat", opts(SetTokens(10), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, 10, res.GeneratedTokens)
	assert.Equal(t, 1, calls)
}

func TestGrammarConstrainsOutput(t *testing.T) {
	l := loadTiny(t, tiny.llama)
	grammar := `root ::= ("yes" | "no") " " [0-9] [0-9]? "."`
	for seed := range 4 {
		out, err := l.Predict("answer:", SetTemperature(1), SetSeed(seed), SetTokens(30), WithGrammar(grammar))
		require.NoError(t, err)
		assert.Regexp(t, regexp.MustCompile(`^(yes|no) [0-9][0-9]?\.$`), out)
	}
	_, err := l.Predict("answer:", WithGrammar(`root ::= "unterminated`))
	assert.ErrorContains(t, err, "grammar")
}

func TestLogitBiasAndIgnoreEOS(t *testing.T) {
	l := loadTiny(t, tiny.llama)
	_, toks, err := l.TokenizeString("cat")
	require.NoError(t, err)
	cat := toks[len(toks)-1]
	res, err := l.Generate("the", opts(SetTokens(6), SetLogitBias(fmt.Sprintf("%d+100", cat)))...)
	require.NoError(t, err)
	assert.Equal(t, 6, res.GeneratedTokens)
	assert.Equal(t, strings.Repeat(string(l.model.TokenPiece(cat)), 6), res.Text)

	_, err = l.Predict("the", SetLogitBias("banana"))
	assert.ErrorContains(t, err, "logit bias")
	_, err = l.Predict("the", SetLogitBias("99999999+1"))
	assert.ErrorContains(t, err, "vocabulary")

	// Forcing EOS ends at once; IgnoreEOS overrides even that.
	eos := fmt.Sprintf("%d+100", l.model.EOGTokens()[0])
	res, err = l.Generate("the", opts(SetTokens(8), SetLogitBias(eos))...)
	require.NoError(t, err)
	assert.Equal(t, 0, res.GeneratedTokens)
	res, err = l.Generate("the", opts(SetTokens(8), SetLogitBias(eos), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, 8, res.GeneratedTokens)
}

func TestStateSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.bin")
	prompt := "the quick brown fox jumps over the lazy dog"
	l := loadTiny(t, tiny.llama)
	want, err := l.Predict(prompt, opts(SetTokens(12), IgnoreEOS)...)
	require.NoError(t, err)
	require.NoError(t, l.Eval(prompt))
	require.NoError(t, l.SaveState(path))

	other := loadTiny(t, tiny.llama)
	require.NoError(t, other.LoadState(path))
	res, err := other.Generate(prompt, opts(SetTokens(12), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, res.PromptTokens-1, res.ReusedTokens, "the loaded state is reused")
	assert.Equal(t, want, res.Text)

	assert.Error(t, other.LoadState(filepath.Join(t.TempDir(), "missing.bin")))
	garbage := filepath.Join(t.TempDir(), "garbage.bin")
	require.NoError(t, os.WriteFile(garbage, []byte("not a state file"), 0o644))
	assert.Error(t, other.LoadState(garbage))
	// After a failed load the model still works.
	got, err := other.Predict(prompt, opts(SetTokens(12), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestPromptCacheFile(t *testing.T) {
	cacheFile := filepath.Join(t.TempDir(), "prompt.cache")
	prompt := "the quick brown fox jumps over the lazy dog"
	first, err := loadTiny(t, tiny.llama).Generate(prompt, opts(SetTokens(8), IgnoreEOS, SetPathPromptCache(cacheFile))...)
	require.NoError(t, err)
	assert.Equal(t, 0, first.ReusedTokens)
	require.FileExists(t, cacheFile)

	second, err := loadTiny(t, tiny.llama).Generate(prompt+" again", opts(SetTokens(8), IgnoreEOS, SetPathPromptCache(cacheFile), EnablePromptCacheRO)...)
	require.NoError(t, err)
	assert.Equal(t, first.PromptTokens, second.ReusedTokens, "a new process reuses the cached prompt")

	// Read-only: the file still holds the first prompt.
	third, err := loadTiny(t, tiny.llama).Generate(prompt, opts(SetTokens(8), IgnoreEOS, SetPathPromptCache(cacheFile))...)
	require.NoError(t, err)
	assert.Equal(t, first.Text, third.Text)
	assert.Equal(t, first.PromptTokens-1, third.ReusedTokens)
}

func TestEmbeddings(t *testing.T) {
	for arch, path := range tinyModels() {
		t.Run(arch, func(t *testing.T) {
			l := loadTiny(t, path, EnableEmbeddings)
			a, err := l.Embeddings("the cat sat")
			require.NoError(t, err)
			assert.Len(t, a, 64)
			b, err := l.Embeddings("a dog ran")
			require.NoError(t, err)
			assert.NotEqual(t, a, b)
			again, err := l.Embeddings("the cat sat")
			require.NoError(t, err)
			assert.InDeltaSlice(t, a, again, 1e-5)
			_, err = l.TokenEmbeddings([]int{1, 1 << 30})
			assert.ErrorContains(t, err, "vocabulary")
		})
	}
	_, err := loadTiny(t, tiny.llama).Embeddings("x")
	assert.ErrorContains(t, err, "EnableEmbeddings")
}

func TestContextLimits(t *testing.T) {
	l := loadTiny(t, tiny.llama, SetContext(256)) // llama.cpp's smallest window
	require.Equal(t, 256, l.ctx.NCtx())
	_, err := l.Predict(strings.Repeat("the cat ", 200), opts(SetTokens(4))...)
	assert.ErrorIs(t, err, ErrContextFull)

	// Tokens > context: the window shifts and generation goes on.
	res, err := l.Generate("the cat", opts(SetTokens(400), IgnoreEOS, SetNKeep(2))...)
	require.NoError(t, err)
	assert.Equal(t, 400, res.GeneratedTokens)

	// Tokens = 0: until the window is full.
	res, err = l.Generate("the cat", opts(SetTokens(0), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, 256-res.PromptTokens+1, res.GeneratedTokens)

	_, err = l.Predict("x", SetTokens(-3))
	assert.Error(t, err)
	_, err = l.Predict("x", SetThreads(-2))
	assert.Error(t, err)
}

func TestSpeculativeSamplingMatchesGreedy(t *testing.T) {
	target := loadTiny(t, tiny.llama)
	draft := loadTiny(t, tiny.draft)
	prompt := "the quick brown fox"
	want, err := target.Predict(prompt, opts(SetTokens(40), IgnoreEOS)...)
	require.NoError(t, err)
	for _, nd := range []int{1, 3, 8} {
		got, err := target.SpeculativeSampling(draft, prompt, opts(SetTokens(40), IgnoreEOS, SetNDraft(nd))...)
		require.NoError(t, err)
		assert.Equal(t, want, got, "n_draft %d", nd)
	}
	// With itself as a draft (another instance) every draft is accepted.
	self := loadTiny(t, tiny.llama)
	got, err := target.SpeculativeSampling(self, prompt, opts(SetTokens(40), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	_, err = target.SpeculativeSampling(target, prompt)
	assert.Error(t, err)
}

func TestConcurrentUse(t *testing.T) {
	l := loadTiny(t, tiny.llama, EnableEmbeddings)
	want, err := l.Predict("the cat", opts(SetTokens(16), IgnoreEOS)...)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			got, err := l.Predict("the cat", opts(SetTokens(16), IgnoreEOS)...)
			if err == nil && got != want {
				err = fmt.Errorf("goroutine %d: got %q, want %q", i, got, want)
			}
			errs <- err
			_, err = l.Embeddings("the dog")
			errs <- err
			l.SetTokenCallback(func(string) bool { return true })
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
}

func TestFreeIsFinal(t *testing.T) {
	l, err := New(tiny.llama, SetContext(64))
	require.NoError(t, err)
	l.Free()
	l.Free()
	other := loadTiny(t, tiny.llama)
	for name, call := range map[string]func() error{
		"Predict":         func() error { _, err := l.Predict("x"); return err },
		"GenerateContext": func() error { _, err := l.GenerateContext(context.Background(), "x"); return err },
		"Eval":            func() error { return l.Eval("x") },
		"TokenizeString":  func() error { _, _, err := l.TokenizeString("x"); return err },
		"Embeddings":      func() error { _, err := l.Embeddings("x"); return err },
		"TokenEmbeddings": func() error { _, err := l.TokenEmbeddings([]int{1}); return err },
		"SaveState":       func() error { return l.SaveState(filepath.Join(t.TempDir(), "s")) },
		"LoadState":       func() error { return l.LoadState(filepath.Join(t.TempDir(), "s")) },
		"as target":       func() error { _, err := l.SpeculativeSampling(other, "x"); return err },
		"as draft":        func() error { _, err := other.SpeculativeSampling(l, "x"); return err },
	} {
		assert.ErrorIs(t, call(), ErrFreed, name)
	}
}

func TestLoraAdapter(t *testing.T) {
	dir := t.TempDir()
	active, zero := filepath.Join(dir, "active.gguf"), filepath.Join(dir, "zero.gguf")
	require.NoError(t, testmodel.WriteLora(active, testmodel.Llama(), 4, 0.5, 3))
	require.NoError(t, testmodel.WriteLora(zero, testmodel.Llama(), 4, 0, 3))

	base, err := loadTiny(t, tiny.llama).Predict("the cat", opts(SetTokens(24), IgnoreEOS)...)
	require.NoError(t, err)
	same, err := loadTiny(t, tiny.llama, SetLoraAdapter(zero), SetLoraBase("ignored")).Predict("the cat", opts(SetTokens(24), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, base, same, "a zero adapter changes nothing")
	changed, err := loadTiny(t, tiny.llama, SetLoraAdapter(active)).Predict("the cat", opts(SetTokens(24), IgnoreEOS)...)
	require.NoError(t, err)
	assert.NotEqual(t, base, changed, "an active adapter changes the output")

	// An adapter for another architecture is refused with llama.cpp's reason.
	other := filepath.Join(dir, "gemma.gguf")
	require.NoError(t, testmodel.WriteLora(other, testmodel.Gemma3(), 4, 0.5, 3))
	_, err = New(tiny.llama, SetContext(256), SetLoraAdapter(other))
	assert.ErrorContains(t, err, "mismatch")
	_, err = New(tiny.llama, SetContext(256), SetLoraAdapter(filepath.Join(dir, "missing.gguf")))
	assert.Error(t, err)
}

func TestStateFromAnotherModelIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "llama.state")
	l := loadTiny(t, tiny.llama)
	require.NoError(t, l.Eval("the cat sat"))
	require.NoError(t, l.SaveState(path))
	g := loadTiny(t, tiny.gemma3)
	assert.Error(t, g.LoadState(path))
	out, err := g.Predict("the cat", opts(SetTokens(4), IgnoreEOS)...)
	require.NoError(t, err, "the model still works")
	assert.NotEmpty(t, out)
}
