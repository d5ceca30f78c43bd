package sdtp

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefaultScheduleMatchesPaperAt32Layers(t *testing.T) {
	s, err := DefaultSchedule(32, DefaultKeepRatio)
	require.NoError(t, err)
	assert.Equal(t, []int{4, 7, 10, 13, 16, 19, 22, 25, 28, 31}, s.Layers)
	c := s.Cumulative()
	assert.InDelta(t, 0.3487, c[len(c)-1], 1e-4, "0.9^10")
}

func TestDefaultScheduleScalesWithDepth(t *testing.T) {
	for depth, want := range map[int][]int{
		18: {2, 4, 5, 7, 9, 10, 12, 14, 15, 17},
		24: {3, 5, 7, 10, 12, 14, 16, 19, 21, 23},
		28: {4, 7, 9, 12, 14, 17, 19, 22, 24, 27},
		4:  {1, 2, 3},
	} {
		s, err := DefaultSchedule(depth, 0.9)
		require.NoError(t, err, depth)
		assert.Equal(t, want, s.Layers, "depth %d", depth)
		require.NoError(t, s.Validate(depth))
	}
	_, err := DefaultSchedule(1, 0.9)
	assert.Error(t, err)
}

func TestScheduleValidation(t *testing.T) {
	for name, s := range map[string]Schedule{
		"empty":      {},
		"mismatch":   {Layers: []int{2, 3}, KeepRatios: []float64{0.9}},
		"layer 0":    {Layers: []int{0}, KeepRatios: []float64{0.9}},
		"too deep":   {Layers: []int{18}, KeepRatios: []float64{0.9}},
		"unsorted":   {Layers: []int{5, 3}, KeepRatios: []float64{0.9, 0.9}},
		"duplicate":  {Layers: []int{3, 3}, KeepRatios: []float64{0.9, 0.9}},
		"zero ratio": {Layers: []int{3}, KeepRatios: []float64{0}},
		"ratio > 1":  {Layers: []int{3}, KeepRatios: []float64{1.5}},
		"negative":   {Layers: []int{3}, KeepRatios: []float64{-0.5}},
	} {
		assert.Error(t, s.Validate(18), name)
	}
	s, err := ParseSchedule("2, 5,9", "0.8")
	require.NoError(t, err)
	assert.Equal(t, Schedule{Layers: []int{2, 5, 9}, KeepRatios: []float64{0.8, 0.8, 0.8}}, s)
	_, err = ParseSchedule("2,x", "0.8")
	assert.Error(t, err)
	_, err = ParseSchedule("2", "nope")
	assert.Error(t, err)
}

func TestSelectKeepsProtectedAndTopScores(t *testing.T) {
	const n = 40 // tail = last 4 positions (36..39)
	positions := make([]int32, n)
	scores := make([]float32, n)
	for i := range positions {
		positions[i] = int32(i)
		scores[i] = float32(i % 7)
	}
	scores[0], scores[37] = -100, -100 // protected regardless of score
	keep, err := Select(positions, scores, n, 0.5)
	require.NoError(t, err)
	assert.Len(t, keep, 20)
	assert.Subset(t, keep, []int{0, 1, 2, 3, 36, 37, 38, 39})
	// The 12 unprotected survivors: all five 6s, all five 5s, and the two
	// earliest 4s (ties go to the earlier position).
	var middle []int
	for _, i := range keep {
		if i >= 4 && i < 36 {
			middle = append(middle, i)
		}
	}
	assert.ElementsMatch(t, []int{6, 13, 20, 27, 34, 5, 12, 19, 26, 33, 4, 11}, middle)
	assert.IsIncreasing(t, keep)
}

func TestSelectOnAlreadyPrunedTokens(t *testing.T) {
	// Positions are original positions: protection follows them, not the
	// index in the live list.
	positions := []int32{0, 1, 2, 3, 10, 50, 60, 95, 99}
	scores := []float32{0, 0, 0, 0, 5, 1, 9, 0, 0}
	keep, err := Select(positions, scores, 100, 0.8)
	require.NoError(t, err)
	// ceil(0.8*9) = 8: 4 head + 95 and 99 (tail ≥ 90) + the 2 best of {10, 50, 60}.
	assert.Equal(t, []int{0, 1, 2, 3, 4, 6, 7, 8}, keep)

	all, err := Select(positions, scores, 100, 1)
	require.NoError(t, err)
	assert.Len(t, all, len(positions))

	_, err = Select(positions, scores[:3], 100, 0.5)
	assert.Error(t, err)
	_, err = Select(positions, scores, 100, 0)
	assert.Error(t, err)
	scores[5] = float32(math.NaN())
	_, err = Select(positions, scores, 100, 0.5)
	assert.Error(t, err)
}

func TestMaxPoolWidensPeaks(t *testing.T) {
	assert.Equal(t, []float32{0, 0, 5, 5, 5, 5, 5, 1, 1}, maxPool([]float32{0, 0, 0, 0, 5, 0, 0, 0, 1}, 5))
	assert.Equal(t, []float32{2, 2}, maxPool([]float32{2, 1}, 7), "windows are cut at the ends")
}

// Learned predictors can prune at a subset of their stage layers, at the
// ratios they were trained with; any other layer is refused, naming theirs.
func TestScheduleSubset(t *testing.T) {
	trained := Schedule{Layers: []int{2, 4, 5, 7, 9}, KeepRatios: []float64{0.9, 0.8, 0.9, 0.7, 0.9}}
	s, err := trained.Subset([]int{4, 9})
	require.NoError(t, err)
	assert.Equal(t, Schedule{Layers: []int{4, 9}, KeepRatios: []float64{0.8, 0.9}}, s)
	_, err = trained.Subset([]int{3})
	assert.EqualError(t, err, "sdtp: pruning layer 3 has no learned predictor: the predictors cover layers [2 4 5 7 9]")
	_, err = trained.Subset([]int{9, 4})
	assert.ErrorContains(t, err, "strictly increasing")
	_, err = trained.Subset([]int{})
	assert.ErrorContains(t, err, "no pruning layers")
}
