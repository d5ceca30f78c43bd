package gguf

import (
	"fmt"
	"math/bits"
	"strings"
)

// GGMLType is a ggml tensor element type (enum ggml_type). The numeric values
// are part of the file format.
type GGMLType uint32

// ggml tensor types. Gaps (4, 5, 31-33, 36-38) are types that were removed
// from ggml and are rejected.
const (
	GGMLTypeF32     GGMLType = 0
	GGMLTypeF16     GGMLType = 1
	GGMLTypeQ4_0    GGMLType = 2
	GGMLTypeQ4_1    GGMLType = 3
	GGMLTypeQ5_0    GGMLType = 6
	GGMLTypeQ5_1    GGMLType = 7
	GGMLTypeQ8_0    GGMLType = 8
	GGMLTypeQ8_1    GGMLType = 9
	GGMLTypeQ2_K    GGMLType = 10
	GGMLTypeQ3_K    GGMLType = 11
	GGMLTypeQ4_K    GGMLType = 12
	GGMLTypeQ5_K    GGMLType = 13
	GGMLTypeQ6_K    GGMLType = 14
	GGMLTypeQ8_K    GGMLType = 15
	GGMLTypeIQ2_XXS GGMLType = 16
	GGMLTypeIQ2_XS  GGMLType = 17
	GGMLTypeIQ3_XXS GGMLType = 18
	GGMLTypeIQ1_S   GGMLType = 19
	GGMLTypeIQ4_NL  GGMLType = 20
	GGMLTypeIQ3_S   GGMLType = 21
	GGMLTypeIQ2_S   GGMLType = 22
	GGMLTypeIQ4_XS  GGMLType = 23
	GGMLTypeI8      GGMLType = 24
	GGMLTypeI16     GGMLType = 25
	GGMLTypeI32     GGMLType = 26
	GGMLTypeI64     GGMLType = 27
	GGMLTypeF64     GGMLType = 28
	GGMLTypeIQ1_M   GGMLType = 29
	GGMLTypeBF16    GGMLType = 30
	GGMLTypeTQ1_0   GGMLType = 34
	GGMLTypeTQ2_0   GGMLType = 35
	GGMLTypeMXFP4   GGMLType = 39

	ggmlTypeCount = 40
)

// TypeTraits describes the storage layout of a ggml type: BlockSize elements
// are stored in TypeSize bytes. Values match ggml.c's type_traits table.
type TypeTraits struct {
	Name      string
	BlockSize uint64
	TypeSize  uint64
	Quantized bool
}

// Block sizes / block byte sizes are those of ggml-common.h
// (QK4_0 = 32, QK_K = 256, sizeof(block_q4_0) = 18, ...).
var typeTraits = [ggmlTypeCount]TypeTraits{
	GGMLTypeF32:     {"f32", 1, 4, false},
	GGMLTypeF16:     {"f16", 1, 2, false},
	GGMLTypeQ4_0:    {"q4_0", 32, 18, true},
	GGMLTypeQ4_1:    {"q4_1", 32, 20, true},
	GGMLTypeQ5_0:    {"q5_0", 32, 22, true},
	GGMLTypeQ5_1:    {"q5_1", 32, 24, true},
	GGMLTypeQ8_0:    {"q8_0", 32, 34, true},
	GGMLTypeQ8_1:    {"q8_1", 32, 36, true},
	GGMLTypeQ2_K:    {"q2_K", 256, 84, true},
	GGMLTypeQ3_K:    {"q3_K", 256, 110, true},
	GGMLTypeQ4_K:    {"q4_K", 256, 144, true},
	GGMLTypeQ5_K:    {"q5_K", 256, 176, true},
	GGMLTypeQ6_K:    {"q6_K", 256, 210, true},
	GGMLTypeQ8_K:    {"q8_K", 256, 292, true},
	GGMLTypeIQ2_XXS: {"iq2_xxs", 256, 66, true},
	GGMLTypeIQ2_XS:  {"iq2_xs", 256, 74, true},
	GGMLTypeIQ3_XXS: {"iq3_xxs", 256, 98, true},
	GGMLTypeIQ1_S:   {"iq1_s", 256, 50, true},
	GGMLTypeIQ4_NL:  {"iq4_nl", 32, 18, true},
	GGMLTypeIQ3_S:   {"iq3_s", 256, 110, true},
	GGMLTypeIQ2_S:   {"iq2_s", 256, 82, true},
	GGMLTypeIQ4_XS:  {"iq4_xs", 256, 136, true},
	GGMLTypeI8:      {"i8", 1, 1, false},
	GGMLTypeI16:     {"i16", 1, 2, false},
	GGMLTypeI32:     {"i32", 1, 4, false},
	GGMLTypeI64:     {"i64", 1, 8, false},
	GGMLTypeF64:     {"f64", 1, 8, false},
	GGMLTypeIQ1_M:   {"iq1_m", 256, 56, true},
	GGMLTypeBF16:    {"bf16", 1, 2, false},
	GGMLTypeTQ1_0:   {"tq1_0", 256, 54, true},
	GGMLTypeTQ2_0:   {"tq2_0", 256, 66, true},
	GGMLTypeMXFP4:   {"mxfp4", 32, 17, true},
}

