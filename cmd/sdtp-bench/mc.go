package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"

	"github.com/go-sdtp/sdtp/internal/report"
)

// mcItem is one multiple-choice question: either one context and several
// continuations (ARC, PIQA) or one context per choice and a shared
// continuation (WinoGrande).
type mcItem struct {
	contexts []string // one, or one per choice
	conts    []string // one per choice, or one shared
	gold     int
}

func (it mcItem) choices() int { return max(len(it.contexts), len(it.conts)) }

func (it mcItem) pair(i int) (string, string) {
	ctx, cont := it.contexts[0], it.conts[0]
	if len(it.contexts) > 1 {
		ctx = it.contexts[i]
	}
	if len(it.conts) > 1 {
		cont = it.conts[i]
	}
	return ctx, cont
}

// readMC reads the common lm-eval JSONL layouts: {query, choices, gold};
// {context_options, continuation, gold}; PIQA's {goal, sol1, sol2} with a
// labels file (one 0/1 per line).
func readMC(path, labelsPath string) ([]mcItem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var labels []int
	if labelsPath != "" {
		raw, err := os.ReadFile(labelsPath)
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Fields(string(raw)) {
			v, err := strconv.Atoi(l)
			if err != nil {
				return nil, fmt.Errorf("%s: label %q is not an integer", labelsPath, l)
			}
			labels = append(labels, v)
		}
	}
	var items []mcItem
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for line := 1; sc.Scan(); line++ {
		var r struct {
			Query          string   `json:"query"`
			Choices        []string `json:"choices"`
			ContextOptions []string `json:"context_options"`
			Continuation   string   `json:"continuation"`
			Goal           string   `json:"goal"`
			Sol1, Sol2     string
			Gold           *int `json:"gold"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		var it mcItem
		switch {
		case r.Query != "" && len(r.Choices) > 1 && r.Gold != nil:
			it = mcItem{contexts: []string{r.Query + "\nAnswer:"}, gold: *r.Gold}
			for _, c := range r.Choices {
				it.conts = append(it.conts, " "+c)
			}
		case len(r.ContextOptions) > 1 && r.Continuation != "" && r.Gold != nil:
			it = mcItem{contexts: r.ContextOptions, conts: []string{" " + r.Continuation}, gold: *r.Gold}
		case r.Goal != "" && r.Sol1 != "" && r.Sol2 != "":
			if line > len(labels) {
				return nil, fmt.Errorf("%s:%d: PIQA items need --mc-labels with a label per line", path, line)
			}
			it = mcItem{contexts: []string{"Question: " + r.Goal + "\nAnswer:"}, conts: []string{" " + r.Sol1, " " + r.Sol2}, gold: labels[line-1]}
		default:
			return nil, fmt.Errorf("%s:%d: not a known multiple-choice layout", path, line)
		}
		if it.gold < 0 || it.gold >= it.choices() {
			return nil, fmt.Errorf("%s:%d: gold %d outside %d choices", path, line, it.gold, it.choices())
		}
		items = append(items, it)
	}
	return items, sc.Err()
}

// multipleChoice scores each choice by its length-normalised
// log-likelihood (per byte, as lm-eval's acc_norm) after a (pruned)
// prefill of --shots solved examples from the same file plus the question.
func (b *bench) multipleChoice() ([]report.Row, error) {
	items, err := readMC(b.cfg.mc, b.cfg.mcLabels)
	if err != nil {
		return nil, err
	}
	if len(items) <= b.cfg.shots {
		return nil, fmt.Errorf("%s has %d items, need more than --shots %d", b.cfg.mc, len(items), b.cfg.shots)
	}
	rng := rand.New(rand.NewPCG(b.cfg.seed, 13))
	correct := make([]int, len(b.vars))
	promptTokens := 0
	n := min(b.cfg.mcItems, len(items))
	for q := range n {
		var shots strings.Builder
		taken := 0
		for _, s := range rng.Perm(len(items)) {
			if taken == b.cfg.shots {
				break
			}
			if s != q {
				ctx, cont := items[s].pair(items[s].gold)
				shots.WriteString(ctx + cont + "\n\n")
				taken++
			}
		}
		first, _ := items[q].pair(0) // the prompt of the first choice counts for the mean
		firstToks, err := b.model.Tokenize(shots.String()+first, true, false)
		if err != nil {
			return nil, err
		}
		promptTokens += len(firstToks)
		for vi, v := range b.vars {
			if v.mode == "llamacpp" {
				continue
			}
			best, bestScore := -1, 0.0
			for c := range items[q].choices() {
				ctx, cont := items[q].pair(c)
				ctxToks, err := b.model.Tokenize(shots.String()+ctx, true, false)
				if err != nil {
					return nil, err
				}
				contToks, err := b.model.Tokenize(cont, false, false)
				if err != nil || len(contToks) == 0 {
					return nil, fmt.Errorf("choice %q: %v", cont, err)
				}
				lp, _, err := b.continuation(v, ctxToks, contToks)
				if err != nil {
					return nil, err
				}
				sum := 0.0
				for i, tok := range contToks {
					sum += float64(lp[i][tok])
				}
				if score := sum / float64(len(cont)); best < 0 || score > bestScore {
					best, bestScore = c, score
				}
			}
			if best == items[q].gold {
				correct[vi]++
			}
		}
		if (q+1)%10 == 0 {
			fmt.Fprintf(b.log, "mc: %d/%d items\n", q+1, n)
		}
	}
	var rows []report.Row
	for vi, v := range b.vars {
		if v.mode == "llamacpp" {
			continue
		}
		row := v.row(promptTokens / n)
		row.Samples, row.MCAcc = n, float64(correct[vi])/float64(n)
		rows = append(rows, row)
	}
	return rows, nil
}
