package sdtp

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestContextFeatures(t *testing.T) {
	// 20 tokens: the protected tail is the last 2, ids 7 and 9.
	tokens := []int32{1, 2, 7, 3, 4, 5, 6, 9, 8, 7, 7, 10, 11, 12, 13, 14, 15, 16, 7, 9}
	pos := []int32{0, 2, 3, 8, 11, 19}
	got := Context(tokens, pos)
	k := len(ContextFeatures)
	assert.Len(t, got, len(pos)*k)
	ln20 := math.Log(20)
	// in_tail prev prev2 next share freq distance near_4 near_16 near_64 match prev_match
	want := [][]float64{
		{0, 0, 0, 0, 0, 0, 18.0 / 20, 1.0 / 5, 4.0 / 17, 6.0 / 20, 0, 0},                          // 1: nothing before it
		{1, 0, 0, 0, 0.5, math.Log(4) / ln20, 16.0 / 20, 1.0 / 7, 5.0 / 19, 6.0 / 20, 1.0 / 6, 0}, // 7: 4 in the prompt, 1 of 2 in the tail
		{0, 1, 0, 0, 0, 0, 15.0 / 20, 2.0 / 8, 6.0 / 20, 6.0 / 20, 0, 1.0 / 6},                    // 3: follows a 7
		{0, 1, 0, 1, 0, 0, 10.0 / 20, 3.0 / 9, 6.0 / 20, 6.0 / 20, 0, 1.0 / 6},                    // 8: between a 9 and a 7
		{0, 1, 1, 0, 0, 0, 7.0 / 20, 3.0 / 9, 6.0 / 20, 6.0 / 20, 0, 1.0 / 6},                     // 10: after 7, 7
		// The tail's 9: nothing after it, no distance, and no run that ends
		// elsewhere in the tail (the 9 at 7 is before it).
		{1, 1, 0, 0, 0.5, math.Log(2) / ln20, 0, 2.0 / 5, 5.0 / 17, 6.0 / 20, 0, 0},
	}
	for i, row := range want {
		for j, v := range row {
			assert.InDelta(t, v, got[i*k+j], 1e-6, "position %d, %s", pos[i], ContextFeatures[j])
		}
	}
	assert.Empty(t, Context(nil, nil))
}

func TestTailMatches(t *testing.T) {
	// The tail (positions 8–10) is "5 6 7": the earlier "5 6 7" ends runs
	// of 1, 2 and 3 tokens that it repeats, "5 6" at 6–7 runs of 1 and 2
	// (the run "3 5 6" is not in the tail); the tail's own tokens have no
	// run that ends elsewhere in the tail.
	tokens := []int32{1, 5, 6, 7, 2, 3, 5, 6, 5, 6, 7}
	assert.Equal(t, []int{0, 1, 2, 3, 0, 0, 1, 2, 0, 0, 0}, tailMatches(tokens, 8))
}
