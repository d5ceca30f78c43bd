package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sdtp/sdtp/llama"
)

// The wire format of OpenAI's chat-completions and completions APIs, the
// subset a local model can honour. Fields a client sends that are not
// listed here are ignored, as OpenAI clients expect.

// params are the fields chat and completion requests share.
type params struct {
	Model  string `json:"model"`
	Stream bool   `json:"stream"`
	// StreamOptions.IncludeUsage moves the usage block of a stream from
	// its last chunk to a chunk of its own with no choices, as OpenAI does.
	// Without it the usage rides on the last chunk (every response has one).
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens        *int     `json:"max_tokens"`
	Temperature      *float32 `json:"temperature"`
	TopP             *float32 `json:"top_p"`
	TopK             *int     `json:"top_k"` // llama-server's extension
	Seed             *int64   `json:"seed"`
	Stop             stopList `json:"stop"`
	N                *int     `json:"n"`
	FrequencyPenalty *float32 `json:"frequency_penalty"`
	PresencePenalty  *float32 `json:"presence_penalty"`
	// SDTP overrides the server's pruning settings for this request.
	SDTP *sdtpParams `json:"sdtp"`
}

// sdtpParams is the request's "sdtp" object.
type sdtpParams struct {
	Mode      string   `json:"mode"`
	KeepRatio *float64 `json:"keep_ratio"`
}

type chatRequest struct {
	params
	Messages []chatMessage `json:"messages"`
	// MaxCompletionTokens is the newer name of max_tokens.
	MaxCompletionTokens *int `json:"max_completion_tokens"`
}

type chatMessage struct {
	Role    string      `json:"role"`
	Content textContent `json:"content"`
}

type completionRequest struct {
	params
	Prompt promptText `json:"prompt"`
}

// stopList is OpenAI's "stop": a string or an array of strings.
type stopList []string

func (s *stopList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("stop: want a string or an array of strings")
	}
	*s = many
	return nil
}

// textContent is a message's "content": a string, or an array of content
// parts of which only {"type": "text"} ones are supported.
type textContent string

func (c *textContent) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*c = textContent(s)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return errors.New("content: want a string or an array of content parts")
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return fmt.Errorf("content part of type %q: only text is supported", p.Type)
		}
		sb.WriteString(p.Text)
	}
	*c = textContent(sb.String())
	return nil
}

// promptText is a completion's "prompt": a string or an array of one
// string (several prompts would need n > 1 choices; token arrays are not
// supported).
type promptText string

func (p *promptText) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*p = promptText(s)
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil || len(many) != 1 {
		return errors.New("prompt: want a string or an array of one string")
	}
	*p = promptText(many[0])
	return nil
}

// chatRoles maps the roles a request may use onto the template's roles;
// "developer" is OpenAI's newer name for "system".
var chatRoles = map[string]string{"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}

// messages validates the conversation and returns it for the chat template.
func (r *chatRequest) messages() ([]llama.ChatMessage, error) {
	if len(r.Messages) == 0 {
		return nil, errors.New("messages: at least one message is required")
	}
	out := make([]llama.ChatMessage, len(r.Messages))
	for i, m := range r.Messages {
		role, ok := chatRoles[m.Role]
		if !ok {
			return nil, fmt.Errorf("messages[%d].role: unknown role %q (system, developer, user, assistant)", i, m.Role)
		}
		out[i] = llama.ChatMessage{Role: role, Content: string(m.Content)}
	}
	return out, nil
}

// Responses.

type usage struct {
	PromptTokens        int           `json:"prompt_tokens"`
	CompletionTokens    int           `json:"completion_tokens"`
	TotalTokens         int           `json:"total_tokens"`
	PromptTokensDetails promptDetails `json:"prompt_tokens_details"`
	SDTP                sdtpUsage     `json:"sdtp"`
}

// promptDetails.CachedTokens counts prompt tokens served from the slot's
// KV cache (prefix reuse), as OpenAI reports prompt caching.
type promptDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

// sdtpUsage describes the prefill of one request.
type sdtpUsage struct {
	Mode         string  `json:"mode"`
	Scorer       string  `json:"scorer,omitempty"` // "onnx", "gguf-heads", "attention", "random"; none without pruning
	KeepRatio    float64 `json:"keep_ratio,omitempty"`
	KeptPerStage []int   `json:"kept_per_stage,omitempty"` // live prompt tokens entering each pruning stage
	PrunedTokens int     `json:"pruned_tokens"`            // prompt tokens some stage dropped
	FLOPRatio    float64 `json:"flop_ratio"`               // prefill FLOPs, dense / this request (1 without pruning)
	PrefillMS    float64 `json:"prefill_ms"`
	DecodeMS     float64 `json:"decode_ms"`
	KVPolicy     string  `json:"kv_policy,omitempty"`
	Slot         int     `json:"slot"`
}

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"` // "chat.completion" or "chat.completion.chunk"
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

type chatChoice struct {
	Index        int          `json:"index"`
	Message      *chatMessage `json:"message,omitempty"`
	Delta        *chatDelta   `json:"delta,omitempty"`
	Logprobs     *struct{}    `json:"logprobs"`
	FinishReason *string      `json:"finish_reason"`
}

type chatDelta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

type completion struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"` // "text_completion"
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage,omitempty"`
}

type completionChoice struct {
	Index        int       `json:"index"`
	Text         string    `json:"text"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type modelList struct {
	Object string      `json:"object"` // "list"
	Data   []modelInfo `json:"data"`
}

type modelInfo struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // "model"
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// apiError is the body of every error response:
// {"error": {"message", "type", "param", "code"}}.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}
