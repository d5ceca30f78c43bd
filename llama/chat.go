package llama

import "github.com/go-sdtp/sdtp/bridge"

// ChatMessage is one turn of a conversation: Role "system", "user" or
// "assistant", and its text.
type ChatMessage = bridge.ChatMessage

// ApplyChatTemplate formats msgs with the model's own chat template
// (tokenizer.chat_template) through llama.cpp's llama_chat_apply_template;
// with addAssistant the text ends by opening the assistant's turn. The
// result is a prompt for Predict/Generate, which parse its special tokens.
// Errors: ErrNoChatTemplate (a base model), ErrUnsupportedChatTemplate (a
// template llama.cpp does not recognise), an unknown role, no messages.
// It reads only the model, so it may be called from a token callback.
func (l *LLama) ApplyChatTemplate(msgs []ChatMessage, addAssistant bool) (string, error) {
	if err := l.readModel(); err != nil {
		return "", err
	}
	defer l.freeing.RUnlock()
	return l.model.ApplyChatTemplate(msgs, addAssistant)
}
