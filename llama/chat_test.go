package llama

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
)

// A chat-formatted prompt reaches the model with its special tokens as
// single tokens and one BOS, in llama.cpp's prefill and the staged engine.
func TestChatTemplatePrompt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qwen2-chat.gguf")
	require.NoError(t, testmodel.Write(path, testmodel.Qwen2Chat()))
	vocab, err := testmodel.BuildVocab(testmodel.ArchQwen2)
	require.NoError(t, err)
	imStart := int32(vocab.Size())

	for _, mode := range []string{ModeLlamaCpp, ModeDense} {
		t.Run(mode, func(t *testing.T) {
			l := loadTiny(t, path, WithSDTP(SDTPOptions{Mode: mode}))
			prompt, err := l.ApplyChatTemplate([]ChatMessage{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "the cat"}}, true)
			require.NoError(t, err)
			assert.Equal(t, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nthe cat<|im_end|>\n<|im_start|>assistant\n", prompt)

			n, toks, err := l.TokenizeString(prompt)
			require.NoError(t, err)
			assert.Equal(t, []int32{l.model.BOS(), imStart}, toks[:2])
			res, err := l.Generate(prompt, opts(SetTokens(4))...)
			require.NoError(t, err)
			assert.Equal(t, int(n), res.PromptTokens)
		})
	}
}

func TestChatTemplateErrors(t *testing.T) {
	l := loadTiny(t, tiny.llama)
	_, err := l.ApplyChatTemplate([]ChatMessage{{Role: "user", Content: "hi"}}, true)
	assert.ErrorIs(t, err, ErrNoChatTemplate)

	freed, err := New(tiny.gemma3, SetContext(256))
	require.NoError(t, err)
	freed.Free()
	_, err = freed.ApplyChatTemplate([]ChatMessage{{Role: "user", Content: "hi"}}, true)
	assert.ErrorIs(t, err, ErrFreed)
}
