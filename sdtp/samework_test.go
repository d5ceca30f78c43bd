package sdtp

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWorkOfTheDocumentedSchedules(t *testing.T) {
	def, err := DefaultSchedule(18, 0.9)
	require.NoError(t, err)
	assert.InDelta(t, 0.641, def.Work(18), 5e-4, "docs/SCHEDULES.md, probe 1")
	assert.InDelta(t, 0.639, Uniform([]int{6, 12}, 0.58).Work(18), 5e-4)
	assert.InDelta(t, 0.640, Uniform([]int{6}, 0.46).Work(18), 5e-4)
	assert.Equal(t, 1.0, Schedule{}.Work(18), "no pruning, all the work")
	qwen, err := DefaultSchedule(24, 0.9)
	require.NoError(t, err)
	assert.InDelta(t, 0.649, qwen.Work(24), 5e-4, "Qwen2.5 0.5B, docs/SCHEDULES.md")
}

func TestSameWorkSchedules(t *testing.T) {
	def, err := DefaultSchedule(18, 0.9)
	require.NoError(t, err)
	same, err := SameWork(def, 18, def.Layers, 0)
	require.NoError(t, err)
	for _, r := range same.KeepRatios {
		assert.InDelta(t, 0.9, r, 1e-6, "tilt 0 over the same layers is the reference")
	}

	tilted, err := SameWork(def, 18, def.Layers, 0.5)
	require.NoError(t, err)
	assert.InDelta(t, def.Work(18), tilted.Work(18), 1e-6)
	for i := 1; i < len(tilted.KeepRatios); i++ {
		assert.Less(t, tilted.KeepRatios[i], tilted.KeepRatios[i-1], "each stage prunes harder than the one before")
	}
	assert.Greater(t, tilted.KeepRatios[0], 0.9, "less pruning early")
	first, last := tilted.KeepRatios[0], tilted.KeepRatios[len(tilted.KeepRatios)-1]
	assert.InDelta(t, 3, logRatio(last)/logRatio(first), 1e-9, "tilt 0.5: the last stage prunes 3× as hard (log keep)")

	late, err := SameWork(def, 18, []int{9, 10, 12, 14, 15, 17}, 0)
	require.NoError(t, err)
	assert.InDelta(t, def.Work(18), late.Work(18), 1e-6)
	assert.Less(t, late.KeepRatios[0], 0.9, "starting later, each stage prunes harder")
	require.NoError(t, late.Validate(18))

	_, err = SameWork(def, 18, []int{12, 15}, 0)
	assert.ErrorContains(t, err, "from layer 12 leaves at least 0.667", "too late to reach the work")
	_, err = SameWork(def, 18, def.Layers, 1)
	assert.ErrorContains(t, err, "tilt 1")
	_, err = SameWork(def, 18, []int{4, 3}, 0)
	assert.ErrorContains(t, err, "strictly increasing")
}

func logRatio(r float64) float64 { return -math.Log(r) }
