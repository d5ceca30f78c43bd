package llama

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
)

// Turn N of a conversation prefills only its own tokens, in llama.cpp's
// path and the staged modes alike; without pruning the staged answers are
// llama.cpp's.
func TestConversationTurnsReuseTheCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qwen2-chat.gguf")
	require.NoError(t, testmodel.Write(path, testmodel.Qwen2Chat()))
	doc := DocumentQuestion(longPrompt+longPrompt, "what did the fox do?")
	turns := []string{doc, "and the dog?", "why?"}
	answers := map[string][]string{}
	for _, mode := range []string{ModeLlamaCpp, ModeDense, ModeAttention} {
		t.Run(mode, func(t *testing.T) {
			l := loadTiny(t, path, SetContext(2048), WithSDTP(SDTPOptions{Mode: mode}))
			conv := l.NewConversation(ChatMessage{Role: "system", Content: "Be brief."})
			prev := 0
			for i, msg := range turns {
				res, err := conv.Say(context.Background(), msg, opts(SetTokens(8), IgnoreEOS)...)
				require.NoError(t, err)
				answers[mode] = append(answers[mode], res.Text)
				if i > 0 {
					assert.GreaterOrEqual(t, res.ReusedTokens, prev, "turn %d reuses the whole previous prompt", i+1)
					assert.Less(t, res.PromptTokens-res.ReusedTokens, 40, "turn %d prefills its own tokens only", i+1)
				}
				if res.SDTP != nil {
					assert.Equal(t, res.PromptTokens-res.ReusedTokens, res.SDTP.KeptPerStage[0])
				}
				prev = res.PromptTokens
			}
			assert.Len(t, conv.Messages(), 1+2*len(turns))
			conv.Reset()
			assert.Len(t, conv.Messages(), 1, "the opening message stays")
		})
	}
	assert.Equal(t, answers[ModeLlamaCpp], answers[ModeDense])
}

func TestConversationErrorKeepsHistory(t *testing.T) {
	conv := loadTiny(t, tiny.llama).NewConversation()
	_, err := conv.Say(context.Background(), "hi", opts(SetTokens(2))...)
	assert.ErrorIs(t, err, ErrNoChatTemplate)
	assert.Empty(t, conv.Messages(), "a failed turn adds nothing")
}

func TestDocumentQuestionPutsTheQuestionLast(t *testing.T) {
	msg := DocumentQuestion("DOC", "Q?")
	assert.Contains(t, msg, "DOC")
	assert.Equal(t, "Q?", msg[len(msg)-2:])
}
