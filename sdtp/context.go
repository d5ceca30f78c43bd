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
//     the prompt.
//
// Every feature is bounded, so prompts longer than the training ones stay
// in the range the predictor saw.
var ContextFeatures = []string{"in_tail", "prev_in_tail", "prev2_in_tail", "next_in_tail", "tail_share", "prompt_freq", "distance"}

// Context returns the ContextFeatures of the live tokens at positions pos
// of the prompt tokens, [len(pos)][len(ContextFeatures)] row-major.
func Context(tokens []int32, pos []int32) []float32 {
	n := len(tokens)
	k := len(ContextFeatures)
	out := make([]float32, len(pos)*k)
	if n == 0 {
		return out
	}
	tail := n - int(math.Ceil(TailKeepFrac*float64(n)))
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
	logN := math.Log(float64(max(n, 2)))
	for i, p32 := range pos {
		p := int(p32)
		f := out[i*k : (i+1)*k]
		f[0], f[1], f[2], f[3] = has(p), has(p-1), has(p-2), has(p+1)
		f[4] = float32(inTail[at(p)]) / float32(max(n-tail, 1))
		f[5] = float32(math.Log(float64(max(count[at(p)], 1))) / logN)
		f[6] = float32(max(tail-p, 0)) / float32(n)
	}
	return out
}
