package fidelity

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
)

// The synthetic tasks, RULER-style (Hsieh et al. 2024, arXiv 2404.06654):
// the task design follows the paper; templates and wording are ours.
const (
	TaskSingleNumber = "single-number"     // one needle, a 7-digit number
	TaskSingleWord   = "single-word"       // one needle, a word
	TaskSingleUUID   = "single-uuid"       // one needle, a UUID-like code
	TaskMultiKey     = "multi-key"         // the asked key among 3 other keys' needles
	TaskMultiValue   = "multi-value"       // 4 values of one key, all asked
	TaskMultiQuery   = "multi-query"       // 4 keys, 2 asked at once
	TaskVarTracking  = "variable-tracking" // which variables hold a value after a chain of 2–4 assignments
	TaskCommonWords  = "common-words"      // the 5 most frequent words of a long list
)

// RulerTasks lists the synthetic tasks in report order.
var RulerTasks = []string{TaskSingleNumber, TaskSingleWord, TaskSingleUUID, TaskMultiKey, TaskMultiValue,
	TaskMultiQuery, TaskVarTracking, TaskCommonWords}

// QA tasks (RULER's qa_1 and qa_2 layout).
const (
	TaskSQuAD  = "qa-squad"
	TaskHotpot = "qa-hotpot"
)

// answerTokens is the fixed greedy answer budget of each task for
// completion prompts, which end in the answer's prefix. A UUID-like code
// takes about 36 tokens where digits are single tokens (Gemma 3, Qwen2.5).
var answerTokens = map[string]int{
	TaskSingleNumber: 16, TaskSingleWord: 16, TaskSingleUUID: 48, TaskMultiKey: 16, TaskMultiValue: 48,
	TaskMultiQuery: 32, TaskVarTracking: 32, TaskCommonWords: 48, TaskSQuAD: 32, TaskHotpot: 32,
}

// ChatRestatement is how many more tokens a chat prompt's answer gets: an
// instruct model restates the question before the answer ("The hidden
// code for the golden anchor is …"), which cut Qwen2.5-Coder-0.5B's
// UUID-like codes and 7-digit numbers short under the completion budgets.
const ChatRestatement = 32

// AnswerTokens is the greedy answer budget of task in format f.
func AnswerTokens(task string, f Format) int {
	if f.Chat != nil {
		return answerTokens[task] + ChatRestatement
	}
	return answerTokens[task]
}

// Prompt is one test prompt of a task, exactly Length tokens.
type Prompt struct {
	Task   string
	Length int
	Index  int // its number within the (task, length) cell
	Tokens []int32
	// Needles are where the facts sit: [0] is the asked one (for QA: a
	// gold paragraph), the others distractors or further facts.
	Needles []Span
	// Depth is where Needles[0] starts, as a fraction of the prompt; -1
	// for tasks without a needle (common words).
	Depth float64
	// Answers: for needle tasks every string a right answer holds; for QA
	// the gold answers, one of which it must hold.
	Answers      []string
	QA           bool
	AnswerTokens int // the greedy answer budget
}

// Generator builds the prompts of the suite for one model and format.
// The same (seed, task, length, index) always gives the same prompt.
type Generator struct {
	Tok      Tokenizer
	Format   Format
	Haystack *Haystack
	Seed     uint64
}

// rng is the prompt's own random stream.
func (g *Generator) rng(task string, n, index int) *rand.Rand {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d/%d", task, n, index)
	return rand.New(rand.NewPCG(g.Seed, h.Sum64()))
}

// spread is where the asked needle of prompt index goes, as a fraction of
// the room: the van der Corput sequence 1/2, 1/4, 3/4, 1/8, 5/8, … jittered
// within its own grid cell. Any first k prompts of a cell cover the room
// evenly, so a cell of k prompts is the first k of a larger one (and
// reuses its records).
func spread(index int, rng *rand.Rand) float64 {
	i := uint(index + 1)
	v, f, cell := 0.0, 0.5, 1.0
	for ; i > 0; i >>= 1 {
		if i&1 == 1 {
			v += f
		}
		f /= 2
		cell /= 2
	}
	return v + (rng.Float64()-0.5)*cell
}

