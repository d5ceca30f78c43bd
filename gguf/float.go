package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Float32ToF16 converts f to IEEE 754 binary16 bits, rounding to nearest
// even. Overflow gives ±Inf, NaN stays NaN (quiet), tiny values become
// subnormals or ±0.
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff

	if exp == 0xff { // Inf / NaN
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Result is subnormal (or rounds up to the smallest normal).
		if e < -10 {
			return sign // below half the smallest subnormal
		}
		m := mant | 0x800000
		shift := uint32(14 - e) // 14..24
		r := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++ // may carry into the exponent, up to Inf: correct
	}
	return sign | uint16(r)
}

// F16ToFloat32 converts IEEE 754 binary16 bits to float32 (exactly).
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Float32ToBF16 converts f to bfloat16 bits, rounding to nearest even.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep it a quiet NaN
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// BF16ToFloat32 converts bfloat16 bits to float32 (exactly).
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// EncodeF32 returns the little-endian bytes of s (GGML F32 tensor data).
func EncodeF32(s []float32) []byte {
	b := make([]byte, 4*len(s))
	for i, v := range s {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// EncodeF16 converts s to F16 and returns the little-endian bytes.
func EncodeF16(s []float32) []byte {
	b := make([]byte, 2*len(s))
	for i, v := range s {
		binary.LittleEndian.PutUint16(b[2*i:], Float32ToF16(v))
	}
	return b
}

// EncodeBF16 converts s to BF16 and returns the little-endian bytes.
func EncodeBF16(s []float32) []byte {
	b := make([]byte, 2*len(s))
	for i, v := range s {
		binary.LittleEndian.PutUint16(b[2*i:], Float32ToBF16(v))
	}
	return b
}

// Q8_0Block is the number of values in one Q8_0 block: an F16 scale d
// followed by 32 int8 quants q, each value being d·q (ggml's block_q8_0).
const Q8_0Block = 32

// EncodeQ8_0 quantizes s to Q8_0 as ggml's reference quantizer does (d =
// max|x|/127, q = round(x/d)) and returns the bytes, 34 per block.
// Errors: len(s) is not a multiple of Q8_0Block.
func EncodeQ8_0(s []float32) ([]byte, error) {
	if len(s)%Q8_0Block != 0 {
		return nil, fmt.Errorf("gguf: Q8_0 needs a multiple of %d values, got %d", Q8_0Block, len(s))
	}
	b := make([]byte, 0, len(s)/Q8_0Block*(2+Q8_0Block))
	for blk := s; len(blk) > 0; blk = blk[Q8_0Block:] {
		amax := float32(0)
		for _, v := range blk[:Q8_0Block] {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		b = binary.LittleEndian.AppendUint16(b, Float32ToF16(d))
		for _, v := range blk[:Q8_0Block] {
			b = append(b, byte(int8(math.Round(float64(v*id)))))
		}
	}
	return b, nil
}

// DecodeQ8_0 dequantizes Q8_0 data (whole blocks; a trailing partial
// block is ignored) to float32.
func DecodeQ8_0(b []byte) []float32 {
	const size = 2 + Q8_0Block
	out := make([]float32, 0, len(b)/size*Q8_0Block)
	for ; len(b) >= size; b = b[size:] {
		d := F16ToFloat32(binary.LittleEndian.Uint16(b))
		for _, q := range b[2:size] {
			out = append(out, d*float32(int8(q)))
		}
	}
	return out
}

// DecodeF32 decodes little-endian F32 data (a trailing partial element is ignored).
func DecodeF32(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// DecodeF16 decodes little-endian F16 data to float32.
func DecodeF16(b []byte) []float32 {
	out := make([]float32, len(b)/2)
	for i := range out {
		out[i] = F16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return out
}

// DecodeBF16 decodes little-endian BF16 data to float32.
func DecodeBF16(b []byte) []float32 {
	out := make([]float32, len(b)/2)
	for i := range out {
		out[i] = BF16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return out
}
