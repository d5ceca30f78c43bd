package numeric

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPerplexityRatio(t *testing.T) {
	ref := []float64{2.0, 3.0, 2.5, 4.0}
	mode := []float64{2.1, 3.0, 2.7, 4.1} // differences 0.1, 0, 0.2, 0.1
	ratio, lo, hi, err := PerplexityRatio(ref, mode)
	require.NoError(t, err)
	// mean 0.1, sd sqrt(0.02/3), t(0.975, 3) = 3.182446.
	half := 3.182446 * math.Sqrt(0.02/3) / 2
	assert.InDelta(t, math.Exp(0.1), ratio, 1e-12)
	assert.InDelta(t, math.Exp(0.1-half), lo, 1e-6)
	assert.InDelta(t, math.Exp(0.1+half), hi, 1e-6)
	pooled := math.Exp((2.1+3.0+2.7+4.1)/4) / math.Exp((2.0+3.0+2.5+4.0)/4)
	assert.InDelta(t, pooled, ratio, 1e-12, "the ratio of the pooled perplexities")

	ratio, lo, hi, err = PerplexityRatio(ref[:1], mode[:1])
	require.NoError(t, err)
	assert.InDelta(t, math.Exp(0.1), ratio, 1e-12)
	assert.True(t, math.IsNaN(lo) && math.IsNaN(hi), "one window: no interval")
	_, _, _, err = PerplexityRatio(ref, mode[:2])
	assert.Error(t, err)
	_, _, _, err = PerplexityRatio(nil, nil)
	assert.Error(t, err)
}
