package bridge

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
)

func tinyModel(t *testing.T, cfg testmodel.Config) *Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, testmodel.Write(path, cfg))
	m, err := LoadModel(path, ModelParams{UseMMap: true})
	require.NoError(t, err)
	t.Cleanup(m.Free)
	return m
}

func TestApplyChatTemplateChatML(t *testing.T) {
	m := tinyModel(t, testmodel.Qwen2Chat())
	msgs := []ChatMessage{{"system", "You are terse."}, {"user", "What is 2+2?"}}

	got, err := m.ApplyChatTemplate(msgs, true)
	require.NoError(t, err)
	assert.Equal(t, "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", got)

	got, err = m.ApplyChatTemplate(msgs, false)
	require.NoError(t, err)
	assert.Equal(t, "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n", got)

	// A result longer than the first buffer (2x the message bytes + 256)
	// is formatted whole: many short messages add more markup than text.
	var many []ChatMessage
	for range 200 {
		many = append(many, ChatMessage{"user", "a"}, ChatMessage{"assistant", "b"})
	}
	got, err = m.ApplyChatTemplate(many, true)
	require.NoError(t, err)
	assert.Equal(t, strings.Repeat("<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n", 200)+"<|im_start|>assistant\n", got)
}

func TestTokenizePromptParsesSpecialTokens(t *testing.T) {
	m := tinyModel(t, testmodel.Qwen2Chat())
	vocab, err := testmodel.BuildVocab(testmodel.ArchQwen2)
	require.NoError(t, err)
	imStart, imEnd := int32(vocab.Size()), int32(vocab.Size()+1) // appended after the base vocabulary

	text, err := m.ApplyChatTemplate([]ChatMessage{{"user", "hello"}}, true)
	require.NoError(t, err)
	toks, err := m.TokenizePrompt(text)
	require.NoError(t, err)
	assert.Equal(t, m.BOS(), toks[0])
	assert.Equal(t, imStart, toks[1], "<|im_start|> is one token")
	assert.Contains(t, toks, imEnd)
	assert.Equal(t, 3, count(toks, imStart)+count(toks, imEnd))

	// A prompt that writes the BOS text itself gets one BOS, not two.
	toks, err = m.TokenizePrompt("<s>hello")
	require.NoError(t, err)
	assert.Equal(t, 1, count(toks, m.BOS()), "%v", toks)
	assert.Equal(t, m.BOS(), toks[0])
}

func count(toks []int32, tok int32) int {
	n := 0
	for _, t := range toks {
		if t == tok {
			n++
		}
	}
	return n
}

func TestApplyChatTemplateErrors(t *testing.T) {
	_, err := tinyModel(t, testmodel.Llama()).ApplyChatTemplate([]ChatMessage{{"user", "hi"}}, true)
	assert.ErrorIs(t, err, ErrNoChatTemplate)

	unknown := testmodel.Llama()
	unknown.ChatTemplate = "{% for m in messages %}<<{{ m['content'] }}>>{% endfor %}"
	_, err = tinyModel(t, unknown).ApplyChatTemplate([]ChatMessage{{"user", "hi"}}, true)
	assert.ErrorIs(t, err, ErrUnsupportedChatTemplate)

	m := tinyModel(t, testmodel.Qwen2Chat())
	_, err = m.ApplyChatTemplate(nil, true)
	assert.ErrorContains(t, err, "no messages")
	_, err = m.ApplyChatTemplate([]ChatMessage{{"user", "hi"}, {"tool", "x"}}, true)
	assert.ErrorContains(t, err, `role "tool"`)
	_, err = m.ApplyChatTemplate([]ChatMessage{{"user", "a\x00b"}}, true)
	assert.ErrorContains(t, err, "NUL")
	// The model still formats after refused input.
	_, err = m.ApplyChatTemplate([]ChatMessage{{"user", "hi"}}, true)
	assert.NoError(t, err)
}

// Gemma's template has no system role: llama.cpp folds the system message
// into the first user turn. Its "<bos>" text parses to the one BOS.
func TestApplyChatTemplateGemma(t *testing.T) {
	m := tinyModel(t, testmodel.Gemma3())
	got, err := m.ApplyChatTemplate([]ChatMessage{{"system", "Be brief."}, {"user", "hi"}, {"assistant", "hello"}}, true)
	require.NoError(t, err)
	assert.Equal(t, "<start_of_turn>user\nBe brief.\n\nhi<end_of_turn>\n<start_of_turn>model\nhello<end_of_turn>\n<start_of_turn>model\n", got)

	vocab, err := testmodel.BuildVocab(testmodel.ArchGemma3)
	require.NoError(t, err)
	for _, prompt := range []string{got, "<bos>" + got} {
		toks, err := m.TokenizePrompt(prompt)
		require.NoError(t, err)
		assert.Equal(t, []int32{m.BOS(), int32(vocab.ID("<start_of_turn>"))}, toks[:2], prompt)
		assert.Equal(t, 1, count(toks, m.BOS()))
		assert.Equal(t, 3, count(toks, int32(vocab.ID("<start_of_turn>"))))
	}
}
