package gguf

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestF16RoundTripAllHalves(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := F16ToFloat32(uint16(h))
		if math.IsNaN(float64(f)) {
			require.True(t, math.IsNaN(float64(F16ToFloat32(Float32ToF16(f)))))
			continue
		}
		require.Equal(t, uint16(h), Float32ToF16(f), "half 0x%04x -> %g", h, f)
	}
}

func TestF16KnownValues(t *testing.T) {
	for f, h := range map[float32]uint16{
		0: 0, 1: 0x3c00, -2: 0xc000, 65504: 0x7bff, 0.5: 0x3800,
		float32(math.Pow(2, -24)): 0x0001, // smallest subnormal
		float32(math.Pow(2, -14)): 0x0400, // smallest normal
		65520:                     0x7c00, // rounds to +Inf
		1e10:                      0x7c00,
		float32(math.Pow(2, -26)): 0, // below half the smallest subnormal
	} {
		assert.Equal(t, h, Float32ToF16(f), "%g", f)
	}
	assert.Equal(t, uint16(0x8000), Float32ToF16(float32(math.Copysign(0, -1))))
	assert.Equal(t, uint16(0xfc00), Float32ToF16(float32(math.Inf(-1))))
	assert.True(t, math.IsNaN(float64(F16ToFloat32(Float32ToF16(float32(math.NaN()))))))
}

// TestF16RoundingMatchesOracle compares with nearest-even rounding computed
// by brute force over neighbouring halves.
func TestF16RoundingMatchesOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000; i++ {
		var f float32
		if i%2 == 0 {
			f = math.Float32frombits(r.Uint32())
		} else {
			f = float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(40)-30)))
		}
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) || math.Abs(float64(f)) >= 65520 {
			continue
		}
		h := Float32ToF16(f)
		got := float64(F16ToFloat32(h))
		for _, n := range []uint16{h - 1, h + 1} {
			if n&0x7c00 == 0x7c00 || (n^h)&0x8000 != 0 {
				continue
			}
			other := float64(F16ToFloat32(n))
			dg, do := math.Abs(got-float64(f)), math.Abs(other-float64(f))
			require.True(t, dg < do || (dg == do && h&1 == 0), "f=%g h=%#04x (%g) neighbour %#04x (%g)", f, h, got, n, other)
		}
	}
}

func TestBF16(t *testing.T) {
	assert.Equal(t, uint16(0x3f80), Float32ToBF16(1))
	assert.Equal(t, float32(1), BF16ToFloat32(0x3f80))
	// 1 + 2^-8 is a tie between 1 and 1+2^-7: rounds to even (1).
	assert.Equal(t, uint16(0x3f80), Float32ToBF16(1+1.0/256))
	assert.Equal(t, uint16(0x3f81), Float32ToBF16(1+3.0/512))
	assert.True(t, math.IsNaN(float64(BF16ToFloat32(Float32ToBF16(float32(math.NaN()))))))
	in := []float32{1, -2.5, 0.125}
	assert.Equal(t, in, DecodeBF16(EncodeBF16(in)))
	assert.Equal(t, in, DecodeF16(EncodeF16(in)))
	assert.Equal(t, in, DecodeF32(EncodeF32(in)))
}

// Q8_0 keeps integer blocks whose largest magnitude is 127 exactly (d = 1),
// an all-zero block as zeros, and any block within half a step d of its
// values, plus what storing d in F16 adds (up to 127·2⁻¹¹·d).
func TestQ8_0(t *testing.T) {
	ints := make([]float32, Q8_0Block)
	for i := range ints {
		ints[i] = float32(i*8 - 127 + i%3)
	}
	ints[5] = 127
	zeros := make([]float32, Q8_0Block)
	rng := rand.New(rand.NewPCG(3, 4))
	noise := make([]float32, 4*Q8_0Block)
	for i := range noise {
		noise[i] = float32(rng.NormFloat64() * 0.05)
	}
	for name, v := range map[string][]float32{"integers": ints, "zeros": zeros, "noise": noise} {
		b, err := EncodeQ8_0(v)
		require.NoError(t, err, name)
		require.Len(t, b, len(v)/Q8_0Block*34, name)
		got := DecodeQ8_0(b)
		require.Len(t, got, len(v), name)
		for blk := 0; blk < len(v); blk += Q8_0Block {
			amax := 0.0
			for _, x := range v[blk : blk+Q8_0Block] {
				amax = math.Max(amax, math.Abs(float64(x)))
			}
			step := float64(F16ToFloat32(Float32ToF16(float32(amax / 127))))
			for i := blk; i < blk+Q8_0Block; i++ {
				assert.InDelta(t, v[i], got[i], step*(0.5+127.0/2048)+1e-7, "%s[%d]", name, i)
			}
		}
	}
	assert.Equal(t, ints, DecodeQ8_0(must(EncodeQ8_0(ints))))
	_, err := EncodeQ8_0(make([]float32, Q8_0Block+1))
	assert.ErrorContains(t, err, "multiple of 32")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
