package numeric

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestArgmaxAndMaxAbsDiff(t *testing.T) {
	assert.Equal(t, 2, Argmax([]float32{1, 3, 5, 5}))
	assert.Equal(t, 0, Argmax([]float32{7}))
	assert.Equal(t, 2.5, MaxAbsDiff([]float32{1, 2, 3}, []float32{1, -0.5, 3}))
	assert.True(t, math.IsNaN(MaxAbsDiff([]float32{float32(math.NaN())}, []float32{0})))
}
