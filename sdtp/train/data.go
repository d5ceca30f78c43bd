// Package train makes SDTP predictors for a GGUF model: calibration
// (gradient × input saliency from the model itself), the ranking-loss
// training of one MLP per stage, and held-out rank metrics. docs/TRAINING.md
// describes the data, the cache and the choices.
package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
)

// Tokenizer turns text into token ids (*bridge.Model): addSpecial adds
// BOS/EOS where the model asks for them, parseSpecial reads special-token
// text (a chat template's) as those tokens.
type Tokenizer interface {
	Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error)
}

// Sequence is one calibration input. Prompt is what a user's prompt would
// be: the tokens prefilled and pruned. Answer, when there is one, is the
// reference answer that follows it; the saliency's loss is then the
// cross-entropy of the answer tokens alone (answer-conditioned saliency,
// issue 16: a token matters as much as the answer needs it), else that of
// the prompt's final Calibrator.LossWindow.
type Sequence struct {
	Prompt []int32
	Answer []int32
}

// DataOptions says how LoadSequences reads a data file.
type DataOptions struct {
	// MaxLen and MinLen bound a prompt's tokens. Text longer than MaxLen is
	// cut (JSONL text records) or windowed (plain text); a record with an
	// answer whose prompt is longer is skipped, as is any sequence shorter
	// than MinLen: it has too few tokens between the protected head and
	// tail to rank.
	MaxLen, MinLen int
	// From and To are the portion of a plain-text file read (fractions of
	// its bytes, cut at line starts), so the rest can be held out.
	From, To float64
	// Answers: a JSONL record with a response or answer becomes its prompt
	// plus that answer (at most MaxAnswer tokens). False: every record is
	// one text, its fields joined, as before answer conditioning.
	Answers   bool
	MaxAnswer int
	// Chat formats a record's prompt as one user message with the model's
	// chat template, the assistant's turn opened (the template writes BOS).
	// Nil: completion style, BOS + the prompt's fields joined by blank
	// lines + a newline, for base models.
	Chat func(user string) (string, error)
}

// LoadSequences reads one data file: JSONL records (.jsonl), each one
// sequence, or plain text, tokenized whole and cut into consecutive
// windows of MaxLen tokens.
func LoadSequences(path string, tok Tokenizer, o DataOptions) ([]Sequence, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Sequence
	add := func(s Sequence) {
		if len(s.Prompt) >= o.MinLen {
			out = append(out, s)
		}
	}
	if strings.HasSuffix(path, ".jsonl") {
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for line := 1; sc.Scan(); line++ {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			var r dollyRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			s, err := r.sequence(tok, o)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			if len(s.Prompt) <= o.MaxLen {
				add(s)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	} else {
		ids, err := tok.Tokenize(string(Portion(raw, o.From, o.To)), true, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		// Windows after the first start mid-text; they keep the first
		// token (BOS) so every sequence looks like a prompt.
		bos := ids[:1]
		for start := 1; start+o.MinLen-1 <= len(ids); start += o.MaxLen - 1 {
			add(Sequence{Prompt: append(append([]int32{}, bos...), ids[start:min(len(ids), start+o.MaxLen-1)]...)})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no sequence of %d to %d tokens", path, o.MinLen, o.MaxLen)
	}
	return out, nil
}

// dollyRecord covers the JSONL layouts sdtp-train reads: dolly-style
// instruction/context/response, prompt/answer, or plain text.
type dollyRecord struct {
	Instruction string `json:"instruction"`
	Context     string `json:"context"`
	Response    string `json:"response"`
	Prompt      string `json:"prompt"`
	Answer      string `json:"answer"`
	Text        string `json:"text"`
}

func (r dollyRecord) join() string {
	var parts []string
	for _, s := range []string{r.Instruction, r.Context, r.Response, r.Prompt, r.Answer, r.Text} {
		if s = strings.TrimSpace(s); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "\n\n")
}

// sequence is a record as a calibration sequence (see DataOptions).
func (r dollyRecord) sequence(tok Tokenizer, o DataOptions) (Sequence, error) {
	answer := strings.TrimSpace(r.Response + r.Answer)
	if !o.Answers || answer == "" {
		text := r.join()
		if text == "" {
			return Sequence{}, errors.New("no instruction/context/response, prompt/answer or text field")
		}
		ids, err := tok.Tokenize(text, true, false)
		return Sequence{Prompt: ids[:min(len(ids), o.MaxLen)]}, err
	}
	user := dollyRecord{Instruction: r.Instruction, Context: r.Context, Prompt: r.Prompt, Text: r.Text}.join()
	if user == "" {
		return Sequence{}, errors.New("an answer without instruction, context or prompt")
	}
	var s Sequence
	var err error
	if o.Chat == nil {
		s.Prompt, err = tok.Tokenize(user+"\n", true, false)
	} else {
		var text string
		if text, err = o.Chat(user); err == nil {
			s.Prompt, err = tok.Tokenize(text, false, true)
		}
	}
	if err != nil {
		return s, err
	}
	if s.Answer, err = tok.Tokenize(answer, false, false); err != nil {
		return s, err
	}
	s.Answer = s.Answer[:min(len(s.Answer), o.MaxAnswer)]
	return s, nil
}

// Split shuffles seqs with seed and takes the first n for training and the
// next nVal for validation (both capped by what is there).
func Split[S any](seqs []S, n, nVal int, seed uint64) (train, val []S) {
	s := slices.Clone(seqs)
	rand.New(rand.NewPCG(seed, 0x7a1d)).Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	nVal = min(nVal, len(s)/2)
	n = min(n, len(s)-nVal)
	return s[:n], s[n : n+nVal]
}

// Portion returns the bytes of text between the fractions from and to of
// its length, moved forward to the start of a line.
func Portion(text []byte, from, to float64) []byte {
	cut := func(f float64) int {
		i := int(f * float64(len(text)))
		if i <= 0 {
			return 0
		}
		if i >= len(text) {
			return len(text)
		}
		if j := bytes.IndexByte(text[i-1:], '\n'); j >= 0 {
			return i + j
		}
		return len(text)
	}
	return text[cut(from):cut(to)]
}
