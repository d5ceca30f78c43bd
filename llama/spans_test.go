package llama

import (
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

// Characters spelled by byte-fallback tokens (one token per UTF-8 byte, or
// a BPE token ending inside a character) form one span, whose stage is the
// earliest that dropped one of its tokens.
func TestPromptSpansGroupBytesIntoCharacters(t *testing.T) {
	st := &SDTPStats{
		Pieces: []string{"", "A", " \xf0", "\x93", "\x80", "\x80", // U+13000 as bytes after a space
			"\xf0\xa0", "\x80\x8b", // U+2000B across two tokens
			"\xf0\x9f\x9d\x96",    // U+1F756 in one token
			"x\xe4", "\xbd\xa0y"}, // BPE-style: 你 split inside, with whole characters around it
		DroppedAt: []int{0, 0, 2, 1, 0, 3, 0, 0, 4, 0, 2},
	}
	want := []PromptSpan{
		{Text: "", From: 0, To: 1},
		{Text: "A", From: 1, To: 2},
		{Text: " \U00013000", From: 2, To: 6, DroppedAt: 1},
		{Text: "\U0002000B", From: 6, To: 8},
		{Text: "\U0001F756", From: 8, To: 9, DroppedAt: 4},
		{Text: "x你y", From: 9, To: 11, DroppedAt: 2},
	}
	assert.Equal(t, want, st.PromptSpans())
}

// Bytes no continuation can make valid (a random model's stray bytes, a
// prompt read from a non-UTF-8 file) end a span and show as U+FFFD; a
// trailing incomplete character ends the last span.
func TestPromptSpansInvalidBytes(t *testing.T) {
	st := &SDTPStats{
		Pieces:    []string{"\xff", "\xf0", "a", "\x80", "b", "\xe4\xbd"},
		DroppedAt: []int{1, 0, 0, 2, 0, 0},
	}
	spans := st.PromptSpans()
	assert.Equal(t, []PromptSpan{
		{Text: "\uFFFD", From: 0, To: 1, DroppedAt: 1},
		{Text: "\uFFFDa", From: 1, To: 3},
		{Text: "\uFFFD", From: 3, To: 4, DroppedAt: 2},
		{Text: "b", From: 4, To: 5},
		{Text: "\uFFFD", From: 5, To: 6},
	}, spans)
	for _, sp := range spans {
		assert.True(t, utf8.ValidString(sp.Text), "%q", sp.Text)
	}
}
