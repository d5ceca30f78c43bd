package fidelity

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
)

// QASet is a QA data set's development split: its questions and the pool
// of paragraphs other questions' prompts take distractors from.
type QASet struct {
	Task  string // TaskSQuAD or TaskHotpot
	Items []QAItem
	pool  []Doc
}

// NewQASet indexes items for prompts of task (TaskSQuAD or TaskHotpot).
func NewQASet(task string, items []QAItem) (*QASet, error) {
	if task != TaskSQuAD && task != TaskHotpot {
		return nil, fmt.Errorf("fidelity: %q is not a QA task", task)
	}
	s := &QASet{Task: task, Items: items}
	seen := map[Doc]bool{}
	for _, it := range items {
		for _, d := range append(append([]Doc{}, it.Gold...), it.Distractors...) {
			if !seen[d] {
				seen[d] = true
				s.pool = append(s.pool, d)
			}
		}
	}
	if len(items) == 0 || len(s.pool) < 2 {
		return nil, fmt.Errorf("fidelity: %s needs questions and paragraphs", task)
	}
	return s, nil
}

// LoadQASet reads task's development split (TaskSQuAD: squad.json,
// TaskHotpot: hotpotqa.json) from dir, as make data leaves it.
func LoadQASet(dir, task string) (*QASet, error) {
	load, file := LoadSQuAD, "squad.json"
	switch task {
	case TaskSQuAD:
	case TaskHotpot:
		load, file = LoadHotpot, "hotpotqa.json"
	default:
		return nil, fmt.Errorf("fidelity: %q is not a QA task", task)
	}
	items, err := load(filepath.Join(dir, file))
	if err != nil {
		return nil, err
	}
	return NewQASet(task, items)
}

// docText is a paragraph as the prompt shows it.
func docText(d Doc) string {
	if d.Title != "" {
		return fmt.Sprintf("\n\nDocument (%s): %s", d.Title, d.Text)
	}
	return "\n\nDocument: " + d.Text
}

// QA builds prompt index of set at n tokens: the
// question, the documents, the question again (RULER's QA layout). The
// documents are the gold paragraph(s), placed outside the protected
// window like needles (Prompt.Depth: the first one), among distractors:
// for HotpotQA the record's own first, then paragraphs of other questions
// drawn at random, shuffled, the one that crosses the budget cut short.
// Item index i of a cell is question i of a seeded permutation, the same
// at every length.
func (g *Generator) QA(set *QASet, n, index int) (Prompt, error) {
	perm := g.rng(set.Task, 0, 0).Perm(len(set.Items))
	it := set.Items[perm[index%len(perm)]]
	rng := g.rng(set.Task, n, index)
	p := Prompt{Task: set.Task, Length: n, Index: index, Answers: it.Answers, QA: true, AnswerTokens: AnswerTokens(set.Task, g.Format)}
	instr := "Answer the question using the documents. Reply with the answer only, in as few words as possible."
	intro := fmt.Sprintf("%s\n\nQuestion: %s\n\nDocuments:", instr, it.Question)
	question := fmt.Sprintf("%s\n\nQuestion: %s", strings.Replace(instr, "the documents", "the documents above", 1), it.Question)
	fr, err := frameFor(g.Tok, g.Format, intro, question, "Answer:")
	if err != nil {
		return p, err
	}
	gold := map[Doc]bool{}
	needles := make([]needle, len(it.Gold))
	for i, d := range it.Gold {
		gold[d] = true
		if needles[i].toks, err = g.Tok.Tokenize(docText(d), false, false); err != nil {
			return p, err
		}
		needles[i].frac = rng.Float64()
	}
	if len(needles) > 0 {
		needles[0].frac = spread(index, rng)
	}
	p.Tokens, p.Needles, err = assemble(n, fr, needles, false, func(k int) (filler, error) {
		return g.distractors(set, it, gold, k, rng)
	})
	if err != nil {
		return p, fmt.Errorf("%s at %d tokens: %w", set.Task, n, err)
	}
	p.Depth = float64(p.Needles[0].Start) / float64(n)
	return p, nil
}

// distractors is a filler of exactly n tokens of paragraphs that are not
// gold: the item's own distractors, then random ones from the pool;
// shuffled; the paragraph that crossed the budget cut to the remainder.
func (g *Generator) distractors(set *QASet, it QAItem, gold map[Doc]bool, n int, rng *rand.Rand) (filler, error) {
	var docs [][]int32
	total := 0
	used := map[Doc]bool{}
	add := func(d Doc) error {
		if gold[d] || used[d] {
			return nil
		}
		used[d] = true
		t, err := g.Tok.Tokenize(docText(d), false, false)
		if err != nil {
			return err
		}
		docs = append(docs, t[:min(len(t), n-total)])
		total += len(docs[len(docs)-1])
		return nil
	}
	for _, d := range it.Distractors {
		if total < n {
			if err := add(d); err != nil {
				return filler{}, err
			}
		}
	}
	for tries := 0; total < n; tries++ {
		if tries > 100*len(set.pool) {
			return filler{}, fmt.Errorf("fidelity: %s has too few paragraphs for %d tokens", set.Task, n)
		}
		if err := add(set.pool[rng.IntN(len(set.pool))]); err != nil {
			return filler{}, err
		}
	}
	rng.Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] })
	i := 0
	return chunks(n, func() ([]int32, error) { i++; return docs[i-1], nil })
}
