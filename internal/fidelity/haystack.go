package fidelity

import (
	"errors"
	"math/rand/v2"
	"strings"
)

// Haystack is filler text cut into sentences, each with the whitespace
// before it, so a needle or a cut between two of them joins the text the
// way a new sentence would. Sentences are tokenized once, when first used.
type Haystack struct {
	sentences []string
	toks      map[int][]int32
}

// NewHaystack splits text into sentences: a sentence ends at '.', '!' or
// '?' followed by whitespace, or at a blank line (a paragraph's end). A
// single line break does not end one: the essays wrap their lines.
func NewHaystack(text string) (*Haystack, error) {
	h := &Haystack{toks: map[int][]int32{}}
	start := 0
	for i := 0; i+1 < len(text); i++ {
		c, next := text[i], text[i+1]
		if (c == '.' || c == '!' || c == '?') && (next == ' ' || next == '\n') || c == '\n' && next == '\n' {
			if s := text[start : i+1]; strings.TrimSpace(s) != "" { // blank: it leads the next sentence
				h.sentences = append(h.sentences, s)
				start = i + 1
			}
		}
	}
	if s := text[start:]; strings.TrimSpace(s) != "" {
		h.sentences = append(h.sentences, s)
	}
	if len(h.sentences) < 10 {
		return nil, errors.New("fidelity: the haystack has fewer than 10 sentences")
	}
	return h, nil
}

// fill returns a filler of exactly n tokens: consecutive sentences from a
// random one on (wrapping around), the last cut short; a needle may go
// before any sentence.
func (h *Haystack) fill(tok Tokenizer, n int, rng *rand.Rand) (filler, error) {
	i := rng.IntN(len(h.sentences))
	return chunks(n, func() ([]int32, error) {
		k := i % len(h.sentences)
		i++
		if t, ok := h.toks[k]; ok {
			return t, nil
		}
		t, err := tok.Tokenize(h.sentences[k], false, false)
		if err != nil {
			return nil, err
		}
		h.toks[k] = t
		return t, nil
	})
}
