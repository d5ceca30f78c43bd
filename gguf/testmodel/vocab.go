package testmodel

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode/utf8"
)

// Token types as stored in tokenizer.ggml.token_type (llama_token_type).
const (
	TokenTypeUndefined   int32 = 0
	TokenTypeNormal      int32 = 1
	TokenTypeUnknown     int32 = 2
	TokenTypeControl     int32 = 3
	TokenTypeUserDefined int32 = 4
	TokenTypeUnused      int32 = 5
	TokenTypeByte        int32 = 6
)

// SentencePiece's whitespace marker (U+2581).
const spaceMarker = "▁"

// Vocab is a SentencePiece-style ("llama" tokenizer model) vocabulary.
type Vocab struct {
	Tokens []string
	Scores []float32
	Types  []int32

	BOS, EOS, UNK int
	PAD           int // -1 if the vocabulary has no padding token
	// Byte0 is the id of "<0x00>"; byte b has id Byte0+b.
	Byte0 int
}

// Size returns the number of tokens.
func (v Vocab) Size() int { return len(v.Tokens) }

// ID returns the id of a token text, or -1.
func (v Vocab) ID(text string) int {
	for i, t := range v.Tokens {
		if t == text {
			return i
		}
	}
	return -1
}

// Common English words (most frequent first) that become "▁word" pieces.
var commonWords = strings.Fields(`
the of and to a in is it you that he was for on are as with his they I at be
this have from or one had by word but not what all were we when your can said
there use an each which she do how their if will up other about out many then
them these so some her would make like him into time has look two more write
go see number no way could people my than first been call who its now find
long down day did get come made may part new work good
Hello hello world World The This It In model token test text`)

// Frequent sub-word pieces without the whitespace marker.
var commonSubwords = strings.Fields(`ing ed er es ly tion th he in an re on at en nd st or ll the and`)

// Characters that get their own piece; anything else falls back to bytes.
const singleChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()"

// BuildVocab returns the vocabulary used for cfg.Arch. It is deterministic.
//
// Layout for llama (and its variants): <unk>=0, <s>=1, </s>=2, then the 256 byte tokens, then
// normal pieces. For gemma3 it follows Gemma's special-token ids:
// <pad>=0, <eos>=1, <bos>=2, <unk>=3, <start_of_turn>, <end_of_turn>, bytes,
// pieces. Every byte 0x00-0xFF has a BYTE token, so any UTF-8 text (indeed
// any byte string) can be tokenized and detokenized losslessly.
func BuildVocab(arch string) (Vocab, error) {
	v := Vocab{PAD: -1}
	seen := map[string]bool{}
	add := func(text string, score float32, typ int32) int {
		if seen[text] {
			panic(fmt.Sprintf("testmodel: duplicate token %q", text))
		}
		seen[text] = true
		v.Tokens = append(v.Tokens, text)
		v.Scores = append(v.Scores, score)
		v.Types = append(v.Types, typ)
		return len(v.Tokens) - 1
	}
	switch arch {
	case ArchLlama, ArchQwen2, ArchQwen3, ArchMistral3:
		v.UNK = add("<unk>", 0, TokenTypeUnknown)
		v.BOS = add("<s>", 0, TokenTypeControl)
		v.EOS = add("</s>", 0, TokenTypeControl)
	case ArchGemma3:
		v.PAD = add("<pad>", 0, TokenTypeControl)
		v.EOS = add("<eos>", 0, TokenTypeControl)
		v.BOS = add("<bos>", 0, TokenTypeControl)
		v.UNK = add("<unk>", 0, TokenTypeUnknown)
		add("<start_of_turn>", 0, TokenTypeControl)
		add("<end_of_turn>", 0, TokenTypeControl)
	default:
		return Vocab{}, fmt.Errorf("testmodel: unsupported architecture %q", arch)
	}
	v.Byte0 = len(v.Tokens)
	for b := 0; b < 256; b++ {
		add(fmt.Sprintf("<0x%02X>", b), 0, TokenTypeByte)
	}

	// Normal pieces. The set is prefix-closed (every prefix of a piece is a
	// piece) so that SentencePiece's pairwise merging can reach every piece.
	// Scores decrease with insertion order: earlier = merged first.
	var pieces []string
	pieceSeen := map[string]bool{}
	addPiece := func(p string) {
		for i := 0; i < len(p); {
			_, n := utf8.DecodeRuneInString(p[i:])
			i += n
			if pre := p[:i]; !pieceSeen[pre] && !seen[pre] {
				pieceSeen[pre] = true
				pieces = append(pieces, pre)
			}
		}
	}
	addPiece(spaceMarker)
	for _, r := range singleChars {
		addPiece(string(r))
	}
	for _, w := range commonWords {
		addPiece(spaceMarker + w)
	}
	for _, w := range commonSubwords {
		addPiece(w)
	}
	for i, p := range pieces {
		add(p, -float32(i), TokenTypeNormal)
	}
	return v, nil
}

// RandomTokens draws n token ids uniformly from 3..nVocab-1, past the
// three special tokens every vocabulary here starts with (llama's <unk>,
// <s>, </s>; gemma3's <pad>, <eos>, <bos>), so a test prompt holds no
// BOS or EOS in its middle.
func RandomTokens(rng *rand.Rand, nVocab, n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(3 + rng.IntN(nVocab-3))
	}
	return out
}
