package sdtp

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
)

// Span kernels used by retrieval-safe pruning methods: SnapKV (arXiv
// 2404.14469) pools its observation-window scores over 7 neighbouring
// tokens before choosing, SpecPrefill (arXiv 2502.02789) over 13.
const (
	SnapKVSpanKernel      = 7
	SpecPrefillSpanKernel = 13
)

// ValidateSpanKernel accepts 0 (no pooling) or an odd kernel: a token and
// (kernel−1)/2 live neighbours on each side.
func ValidateSpanKernel(kernel int) error {
	if kernel < 0 || (kernel > 0 && kernel%2 == 0) {
		return fmt.Errorf("sdtp: span kernel %d must be 0 (off) or odd (a token and as many live neighbours on each side)", kernel)
	}
	return nil
}

// ValidateSpanTrail accepts a trail of 0 (off) or more live tokens.
func ValidateSpanTrail(trail int) error {
	if trail < 0 {
		return fmt.Errorf("sdtp: span trail %d must be 0 (off) or a number of following tokens", trail)
	}
	return nil
}

// PoolSpans max-pools scores over neighbourhoods of live tokens before
// Select, so that a multi-token fact (a number, a name) whose best token
// scores high survives whole instead of losing pieces (SnapKV: max pooling
// over 7 tokens; SpecPrefill: 13). Each unprotected token gets
// the highest score among the unprotected live tokens at most
// (kernel−1)/2 places before or after it in position order (live tokens,
// not original positions: at later stages a neighbour may lie further
// away). Protected tokens keep their own scores and lend none: they are
// kept anyway, and attention sinks would otherwise pull their neighbours
// in.
//
// trail > (kernel−1)/2 lends each token's score to that many following
// live tokens instead: a fact's value follows the words that match a
// question ("the number for the cat is 7430123"), and an attention-based
// score finds those words (and the value's first token, by induction),
// not the rest of the value, so a centered kernel of 7 keeps 3 digits of
// 7 (docs/HYBRID.md, "Spans"). With stops (parallel to positions: the
// live tokens that end a sentence, EndsSentence; nil: none) a score is
// lent no further than the end of its token's sentence: a fact ends
// with its sentence, and the rest of a trail only crowds other facts out
// of the cut (docs/HYBRID.md, "Sentence-bounded trails").
//
// positions, scores and stops are parallel, in increasing position order;
// the result is new. kernel ≤ 1 with trail 0 returns scores unchanged.
func PoolSpans(positions []int32, scores []float32, stops []bool, nPrompt, kernel, trail int) []float32 {
	half := max(0, kernel/2) // neighbours on each side that lend a token their score
	if half == 0 && trail == 0 {
		return scores
	}
	out := make([]float32, len(scores))
	for i := range scores {
		out[i] = scores[i]
		if Protected(int(positions[i]), nPrompt) {
			continue
		}
		lend := func(j int) {
			if !Protected(int(positions[j]), nPrompt) && scores[j] > out[i] {
				out[i] = scores[j]
			}
		}
		for j := max(0, i-half); j <= min(len(scores)-1, i+half); j++ {
			lend(j)
		}
		for j := i - 1; j >= max(0, i-trail); j-- {
			if stops != nil && stops[j] {
				break // i is in a later sentence than j
			}
			lend(j)
		}
	}
	return out
}

// EndsSentence reports whether a token's text ends a sentence or a line:
// it holds '.', '!', '?' or a newline. The text of one token suffices:
// the needles and passages a trail keeps end their facts with one of
// these, and a false stop (an abbreviation, a decimal point) shortens one
// trail, nothing more.
func EndsSentence(piece []byte) bool {
	return bytes.ContainsAny(piece, ".!?\n")
}

// ValidateSpanEcho accepts 0 (off) or an n-gram length of at least 2:
// a single shared token (an article, a comma) says nothing about a fact.
func ValidateSpanEcho(gram int) error {
	if gram < 0 || gram == 1 {
		return fmt.Errorf("sdtp: span echo %d must be 0 (off) or an n-gram length of at least 2", gram)
	}
	return nil
}

