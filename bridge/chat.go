package bridge

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// ErrNoChatTemplate is returned when a model has no tokenizer.chat_template
// (a base model, e.g. Gemma 3 270M): format its prompts as plain text.
var ErrNoChatTemplate = errors.New("the model has no chat template (tokenizer.chat_template)")

// ErrUnsupportedChatTemplate is returned when llama.cpp does not recognise
// the model's chat template. llama_chat_apply_template runs no Jinja: it
// detects one of its built-in formats (chatml, gemma, llama3, ...) from
// marks in the template text.
var ErrUnsupportedChatTemplate = errors.New("llama.cpp cannot apply the model's chat template")

// ChatMessage is one turn of a conversation. Role is "system", "user" or
// "assistant".
type ChatMessage struct{ Role, Content string }

// chatRoles are the roles every llama.cpp chat format knows.
var chatRoles = []string{"system", "user", "assistant"}

// ChatTemplate returns the model's tokenizer.chat_template, and whether it
// has one.
func (m *Model) ChatTemplate() (string, bool) {
	t := C.llama_model_chat_template(m.ptr, nil)
	if t == nil {
		return "", false
	}
	return C.GoString(t), true
}

// ApplyChatTemplate formats msgs with the model's own chat template through
// llama.cpp's llama_chat_apply_template. With addAssistant the text ends
// with the opening of an assistant turn, so that generation continues as
// the assistant. The result contains the template's special-token text
// (e.g. "<|im_start|>"); tokenize it with special tokens parsed.
//
// Errors: ErrNoChatTemplate, ErrUnsupportedChatTemplate, no messages, a
// role other than system/user/assistant, a NUL byte in a message.
func (m *Model) ApplyChatTemplate(msgs []ChatMessage, addAssistant bool) (string, error) {
	tmpl, ok := m.ChatTemplate()
	if !ok {
		return "", ErrNoChatTemplate
	}
	if len(msgs) == 0 {
		return "", errors.New("chat template: no messages")
	}
	size := 256
	for i, msg := range msgs {
		if !slices.Contains(chatRoles, msg.Role) {
			return "", fmt.Errorf("chat template: message %d has role %q (want one of %s)", i, msg.Role, strings.Join(chatRoles, ", "))
		}
		if strings.IndexByte(msg.Content, 0) >= 0 {
			return "", fmt.Errorf("chat template: message %d contains a NUL byte", i)
		}
		size += 2 * (len(msg.Role) + len(msg.Content))
	}
	if size > 1<<30 {
		return "", fmt.Errorf("chat template: %d bytes of messages is too long", size/2)
	}

	// llama_chat_message holds C strings; cgo forbids handing C Go memory
	// that points to Go memory, so the array and strings live in C.
	chat := (*C.struct_llama_chat_message)(C.calloc(C.size_t(len(msgs)), C.sizeof_struct_llama_chat_message))
	defer C.free(unsafe.Pointer(chat))
	cmsgs := unsafe.Slice(chat, len(msgs))
	for i, msg := range msgs {
		cmsgs[i].role = C.CString(msg.Role)
		cmsgs[i].content = C.CString(msg.Content)
	}
	defer func() {
		for _, c := range cmsgs {
			C.free(unsafe.Pointer(c.role))
			C.free(unsafe.Pointer(c.content))
		}
	}()
	ctmpl := C.CString(tmpl)
	defer C.free(unsafe.Pointer(ctmpl))

	eb := newErrBuf()
	defer eb.free()
	for {
		buf := (*C.char)(C.malloc(C.size_t(size)))
		n := C.sdtp_chat_apply_template(ctmpl, chat, C.size_t(len(msgs)), C.bool(addAssistant), buf, C.int32_t(size), eb.p, errBufSize)
		if int(n) >= 0 && int(n) <= size { // the whole text fits (it is not NUL-terminated when n == size)
			out := C.GoStringN(buf, n)
			C.free(unsafe.Pointer(buf))
			return out, nil
		}
		C.free(unsafe.Pointer(buf))
		switch {
		case n == -100:
			return "", eb.err("chat template")
		case n < 0:
			return "", fmt.Errorf("%w (it knows built-in formats only; template starts %q)", ErrUnsupportedChatTemplate, head(tmpl, 60))
		}
		size = int(n) // the text is longer than the buffer: n is its length
	}
}

// head returns at most n bytes of s, cut at a character boundary.
func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// UserTurn formats one user message, after a system message when system is
// not empty, with the model's chat template and opens the assistant's
// turn: the prompt of a one-question conversation. Errors as
// ApplyChatTemplate.
func (m *Model) UserTurn(system, user string) (string, error) {
	var msgs []ChatMessage
	if system != "" {
		msgs = append(msgs, ChatMessage{Role: "system", Content: system})
	}
	return m.ApplyChatTemplate(append(msgs, ChatMessage{Role: "user", Content: user}), true)
}
