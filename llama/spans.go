package llama

import (
	"strings"
	"unicode/utf8"
)

// PromptSpan is a run of consecutive prompt tokens that together spell whole
// characters: the unit in which a display (sdtp-run --explain) can mark which
// tokens a staged prefill pruned. A tokenizer with byte fallback spells a
// character that is not in its vocabulary (U+13000 on Gemma, say) as one
// token per UTF-8 byte, and a byte-level BPE token may end inside a
// character; markup put between such tokens would cut the character and
// leave invalid UTF-8.
type PromptSpan struct {
	Text     string // whole characters; bytes that spell no character become U+FFFD
	From, To int    // prompt positions [From, To) of the span's tokens
	// DroppedAt is the earliest stage that dropped one of the span's tokens
	// (0: every token reached the last layer). The earliest, because from
	// that stage on the later layers no longer see the character whole; a
	// span shown as kept is one whose every byte reached the last layer.
	DroppedAt int
}

// PromptSpans groups Pieces into spans of whole characters, in prompt order.
// A span ends after the first token whose bytes, added to the span's, do not
// end inside a character; a token that ends inside one takes the next token
// with it. Bytes that no continuation can make valid end a span like a whole
// character does.
func (s *SDTPStats) PromptSpans() []PromptSpan {
	var spans []PromptSpan
	var text []byte
	from := 0
	for p, piece := range s.Pieces {
		text = append(text, piece...)
		if p+1 < len(s.Pieces) && endsInsideCharacter(text) {
			continue
		}
		sp := PromptSpan{Text: strings.ToValidUTF8(string(text), "\uFFFD"), From: from, To: p + 1}
		for _, st := range s.DroppedAt[from : p+1] {
			if st > 0 && (sp.DroppedAt == 0 || st < sp.DroppedAt) {
				sp.DroppedAt = st
			}
		}
		spans = append(spans, sp)
		text, from = text[:0], p+1
	}
	return spans
}

// endsInsideCharacter reports whether b ends with the start of a UTF-8
// character whose remaining bytes may still follow.
func endsInsideCharacter(b []byte) bool {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			return !utf8.FullRune(b[i:])
		}
	}
	return false
}