// EchoWindow is how many of the prompt's last tokens ShareEchoes reads as
// the question: a RULER or QA question and a chat template's closing turn
// fit. Not the whole protected tail: its document text shares common
// phrases with the rest of the prompt, and sharing their scores kept
// filler over facts (Gemma 3 270M, 2048 tokens, needle tasks: 75 of 186
// answers against 96; docs/HYBRID.md, "Echoes").
const EchoWindow = 32

// ShareEchoes gives every unprotected live token that ends an echo — a
// run of gram tokens that also occurs in the prompt's last EchoWindow
// tokens (within the protected tail), where the question sits — the
// highest score among the live tokens ending the same run. Copies of one
// phrase ("the number for the silver key is") then survive or go
// together: question attention spreads over near-identical copies
// unevenly, and a fact stated several times (all values of one key)
// otherwise loses a copy whole (docs/HYBRID.md, "Echoes"). Tokens that
// end no echo keep their scores; protected tokens keep theirs and lend
// none.
//
// tokens is the whole prompt; positions (indices into tokens) and scores
// are parallel, in increasing position order; the result is new. gram < 2
// returns scores unchanged.
func ShareEchoes(tokens []int32, positions []int32, scores []float32, gram int) []float32 {
	if gram < 2 {
		return scores
	}
	nPrompt := len(tokens)
	_, asked := questionRuns(tokens, gram)
	key := func(end int) string { return runKey(tokens, end, gram) }
	best := map[string]float32{}
	echo := make([]string, len(positions))
	for i, p := range positions {
		if int(p) < gram-1 || Protected(int(p), nPrompt) {
			continue
		}
		if k := key(int(p)); asked[k] {
			echo[i] = k
			if b, ok := best[k]; !ok || scores[i] > b {
				best[k] = scores[i]
			}
		}
	}
	out := slices.Clone(scores)
	for i, k := range echo {
		if k != "" {
			out[i] = best[k]
		}
	}
	return out
}

// runKey is the run of gram tokens ending at tokens[end], as a map key.
func runKey(tokens []int32, end, gram int) string {
	b := make([]byte, 0, 4*gram)
	for _, t := range tokens[end-gram+1 : end+1] {
		b = append(b, byte(t), byte(t>>8), byte(t>>16), byte(t>>24))
	}
	return string(b)
}

// questionRuns are the runs of gram tokens in the prompt's last
// EchoWindow tokens (within the protected tail), where the question
// sits, and the position where that window starts.
func questionRuns(tokens []int32, gram int) (question int, asked map[string]bool) {
	n := len(tokens)
	question = questionStart(n)
	asked = map[string]bool{}
	for end := max(question, gram-1); end < n; end++ {
		asked[runKey(tokens, end, gram)] = true
	}
	return question, asked
}

// questionStart is where the question window of an n-token prompt
// starts: its last EchoWindow tokens, within the protected tail.
func questionStart(n int) int { return n - min(EchoWindow, TailLen(n)) }

// ValidateEchoHops accepts 0 hops (off), or more with an echo (a run
// length of at least 2) to start the chains from.
func ValidateEchoHops(hops, echo int) error {
	switch {
	case hops < 0:
		return fmt.Errorf("sdtp: span echo hops %d must be 0 (off) or a number of links", hops)
	case hops > 0 && echo < 2:
		return fmt.Errorf("sdtp: span echo hops %d need a span echo (the question's runs start the chains); it is %d", hops, echo)
	}
	return nil
}

// Echo hops (ChainEchoes): which runs link two facts, and what counts as
// a fact.
const (
	// EchoHopGram is the run of tokens that links two sentences: a
	// variable's or an entity's name is 2–4 tokens.
	EchoHopGram = 3
	// EchoHopMaxCount: a run links sentences only when it occurs at most
	// this often in the prompt. A name is rare; "of the" is not.
	EchoHopMaxCount = 3
	// EchoHopMaxSentence: a sentence longer than this many tokens is
	// prose, not a fact, and is neither followed nor kept whole.
	EchoHopMaxSentence = 64
	// EchoHopMaxShare: the further links of a chain take at most
	// 1/EchoHopMaxShare of the prompt's tokens together; the hop that
	// would pass that is not taken, and the chain ends. A chain of facts
	// is short (Qwen's variable-tracking chains: at most 139 tokens of
	// 2048), while in prose an article's names recur from sentence to
	// sentence and a chain runs on to 800–1,000 tokens, pushing out what
	// the continuation needs (docs/HYBRID.md, "Echo hops").
	EchoHopMaxShare = 8
)

