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
	//            in_tail prev prev2 next share freq distance
	want := [][]float64{
		{0, 0, 0, 0, 0, 0, 18.0 / 20},                    // 1: nothing before it
		{1, 0, 0, 0, 0.5, math.Log(4) / ln20, 16.0 / 20}, // 7: 4 in the prompt, 1 of 2 in the tail
		{0, 1, 0, 0, 0, 0, 15.0 / 20},                    // 3: follows a 7
		{0, 1, 0, 1, 0, 0, 10.0 / 20},                    // 8: between a 9 and a 7
		{0, 1, 1, 0, 0, 0, 7.0 / 20},                     // 10: after 7, 7
		{1, 1, 0, 0, 0.5, math.Log(2) / ln20, 0},         // the tail's 9: nothing after it, no distance
	}
	for i, row := range want {
		for j, v := range row {
			assert.InDelta(t, v, got[i*k+j], 1e-6, "position %d, %s", pos[i], ContextFeatures[j])
		}
	}
	assert.Empty(t, Context(nil, nil))
}
