package fidelity

import (
	"fmt"
	"strings"
)

// Training prompts. sdtp-train learns answer-conditioned saliency (issue
// 16) from prompts built like the suite's, each with its reference answer,
// but never from the suite's own prompts: it builds them with
// ForTraining's generator (other needles, values and haystack cuts) and
// asks only questions that WithoutTestQuestions leaves.

// TestQuestions is how many questions of each QA set are kept for the
// suite: the first TestQuestions of the suite's permutation, which cells
// of up to that many prompts ask (make fidelity's ask 50).
const TestQuestions = 200

// trainingSeed is mixed into the suite's seed for training prompts.
const trainingSeed = 0x7ea1_5eed

// ForTraining returns a generator of training prompts: g's tokenizer,
// format and haystack, another seed.
func (g *Generator) ForTraining() *Generator {
	t := *g
	t.Seed ^= trainingSeed
	return &t
}

// WithoutTestQuestions returns set less the questions the suite's cells
// (of g's seed, up to TestQuestions prompts) ask. Its distractor pool holds
// only the remaining questions' paragraphs, so a training prompt shows no
// test question's gold paragraph unless another question shares it
// (SQuAD asks several questions of one paragraph).
func (g *Generator) WithoutTestQuestions(set *QASet) (*QASet, error) {
	perm := g.rng(set.Task, 0, 0).Perm(len(set.Items))
	test := map[int]bool{}
	for _, i := range perm[:min(TestQuestions, len(perm))] {
		test[i] = true
	}
	var items []QAItem
	for i, it := range set.Items {
		if !test[i] {
			items = append(items, it)
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("fidelity: all %d questions of %s are kept for the suite's test prompts (the first %d)", len(set.Items), set.Task, TestQuestions)
	}
	return NewQASet(set.Task, items)
}

// Reference is the answer a right reply to p gives, as text that follows
// p's tokens in format f: the answers joined by ", " (QA: the first gold
// answer), after a space when a completion prompt ends in its answer
// prefix.
func (p Prompt) Reference(f Format) string {
	ref := strings.Join(p.Answers, ", ")
	if p.QA && len(p.Answers) > 0 {
		ref = p.Answers[0]
	}
	if f.Chat == nil {
		return " " + ref
	}
	return ref
}
