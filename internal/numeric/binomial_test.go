package numeric

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWilsonKnownValues(t *testing.T) {
	// Reference values of the 95% Wilson score interval (z = 1.95996).
	for _, c := range []struct {
		k, n   int
		lo, hi float64
	}{
		{0, 10, 0, 0.277533},
		{5, 10, 0.236593, 0.763407},
		{10, 10, 0.722467, 1},
		{81, 100, 0.722212, 0.874852},
		{1, 24, 0.007393, 0.202418},
		{14, 100, 0.085263, 0.221372},
	} {
		lo, hi := Wilson(c.k, c.n)
		assert.InDelta(t, c.lo, lo, 1e-6, "%d/%d", c.k, c.n)
		assert.InDelta(t, c.hi, hi, 1e-6, "%d/%d", c.k, c.n)
	}
	lo, hi := Wilson(0, 0)
	assert.Equal(t, [2]float64{0, 1}, [2]float64{lo, hi}, "no trials: nothing known")
}

func TestPaired(t *testing.T) {
	dense := []bool{true, true, false, false, true}
	mode := []bool{true, false, true, false, false}
	refOnly, modeOnly, err := Paired(dense, mode)
	require.NoError(t, err)
	assert.Equal(t, 2, refOnly)
	assert.Equal(t, 1, modeOnly)
	_, _, err = Paired(dense, mode[:2])
	assert.Error(t, err)
}