// fact is a needle as text, and where it goes.
type fact struct {
	text string
	frac float64
}

// Ruler builds prompt index of a synthetic task at n tokens.
func (g *Generator) Ruler(task string, n, index int) (Prompt, error) {
	rng := g.rng(task, n, index)
	p := Prompt{Task: task, Length: n, Index: index, AnswerTokens: AnswerTokens(task, g.Format), Depth: -1}
	if task == TaskCommonWords {
		return g.commonWords(p, rng)
	}
	if g.Haystack == nil {
		return p, fmt.Errorf("fidelity: task %s needs a haystack", task)
	}
	at := spread(index, rng)
	keys := pick(4, func() string { return adjectives[rng.IntN(len(adjectives))] + " " + nouns[rng.IntN(len(nouns))] })
	var facts []fact
	var question, prefix string
	single := func(kind, value string) {
		facts = []fact{{fmt.Sprintf(" Remember this: the hidden %s for the %s is %s.", kind, keys[0], value), at}}
		question = fmt.Sprintf("What is the hidden %s for the %s?", kind, keys[0])
		prefix = fmt.Sprintf("The hidden %s for the %s is", kind, keys[0])
		p.Answers = []string{value}
	}
	numbers := pick(4, func() string { return fmt.Sprint(1000000 + rng.IntN(9000000)) })
	numberFact := func(key, value string, frac float64) fact {
		return fact{fmt.Sprintf(" Remember this: the hidden number for the %s is %s.", key, value), frac}
	}
	switch task {
	case TaskSingleNumber:
		single("number", numbers[0])
	case TaskSingleWord:
		single("word", nouns[rng.IntN(len(nouns))])
	case TaskSingleUUID:
		single("code", uuidLike(rng))
	case TaskMultiKey:
		single("number", numbers[0])
		for i := 1; i < 4; i++ {
			facts = append(facts, numberFact(keys[i], numbers[i], rng.Float64()))
		}
	case TaskMultiValue:
		for i, v := range numbers {
			frac := at
			if i > 0 {
				frac = rng.Float64()
			}
			facts = append(facts, fact{fmt.Sprintf(" Remember this: one of the hidden numbers for the %s is %s.", keys[0], v), frac})
		}
		question = fmt.Sprintf("What are all the hidden numbers for the %s?", keys[0])
		prefix = fmt.Sprintf("The hidden numbers for the %s are", keys[0])
		p.Answers = numbers
	case TaskMultiQuery:
		for i := range 4 {
			frac := at
			if i > 0 {
				frac = rng.Float64()
			}
			facts = append(facts, numberFact(keys[i], numbers[i], frac))
		}
		question = fmt.Sprintf("What are the hidden numbers for the %s and for the %s?", keys[0], keys[1])
		prefix = fmt.Sprintf("The hidden number for the %s is", keys[0])
		p.Answers = numbers[:2]
	case TaskVarTracking:
		hops := 2 + index%3
		names := pick(2*hops, func() string { return varName(rng) })
		values := numbers[:2] // the asked chain's value and a second chain's
		for c := range 2 {
			frac := at
			if c > 0 {
				frac = rng.Float64()
			}
			chain := names[c*hops : (c+1)*hops]
			for h, name := range chain {
				if h > 0 { // each assignment after the one before
					frac += (1 - frac) * rng.Float64() / 2
				}
				text := fmt.Sprintf(" VAR %s = %s.", name, values[c])
				if h > 0 {
					text = fmt.Sprintf(" VAR %s = VAR %s.", name, chain[h-1])
				}
				facts = append(facts, fact{text, frac})
			}
		}
		question = fmt.Sprintf("The text above hides variable assignments. Which variables end up holding the value %s? List their names.", values[0])
		prefix = fmt.Sprintf("The variables that hold %s are:", values[0])
		p.Answers = names[:hops]
	default:
		return p, fmt.Errorf("fidelity: unknown task %q (known: %s)", task, strings.Join(RulerTasks, ", "))
	}
	intro := "Below is a long text with a few facts hidden in it. Read it and remember the facts; a question about them follows the text.\n\n"
	fr, err := frameFor(g.Tok, g.Format, intro, question, prefix)
	if err != nil {
		return p, err
	}
	needles := make([]needle, len(facts))
	for i, f := range facts {
		if needles[i].toks, err = g.Tok.Tokenize(f.text, false, false); err != nil {
			return p, err
		}
		needles[i].frac = f.frac
	}
	p.Tokens, p.Needles, err = assemble(n, fr, needles, false, func(k int) (filler, error) {
		return g.Haystack.fill(g.Tok, k, rng)
	})
	if err != nil {
		return p, fmt.Errorf("%s at %d tokens: %w", task, n, err)
	}
	p.Depth = float64(p.Needles[0].Start) / float64(n)
	return p, nil
}

