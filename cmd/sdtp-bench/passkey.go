package main

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/internal/numeric"
	"github.com/go-sdtp/sdtp/internal/report"
)

// passkey hides a random 5-digit key at each --depths fraction of a
// haystack of each --lengths size, asks for it at the end, and counts the
// greedy answers that contain it.
func (b *bench) passkey() ([]report.Row, error) {
	raw, err := b.readText(b.cfg.haystack)
	if err != nil {
		return nil, err
	}
	hay, err := b.model.Tokenize(string(raw), false, false)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(b.cfg.seed, 11))
	var rows []report.Row
	for _, n := range b.cfg.lengths {
		hits := make([][]int, len(b.vars)) // per variant: hits per depth
		for di, depth := range b.cfg.depths {
			for range b.cfg.trials {
				key := fmt.Sprintf("%05d", rng.IntN(100000))
				prompt, err := b.passkeyPrompt(hay, n, depth, key, rng)
				if err != nil {
					return nil, err
				}
				for vi, v := range b.vars {
					if v.mode == "llamacpp" {
						continue // dense is the same model path
					}
					answer, _, _, err := b.greedyAnswer(v, prompt, 8)
					if err != nil {
						return nil, err
					}
					if hits[vi] == nil {
						hits[vi] = make([]int, len(b.cfg.depths))
					}
					if strings.Contains(answer, key) {
						hits[vi][di]++
					}
				}
			}
		}
		fmt.Fprintf(b.log, "passkey: %d tokens done\n", n)
		for vi, v := range b.vars {
			h := hits[vi]
			if h == nil {
				continue
			}
			row := v.row(n)
			row.Samples = b.cfg.trials * len(b.cfg.depths)
			total := 0
			for _, c := range h {
				row.PasskeyDepthAcc = append(row.PasskeyDepthAcc, float64(c)/float64(b.cfg.trials))
				total += c
			}
			row.PasskeyAcc = float64(total) / float64(row.Samples)
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// passkeyPrompt builds BOS + haystack with the needle at depth + question,
// exactly n tokens long, from a random offset of the haystack.
func (b *bench) passkeyPrompt(hay []int32, n int, depth float64, key string, rng *rand.Rand) ([]int32, error) {
	needle, err := b.model.Tokenize(" The pass key is "+key+". Remember it. "+key+" is the pass key. ", false, false)
	if err != nil {
		return nil, err
	}
	question, err := b.model.Tokenize(" What is the pass key? The pass key is", false, false)
	if err != nil {
		return nil, err
	}
	filler := n - 1 - len(needle) - len(question)
	if filler < 16 || len(hay) < filler {
		return nil, fmt.Errorf("passkey: %d tokens is too short, or the haystack (%d tokens) too small", n, len(hay))
	}
	start := rng.IntN(len(hay) - filler + 1)
	text := hay[start : start+filler]
	at := int(depth * float64(filler))
	prompt := append([]int32{b.model.BOS()}, text[:at]...)
	prompt = append(prompt, needle...)
	prompt = append(prompt, text[at:]...)
	return append(prompt, question...), nil
}

// greedyAnswer prefills prompt in the variant and decodes at most n
// greedy tokens. It returns the answer, whether it ended (end of
// generation) before n tokens, and, per prompt token, the stage that
// pruned it (0: kept; sdtp.PrefillResult.DroppedAt).
func (b *bench) greedyAnswer(v variant, prompt []int32, n int) (string, bool, []int, error) {
	pre, kv, err := b.prefill(v, b.scorer(v.mode), prompt)
	if err != nil {
		return "", false, nil, err
	}
	logits := pre.Logits
	var out []int32
	ended := false
	for i := range n {
		tok := int32(numeric.Argmax(logits))
		if ended = b.model.IsEOG(tok); ended {
			break
		}
		out = append(out, tok)
		step, err := b.engine.Run(bridge.RunInput{First: 0, Last: b.engine.NLayer(), Tokens: []int32{tok},
			Positions: []int32{int32(len(prompt) + i)}, WantLogits: true})
		if err == nil {
			err = kv.Enforce()
		}
		if err != nil {
			return "", false, nil, err
		}
		logits = step.Logits
	}
	return b.model.Detokenize(out), ended, pre.DroppedAt, nil
}