// ChainEchoes keeps the facts that the question leads to through other
// facts. The sentences that hold an echo (a run of gram tokens that also
// occurs in the prompt's last EchoWindow tokens, as in ShareEchoes) are
// the first link; each of up to hops further links is the sentences that
// share a rare run of EchoHopGram tokens (at most EchoHopMaxCount in the
// prompt: a name) with the link before. Every live token of a chained
// sentence gets at least the best score of the sentence it was reached
// from, so a chain of facts ("VAR B = VAR A." after "VAR A = 7.", a
// bridge entity between two HotpotQA paragraphs) survives whole where
// question attention finds only its first link (docs/HYBRID.md, "Echo
// hops"). Sentences end at tokens for which ends is true (EndsSentence;
// ends is per prompt token); only unprotected sentences of at most
// EchoHopMaxSentence tokens take part, and the chain ends before the hop
// that would take its further links past len(tokens)/EchoHopMaxShare
// tokens.
//
// tokens and ends are the whole prompt; positions (indices into tokens)
// and scores are parallel, in increasing position order; the result is
// new. hops < 1 or gram < 2 returns scores unchanged.
func ChainEchoes(tokens []int32, ends []bool, positions []int32, scores []float32, gram, hops int) []float32 {
	n := len(tokens)
	if hops < 1 || gram < 2 || len(ends) != n {
		return scores
	}
	sent, from, to := sentences(ends)
	// fact[s] if short and unprotected.
	fact := make([]bool, len(from))
	for s := range from {
		fact[s] = to[s]-from[s] < EchoHopMaxSentence && !Protected(from[s], n) && !Protected(to[s], n)
	}
	key := func(end, g int) string { return runKey(tokens, end, g) }
	// best[s]: the highest score among sentence s's live tokens.
	best := make([]float32, len(from))
	live := make([]bool, len(from))
	for i, p := range positions {
		if s := sent[p]; !live[s] || scores[i] > best[s] {
			best[s], live[s] = scores[i], true
		}
	}
	// The first link: facts holding a run of the question.
	question, asked := questionRuns(tokens, gram)
	link := map[int]float32{} // the chain's last link: sentence -> the score it takes
	for end := gram - 1; end < question; end++ {
		s := sent[end]
		if _, seen := link[s]; fact[s] && live[s] && end-gram+1 >= from[s] && !seen && asked[key(end, gram)] {
			link[s] = best[s]
		}
	}
	lent := maps.Clone(link) // every chained sentence
	// Further links through rare runs.
	g := EchoHopGram
	count := map[string]int{}
	for end := g - 1; end < n; end++ {
		count[key(end, g)]++
	}
	budget := n / EchoHopMaxShare
	for range hops {
		names := map[string]float32{}
		for s, lend := range link {
			for end := from[s] + g - 1; end <= to[s]; end++ {
				k := key(end, g)
				if v, ok := names[k]; count[k] <= EchoHopMaxCount && (!ok || lend > v) {
					names[k] = lend
				}
			}
		}
		next := map[int]float32{}
		var size int
		for end := g - 1; end < question; end++ {
			s := sent[end]
			v, named := names[key(end, g)]
			_, seen := lent[s]
			_, linked := next[s]
			if !named || seen || linked || !fact[s] || end-g+1 < from[s] {
				continue
			}
			next[s] = v
			size += to[s] - from[s] + 1
		}
		if len(next) == 0 || size > budget {
			break
		}
		budget -= size
		maps.Copy(lent, next)
		link = next
	}
	out := slices.Clone(scores)
	for i, p := range positions {
		if v, ok := lent[sent[p]]; ok && v > out[i] {
			out[i] = v
		}
	}
	return out
}