// commonWords fills the prompt with a list of words built in rounds: each
// round holds the 5 common words and 5 of the ~145 others (in turn), in
// random order, so the common words make half the list and each appears
// ~30 times as often as any other; it asks for the 5 most frequent.
func (g *Generator) commonWords(p Prompt, rng *rand.Rand) (Prompt, error) {
	pool := slices.Clone(nouns)
	rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	common, rare := pool[:5], pool[5:]
	question := "Which 5 words appear most often in the list above? Answer with the 5 words."
	prefix := "The 5 most frequent words are:"
	intro := "Below is a long list of words. Some words occur much more often than others.\n\nList:"
	fr, err := frameFor(g.Tok, g.Format, intro, question, prefix)
	if err != nil {
		return p, err
	}
	count := map[string]int{}
	var round []string
	nextRare := 0
	p.Tokens, _, err = assemble(p.Length, fr, nil, true, func(k int) (filler, error) {
		used := 0
		return chunks(k, func() ([]int32, error) {
			if len(round) == 0 {
				round = slices.Clone(common)
				for range 5 {
					round = append(round, rare[nextRare%len(rare)])
					nextRare++
				}
				rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
			}
			w := round[0]
			round = round[1:]
			t, err := g.Tok.Tokenize(" "+w+",", false, false)
			if used += len(t); used <= k {
				count[w]++ // an entry the budget does not cut short
			}
			return t, err
		})
	})
	if err != nil {
		return p, fmt.Errorf("%s at %d tokens: %w", p.Task, p.Length, err)
	}
	least, most := p.Length, 0 // fewest of a common word, most of another
	for w, c := range count {
		if slices.Contains(common, w) {
			least = min(least, c)
		} else {
			most = max(most, c)
		}
	}
	if least <= most {
		return p, fmt.Errorf("%s at %d tokens: the list is too short for 5 clearly most frequent words", p.Task, p.Length)
	}
	p.Answers = slices.Clone(common)
	return p, nil
}

// pick draws n distinct strings.
func pick(n int, draw func() string) []string {
	var out []string
	for len(out) < n {
		if s := draw(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// uuidLike is 32 random hex digits grouped 8-4-4-4-12.
func uuidLike(rng *rand.Rand) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i := range 32 {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			b.WriteByte('-')
		}
		b.WriteByte(hex[rng.IntN(16)])
	}
	return b.String()
}

// varName is 5 random capital letters.
func varName(rng *rand.Rand) string {
	b := make([]byte, 5)
	for i := range b {
		b[i] = byte('A' + rng.IntN(26))
	}
	return string(b)
}

// MaxAnswerTokens is the largest answer budget of any task in any format,
// for sizing the context: a prompt of n tokens needs n + MaxAnswerTokens()
// cells.
func MaxAnswerTokens() int {
	m := 0
	for _, n := range answerTokens {
		m = max(m, n)
	}
	return m + ChatRestatement
}
