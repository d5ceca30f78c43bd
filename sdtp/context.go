package sdtp

import "math"

// ContextFeatures names the per-token context features a predictor may
// read beside a token's hidden state, in column order. A token's stream at
// an early layer hardly shows whether the prompt's end will need it (its
// saliency is a property of the context), so these say how the token
// relates to the protected tail, which the final predictions read from:
//   - in_tail, prev_in_tail, prev2_in_tail, next_in_tail: whether the
//     token (or the one 1 or 2 before it, or the one after it) occurs in
//     the tail — earlier mentions of what the tail talks about, and what
//     followed them (what induction heads copy);
//   - tail_share: the token's share of the tail's tokens;
//   - prompt_freq: ln(count in the prompt) / ln(prompt length), in [0, 1];
//   - distance: how far before the tail the token is, as a fraction of
//     the prompt;
//   - near_tail_4, near_tail_16, near_tail_64: the share of the tokens
//     within 4, 16 or 64 positions of it that occur in the tail — whether
//     the passage is about what the tail is about;
//   - match, prev_match: the longest run of tokens (up to 6, as a fraction
//     of 6) ending at the token, or at the one before it, that also ends
//     somewhere in the tail — a passage the tail repeats, and what
//     followed it.
//
// Every feature is bounded, so prompts longer than the training ones stay
// in the range the predictor saw.
var ContextFeatures = []string{"in_tail", "prev_in_tail", "prev2_in_tail", "next_in_tail", "tail_share", "prompt_freq", "distance",
	"near_tail_4", "near_tail_16", "near_tail_64", "match", "prev_match"}

// maxMatch is the longest run the match features look for.
const maxMatch = 6

// Context returns the ContextFeatures of the live tokens at positions pos
// of the prompt tokens, [len(pos)][len(ContextFeatures)] row-major.
func Context(tokens []int32, pos []int32) []float32 {
	return contextRows(ContextTable(tokens), pos)
}

// contextRows gathers the rows of positions pos from a ContextTable.
func contextRows(table []float32, pos []int32) []float32 {
	k := len(ContextFeatures)
	out := make([]float32, 0, len(pos)*k)
	for _, p := range pos {
		out = append(out, table[int(p)*k:(int(p)+1)*k]...)
	}
	return out
}

// ContextTable returns the ContextFeatures of every position of the
// prompt, [len(tokens)][len(ContextFeatures)] row-major: computed once per
// prompt (about 1 ms for 4096 tokens), gathered per stage.
func ContextTable(tokens []int32) []float32 {
	n := len(tokens)
	k := len(ContextFeatures)
	out := make([]float32, n*k)
	if n == 0 {
		return out
	}
	tail := n - TailLen(n)
	inTail := map[int32]int{}
	for _, t := range tokens[tail:] {
		inTail[t]++
	}
	count := map[int32]int{}
	for _, t := range tokens {
		count[t]++
	}
	at := func(p int) int32 {
		if p < 0 || p >= n {
			return -1 // no token id is negative
		}
		return tokens[p]
	}
	has := func(p int) float32 {
		if inTail[at(p)] > 0 {
			return 1
		}
		return 0
	}
	// hits[i] counts the tokens before position i that occur in the tail.
	hits := make([]int, n+1)
	for i, t := range tokens {
		hits[i+1] = hits[i]
		if inTail[t] > 0 {
			hits[i+1]++
		}
	}
	near := func(p, w int) float32 {
		a, b := max(0, p-w), min(n, p+w+1)
		return float32(hits[b]-hits[a]) / float32(b-a)
	}
	match := tailMatches(tokens, tail)
	matchAt := func(p int) float32 {
		if p < 0 {
			return 0
		}
		return float32(match[p]) / maxMatch
	}
	logN := math.Log(float64(max(n, 2)))
	for p := range n {
		f := out[p*k : (p+1)*k]
		f[0], f[1], f[2], f[3] = has(p), has(p-1), has(p-2), has(p+1)
		f[4] = float32(inTail[at(p)]) / float32(max(n-tail, 1))
		f[5] = float32(math.Log(float64(max(count[at(p)], 1))) / logN)
		f[6] = float32(max(tail-p, 0)) / float32(n)
		f[7], f[8], f[9] = near(p, 4), near(p, 16), near(p, 64)
		f[10], f[11] = matchAt(p), matchAt(p-1)
	}
	return out
}

// tailMatches returns, per position p, the longest run of tokens (at most
// maxMatch) ending at p that also ends at some other position q >= tail.
func tailMatches(tokens []int32, tail int) []int {
	n := len(tokens)
	// ends[l] counts the l-token runs that end inside the tail, by hash.
	ends := make([]map[uint64]int, maxMatch+1)
	hash := func(p, l int) uint64 {
		h := uint64(14695981039346656037) // FNV-1a
		for _, t := range tokens[p-l+1 : p+1] {
			h = (h ^ uint64(uint32(t))) * 1099511628211
		}
		return h
	}
	for l := 1; l <= maxMatch; l++ {
		ends[l] = map[uint64]int{}
		for q := max(tail, l-1); q < n; q++ {
			ends[l][hash(q, l)]++
		}
	}
	out := make([]int, n)
	for p := range n {
		self := 0 // a run ending at p inside the tail counts p itself
		if p >= tail {
			self = 1
		}
		for l := 1; l <= maxMatch && l <= p+1 && ends[l][hash(p, l)] > self; l++ {
			out[p] = l
		}
	}
	return out
}
