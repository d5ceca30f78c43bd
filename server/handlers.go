package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// completionsMaxTokens is OpenAI's default max_tokens for /v1/completions;
// chat completions default to no limit but the context window.
const completionsMaxTokens = 16

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if !decode(w, r, &req) {
		return
	}
	msgs, err := req.messages()
	if err != nil {
		badRequest("%v", err).write(w)
		return
	}
	maxTokens := req.MaxTokens
	if req.MaxCompletionTokens != nil {
		maxTokens = req.MaxCompletionTokens
	}
	j, herr := s.prepare(&req.params, maxTokens, 0)
	if herr != nil {
		herr.write(w)
		return
	}
	j.chat, j.key = msgs, conversationKey(msgs)
	id, created := newID("chatcmpl-"), time.Now().Unix()
	chunk := func(c chatChoice, u *usage) chatCompletion {
		return chatCompletion{ID: id, Object: "chat.completion.chunk", Created: created, Model: s.id, Choices: []chatChoice{c}, Usage: u}
	}
	if !req.Stream {
		o, herr := s.run(r.Context(), j)
		if herr != nil {
			herr.write(w)
			return
		}
		msg := &chatMessage{Role: "assistant", Content: textContent(o.res.Text)}
		writeJSON(w, http.StatusOK, chatCompletion{ID: id, Object: "chat.completion", Created: created, Model: s.id,
			Choices: []chatChoice{{Message: msg, FinishReason: &o.finish}}, Usage: s.usage(o)})
		return
	}
	st := &stream{w: w, opening: chunk(chatChoice{Delta: &chatDelta{Role: "assistant"}}, nil)}
	j.stream = func(piece string) bool {
		return st.send(chunk(chatChoice{Delta: &chatDelta{Content: piece}}, nil)) == nil
	}
	o, herr := s.run(r.Context(), j)
	st.finish(herr, func() []any {
		last := chatChoice{Delta: &chatDelta{}, FinishReason: &o.finish}
		if req.StreamOptions.IncludeUsage {
			return []any{chunk(last, nil), chatCompletion{ID: id, Object: "chat.completion.chunk", Created: created, Model: s.id,
				Choices: []chatChoice{}, Usage: s.usage(o)}}
		}
		return []any{chunk(last, s.usage(o))}
	})
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Prompt == "" {
		badRequest("prompt: a non-empty prompt is required").write(w)
		return
	}
	j, herr := s.prepare(&req.params, req.MaxTokens, completionsMaxTokens)
	if herr != nil {
		herr.write(w)
		return
	}
	j.prompt, j.key = string(req.Prompt), string(req.Prompt)
	id, created := newID("cmpl-"), time.Now().Unix()
	body := func(c completionChoice, u *usage) completion {
		return completion{ID: id, Object: "text_completion", Created: created, Model: s.id, Choices: []completionChoice{c}, Usage: u}
	}
	if !req.Stream {
		o, herr := s.run(r.Context(), j)
		if herr != nil {
			herr.write(w)
			return
		}
		writeJSON(w, http.StatusOK, body(completionChoice{Text: o.res.Text, FinishReason: &o.finish}, s.usage(o)))
		return
	}
	st := &stream{w: w}
	j.stream = func(piece string) bool { return st.send(body(completionChoice{Text: piece}, nil)) == nil }
	o, herr := s.run(r.Context(), j)
	st.finish(herr, func() []any {
		last := completionChoice{FinishReason: &o.finish}
		if req.StreamOptions.IncludeUsage {
			return []any{body(last, nil), completion{ID: id, Object: "text_completion", Created: created, Model: s.id,
				Choices: []completionChoice{}, Usage: s.usage(o)}}
		}
		return []any{body(last, s.usage(o))}
	})
}

// stream writes server-sent events: "data: JSON\n\n" per chunk, ending with
// "data: [DONE]". The status line goes out with the first chunk, after the
// prefill, so a request refused before it still gets its status code.
type stream struct {
	w       http.ResponseWriter
	opening any // sent first (the chat role chunk), or nil
	started bool
}

func (st *stream) send(v any) error {
	if !st.started {
		st.started = true
		h := st.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // proxies must not buffer the stream
		st.w.WriteHeader(http.StatusOK)
		if st.opening != nil {
			if err := st.send(st.opening); err != nil {
				return err
			}
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(st.w, "data: %s\n\n", b); err != nil {
		return err
	}
	return http.NewResponseController(st.w).Flush()
}

// finish ends the stream: with the final chunks from last, or with the
// error (as a status if nothing was sent yet, else as an error event).
func (st *stream) finish(herr *httpError, last func() []any) {
	switch {
	case herr != nil && !st.started:
		herr.write(st.w)
		return
	case herr == errClientGone:
		return
	case herr != nil:
		var e apiError
		e.Error.Message, e.Error.Type = herr.msg, herr.typ
		_ = st.send(e)
	default:
		for _, c := range last() {
			if st.send(c) != nil {
				return
			}
		}
	}
	fmt.Fprint(st.w, "data: [DONE]\n\n")
	_ = http.NewResponseController(st.w).Flush()
}
