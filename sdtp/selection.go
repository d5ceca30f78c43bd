package sdtp

import (
	"fmt"
	"math"
	"slices"
)

// Tokens that are never pruned: the first HeadKeep (attention sinks) and
// the last TailKeepFrac of the prompt (the local window).
const (
	HeadKeep     = 4
	TailKeepFrac = 0.10
)

// TailLen is the number of tokens at the end of an nPrompt-token prompt
// that are always kept.
func TailLen(nPrompt int) int { return int(math.Ceil(TailKeepFrac * float64(nPrompt))) }

// Protected reports whether the token at original position pos of an
// nPrompt-token prompt is always kept.
func Protected(pos, nPrompt int) bool {
	return pos < HeadKeep || pos >= nPrompt-TailLen(nPrompt)
}

// Select returns the indices (ascending) of the live tokens that survive a
// stage with keep ratio r. positions are the live tokens' original
// positions, scores their scores (higher = more important). The kept count
// is ceil(r · live), never fewer than the protected tokens; the rest of the
// budget goes to the highest-scoring unprotected tokens, ties to the
// earlier position.
func Select(positions []int32, scores []float32, nPrompt int, r float64) ([]int, error) {
	if len(positions) != len(scores) {
		return nil, fmt.Errorf("sdtp: %d positions but %d scores", len(positions), len(scores))
	}
	if !(r > 0 && r <= 1) {
		return nil, fmt.Errorf("sdtp: keep ratio %v must be in (0, 1]", r)
	}
	var keep, rivals []int
	for i, p := range positions {
		if Protected(int(p), nPrompt) {
			keep = append(keep, i)
		} else {
			if math.IsNaN(float64(scores[i])) {
				return nil, fmt.Errorf("sdtp: score of token at position %d is NaN", p)
			}
			rivals = append(rivals, i)
		}
	}
	budget := int(math.Ceil(r*float64(len(positions)))) - len(keep)
	budget = min(max(budget, 0), len(rivals))
	slices.SortStableFunc(rivals, func(a, b int) int {
		switch {
		case scores[a] > scores[b]:
			return -1
		case scores[a] < scores[b]:
			return 1
		}
		return int(positions[a] - positions[b])
	})
	keep = append(keep, rivals[:budget]...)
	slices.Sort(keep)
	return keep, nil
}