// EchoesFirst ranks every unprotected live token that ends an echo (a run
// of gram tokens that also occurs in the prompt's last EchoWindow tokens,
// as in ShareEchoes) above every token that ends none, keeping the order
// among echoes and among the rest: an echo's score is raised by the
// spread of all scores plus one. Question attention from a 0.5B model's
// early layers can rank a sentence that states the question's own words
// ("Hingle was a close friend of …") below filler at 4096 tokens, and
// then sharing the best copy's score does not save it: that copy is
// weak too (docs/HYBRID.md, "Whole sentences and echoes first"). With ChainEchoes,
// PoolSpans and PoolSentences the raise reaches the echo's sentence and
// what follows it.
//
// tokens is the whole prompt; positions (indices into tokens) and scores
// are parallel; the result is new. gram < 2 returns scores unchanged.
func EchoesFirst(tokens []int32, positions []int32, scores []float32, gram int) []float32 {
	if gram < 2 || len(scores) == 0 {
		return scores
	}
	n := len(tokens)
	_, asked := questionRuns(tokens, gram)
	lift := slices.Max(scores) - slices.Min(scores) + 1
	out := slices.Clone(scores)
	for i, p := range positions {
		if int(p) >= gram-1 && !Protected(int(p), n) && asked[runKey(tokens, int(p), gram)] {
			out[i] += lift
		}
	}
	return out
}

// PoolSentences keeps or drops each fact whole: every unprotected live
// token of a sentence of at most EchoHopMaxSentence tokens (sentences end
// where ends is true, EndsSentence) takes the best score among the
// sentence's unprotected live tokens. A cut that keeps 0.4 of a
// 4096-token QA prompt otherwise leaves pieces of many sentences, and a
// 0.5B instruct model answers from the pieces: of the five HotpotQA
// answers that Qwen2.5-Coder-0.5B-Instruct lost to pruning at 4096
// tokens, two had the answer's sentence cut in the middle and one the
// bridge sentence dropped (docs/HYBRID.md, "Whole sentences and echoes
// first"). Longer sentences are prose and keep their tokens' scores (the
// span kernel and trail apply to them).
//
// ends is per prompt token (len(ends) is the prompt's length); positions
// (indices into it) and scores are parallel, in increasing position
// order; the result is new. ends == nil returns scores unchanged.
func PoolSentences(ends []bool, positions []int32, scores []float32) []float32 {
	n := len(ends)
	if n == 0 {
		return scores
	}
	sent, from, to := sentences(ends)
	out := slices.Clone(scores)
	for i := 0; i < len(positions); {
		// Live tokens [i, j) of sentence s.
		s, j := sent[positions[i]], i+1
		for j < len(positions) && sent[positions[j]] == s {
			j++
		}
		if to[s]-from[s] < EchoHopMaxSentence {
			best, seen := float32(0), false
			for k := i; k < j; k++ {
				if !Protected(int(positions[k]), n) && (!seen || scores[k] > best) {
					best, seen = scores[k], true
				}
			}
			for k := i; k < j; k++ {
				if !Protected(int(positions[k]), n) {
					out[k] = best
				}
			}
		}
		i = j
	}
	return out
}

// AsksQuestion reports whether one of the prompt's last EchoWindow
// tokens (within the protected tail), where a question sits, holds a
// '?'. Whole sentences (Schedule.SpanSentences) apply only then: they
// keep the facts a question is answered from, but a continuation needs
// the single tokens the scorer picks across many sentences
// (Qwen2.5-Coder-0.5B-Instruct, 24 WikiText windows of 2048 tokens:
// perplexity 1.140 of dense with whole sentences everywhere, 1.077
// without; docs/HYBRID.md, "Whole sentences and echoes first").
//
// piece is a token's text (Runner.TokenPiece).
func AsksQuestion(piece func(int32) []byte, tokens []int32) bool {
	for _, t := range tokens[questionStart(len(tokens)):] {
		if bytes.ContainsRune(piece(t), '?') {
			return true
		}
	}
	return false
}

// sentences splits a prompt at its sentence ends (ends is per prompt
// token, EndsSentence): sentence s is the tokens [from[s], to[s]], and
// sent[t] is the sentence of token t.
func sentences(ends []bool) (sent, from, to []int) {
	sent = make([]int, len(ends))
	for t := range ends {
		if t == 0 || ends[t-1] {
			from = append(from, t)
			to = append(to, t)
		}
		s := len(from) - 1
		sent[t], to[s] = s, t
	}
	return sent, from, to
}
