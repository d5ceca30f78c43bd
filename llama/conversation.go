package llama

import (
	"context"
	"fmt"
	"strings"
)

// Conversation is a multi-turn chat on one *LLama: each turn formats the
// whole history with the model's chat template (ApplyChatTemplate) and
// generates the reply. The prompt of turn N is turn N−1's prompt, its
// reply and the new message, so every mode reuses the cached prefix and
// prefills only the new tokens (Result.ReusedTokens; in the staged modes
// the pruned per-layer caches are kept as they are, docs/ENGINE.md).
//
// A Conversation is as safe for concurrent use as its *LLama, but turns
// of two conversations on one *LLama evict each other's cached prefix.
type Conversation struct {
	l    *LLama
	base []ChatMessage // the opening messages Reset returns to
	msgs []ChatMessage
}

// NewConversation starts a conversation with the given opening messages
// (typically a system message; none is fine).
func (l *LLama) NewConversation(opening ...ChatMessage) *Conversation {
	base := append([]ChatMessage(nil), opening...)
	return &Conversation{l: l, base: base, msgs: append([]ChatMessage(nil), base...)}
}

// Say sends one user message and returns the reply (Result.Text, also
// added to the history). On an error the history is unchanged, so the
// turn can be retried.
func (c *Conversation) Say(ctx context.Context, user string, opts ...PredictOption) (Result, error) {
	msgs := append(append([]ChatMessage(nil), c.msgs...), ChatMessage{Role: "user", Content: user})
	prompt, err := c.l.ApplyChatTemplate(msgs, true)
	if err != nil {
		return Result{}, fmt.Errorf("llama: conversation: %w", err)
	}
	res, err := c.l.GenerateContext(ctx, prompt, opts...)
	if err != nil {
		return res, err
	}
	// A reply cut by the token budget may end inside a UTF-8 sequence,
	// which the next turn's tokenizer would refuse.
	c.msgs = append(msgs, ChatMessage{Role: "assistant", Content: strings.ToValidUTF8(res.Text, "")})
	return res, nil
}

// Messages returns the history so far.
func (c *Conversation) Messages() []ChatMessage { return append([]ChatMessage(nil), c.msgs...) }

// Reset forgets every turn, keeping the opening messages.
func (c *Conversation) Reset() { c.msgs = append([]ChatMessage(nil), c.base...) }

// DocumentQuestion is the user message of document question answering:
// the document, then the question, so the question falls in the prompt's
// protected tail and the document is what pruning thins.
func DocumentQuestion(doc, question string) string {
	return "Answer the question using the document below.\n\n<document>\n" + doc + "\n</document>\n\nQuestion: " + question
}
