// Package train makes SDTP predictors for a GGUF model: calibration
// (gradient × input saliency from the model itself), the ranking-loss
// training of one MLP per stage, and held-out rank metrics. docs/TRAINING.md
// describes the data, the cache and the choices.
package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
)

// Tokenizer turns text into token ids (with BOS where the model adds one).
type Tokenizer func(text string) ([]int32, error)

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

// LoadSequences reads one data file into token sequences of at most maxLen
// tokens: each JSONL record (.jsonl) becomes one sequence, truncated;
// plain text is tokenized whole and cut into consecutive windows.
// Sequences shorter than minLen are skipped: they have too few tokens
// between the protected head and tail to rank. Of plain text only the
// portion [from, to) of the file (fractions of its bytes, cut at line
// starts) is read, so the rest can be held out for evaluation.
func LoadSequences(path string, tok Tokenizer, maxLen, minLen int, from, to float64) ([][]int32, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(path, ".jsonl") {
		raw = Portion(raw, from, to)
	}
	var out [][]int32
	add := func(s []int32) {
		if len(s) >= minLen {
			out = append(out, s[:min(len(s), maxLen)])
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
			text := r.join()
			if text == "" {
				return nil, fmt.Errorf("%s:%d: no instruction/context/response, prompt/answer or text field", path, line)
			}
			ids, err := tok(text)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			add(ids)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	} else {
		ids, err := tok(string(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		// Windows after the first start mid-text; they keep the first
		// token (BOS) so every sequence looks like a prompt.
		bos := ids[:1]
		for start := 1; start+minLen-1 <= len(ids); start += maxLen - 1 {
			add(append(append([]int32{}, bos...), ids[start:min(len(ids), start+maxLen-1)]...))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no sequence of at least %d tokens", path, minLen)
	}
	return out, nil
}

// Split shuffles seqs with seed and takes the first n for training and the
// next nVal for validation (both capped by what is there).
func Split(seqs [][]int32, n, nVal int, seed uint64) (train, val [][]int32) {
	s := append([][]int32(nil), seqs...)
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