// Traits returns the layout of t; ok is false for unknown or removed types.
func (t GGMLType) Traits() (tt TypeTraits, ok bool) {
	if t >= ggmlTypeCount || typeTraits[t].BlockSize == 0 {
		return TypeTraits{}, false
	}
	return typeTraits[t], true
}

// Valid reports whether t is a known ggml type usable in GGUF files.
func (t GGMLType) Valid() bool {
	_, ok := t.Traits()
	return ok
}

// String returns ggml's name for the type ("f32", "q4_K", ...).
func (t GGMLType) String() string {
	if tt, ok := t.Traits(); ok {
		return tt.Name
	}
	return fmt.Sprintf("GGMLType(%d)", uint32(t))
}

// BlockSize returns the number of elements per block (0 if unknown).
func (t GGMLType) BlockSize() uint64 { tt, _ := t.Traits(); return tt.BlockSize }

// TypeSize returns the number of bytes per block (0 if unknown).
func (t GGMLType) TypeSize() uint64 { tt, _ := t.Traits(); return tt.TypeSize }

// IsQuantized reports whether t is a block-quantized type.
func (t GGMLType) IsQuantized() bool { tt, _ := t.Traits(); return tt.Quantized }

// ParseGGMLType looks a type up by its ggml name (case-insensitive).
func ParseGGMLType(name string) (GGMLType, error) {
	for i, tt := range typeTraits {
		if tt.BlockSize != 0 && strings.EqualFold(tt.Name, name) {
			return GGMLType(i), nil
		}
	}
	return 0, fmt.Errorf("gguf: unknown ggml type %q", name)
}

// MaxDims is the maximum number of tensor dimensions (GGML_MAX_DIMS).
const MaxDims = 4

// TensorSize returns the number of elements and bytes of a tensor of type t
// with the given dimensions (dims[0] is the innermost, contiguous one, as in
// ggml's ne[]). It checks that the type is known, there are at most MaxDims
// dimensions, every dimension is > 0, dims[0] is a multiple of the block
// size, and that neither count overflows int64.
func TensorSize(t GGMLType, dims []uint64) (elems, nbytes uint64, err error) {
	tt, ok := t.Traits()
	if !ok {
		return 0, 0, fmt.Errorf("unknown ggml type %d", uint32(t))
	}
	if len(dims) > MaxDims {
		return 0, 0, fmt.Errorf("%d dimensions, max %d", len(dims), MaxDims)
	}
	elems = 1
	for i, d := range dims {
		if d == 0 {
			return 0, 0, fmt.Errorf("dimension %d is zero", i)
		}
		hi, lo := bits.Mul64(elems, d)
		if hi != 0 || lo > maxInt64 {
			return 0, 0, fmt.Errorf("element count of shape %v overflows int64", dims)
		}
		elems = lo
	}
	ne0 := uint64(1)
	if len(dims) > 0 {
		ne0 = dims[0]
	}
	if ne0%tt.BlockSize != 0 {
		return 0, 0, fmt.Errorf("row length %d is not a multiple of %s block size %d", ne0, tt.Name, tt.BlockSize)
	}
	hi, lo := bits.Mul64(elems/tt.BlockSize, tt.TypeSize)
	if hi != 0 || lo > maxInt64 {
		return 0, 0, fmt.Errorf("byte size of shape %v overflows int64", dims)
	}
	return elems, lo, nil
}

const maxInt64 = 1<<63 - 1
