package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// raw builds GGUF bytes by hand so that tests can produce invalid files.
type raw struct{ bytes.Buffer }

func (r *raw) u32(v uint32) *raw { binary.Write(&r.Buffer, binary.LittleEndian, v); return r }
func (r *raw) u64(v uint64) *raw { binary.Write(&r.Buffer, binary.LittleEndian, v); return r }
func (r *raw) str(s string) *raw { r.u64(uint64(len(s))); r.WriteString(s); return r }
func (r *raw) header(version uint32, nTensors, nKV uint64) *raw {
	r.WriteString("GGUF")
	return r.u32(version).u64(nTensors).u64(nKV)
}
func (r *raw) kvU32(key string, v uint32) *raw { return r.str(key).u32(uint32(TypeUint32)).u32(v) }
func (r *raw) tensor(name string, typ GGMLType, off uint64, dims ...uint64) *raw {
	r.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		r.u64(d)
	}
	return r.u32(uint32(typ)).u64(off)
}
func (r *raw) padTo(a int) *raw {
	for r.Len()%a != 0 {
		r.WriteByte(0)
	}
	return r
}
func (r *raw) zeros(n int) *raw { r.Write(make([]byte, n)); return r }

// oneTensor returns a valid file with one key and one 4-float tensor, with
// hooks to corrupt individual fields.
func oneTensor(mod func(name *string, typ *GGMLType, off *uint64, dims *[]uint64, dataLen *int)) []byte {
	name, typ, off, dims, dataLen := "w", GGMLTypeF32, uint64(0), []uint64{4}, 16
	if mod != nil {
		mod(&name, &typ, &off, &dims, &dataLen)
	}
	r := new(raw).header(3, 1, 1).kvU32("k", 1).tensor(name, typ, off, dims...)
	return r.padTo(32).zeros(dataLen).Bytes()
}

func TestReadValidHandBuilt(t *testing.T) {
	b := oneTensor(nil)
	f := readBytes(t, b)
	require.Len(t, f.Tensors, 1)
	assert.Equal(t, uint64(16), f.Tensors[0].Size)
	// Version 2 has the same layout and is accepted.
	binary.LittleEndian.PutUint32(b[4:], 2)
	_ = readBytes(t, b)
	// A file with no tensors may end right after the metadata.
	_ = readBytes(t, new(raw).header(3, 0, 1).kvU32("k", 1).Bytes())
}

func TestReadCorrupt(t *testing.T) {
	valid := func() []byte {
		w, _ := buildTestWriter(t, 0)
		var buf bytes.Buffer
		_, err := w.WriteTo(&buf)
		require.NoError(t, err)
		return buf.Bytes()
	}()
	patch := func(off int, v uint64, size int) []byte {
		b := bytes.Clone(valid)
		if size == 4 {
			binary.LittleEndian.PutUint32(b[off:], uint32(v))
		} else {
			binary.LittleEndian.PutUint64(b[off:], v)
		}
		return b
	}
	huge := uint64(1) << 62

	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNotGGUF},
		{"3 bytes", []byte("GGU"), ErrNotGGUF},
		{"bad magic", append([]byte("GGML"), valid[4:]...), ErrNotGGUF},
		{"zero magic", make([]byte, 64), ErrNotGGUF},
		{"version 0", patch(4, 0, 4), ErrUnsupportedVersion},
		{"version 1", patch(4, 1, 4), ErrUnsupportedVersion},
		{"version 4", patch(4, 4, 4), ErrUnsupportedVersion},
		{"big-endian version", patch(4, 0x03000000, 4), ErrUnsupportedVersion},
		{"only magic+version", valid[:8], ErrCorrupt},
		{"absurd tensor count", patch(8, huge, 8), ErrCorrupt},
		{"tensor count max", patch(8, ^uint64(0), 8), ErrCorrupt},
		{"absurd kv count", patch(16, huge, 8), ErrCorrupt},
		{"kv count max", patch(16, ^uint64(0), 8), ErrCorrupt},
		{"kv count too high by one", patch(16, uint64(len(allTypesKV())+1), 8), ErrCorrupt},
		{"absurd key length", patch(24, huge, 8), ErrCorrupt},
		{"key length past EOF", patch(24, uint64(len(valid)), 8), ErrCorrupt},
		{"empty key", new(raw).header(3, 0, 1).str("").u32(uint32(TypeUint8)).zeros(1).Bytes(), ErrCorrupt},
		{"duplicate key", new(raw).header(3, 0, 2).kvU32("a", 1).kvU32("a", 2).Bytes(), ErrCorrupt},
		{"invalid value type", new(raw).header(3, 0, 1).str("a").u32(13).zeros(8).Bytes(), ErrCorrupt},
		{"invalid value type 99", new(raw).header(3, 0, 1).str("a").u32(99).zeros(8).Bytes(), ErrCorrupt},
		{"absurd string length", new(raw).header(3, 0, 1).str("a").u32(uint32(TypeString)).u64(huge).zeros(8).Bytes(), ErrCorrupt},
		{"string past EOF", new(raw).header(3, 0, 1).str("a").u32(uint32(TypeString)).u64(9).WriteString8("abcdefgh"), ErrCorrupt},
		{"absurd array length", new(raw).header(3, 0, 1).str("a").u32(uint32(TypeArray)).u32(uint32(TypeUint8)).u64(huge).zeros(8).Bytes(), ErrCorrupt},
		{"absurd string array", new(raw).header(3, 0, 1).str("a").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(1 << 40).zeros(64).Bytes(), ErrCorrupt},
		{"absurd nested array", new(raw).header(3, 0, 1).str("a").u32(uint32(TypeArray)).u32(uint32(TypeArray)).u64(1 << 40).zeros(64).Bytes(), ErrCorrupt},
		{"array of float64 one short", new(raw).header(3, 0, 1).str("a").u32(uint32(TypeArray)).u32(uint32(TypeFloat64)).u64(3).zeros(23).Bytes(), ErrCorrupt},
		{"invalid array element type", new(raw).header(3, 0, 1).str("a").u32(uint32(TypeArray)).u32(13).u64(1).zeros(8).Bytes(), ErrCorrupt},
		{"arrays nested too deep", deepArray(maxArrayDepth + 2), ErrCorrupt},
		{"alignment not power of two", new(raw).header(3, 0, 1).kvU32(KeyAlignment, 48).Bytes(), ErrCorrupt},
		{"alignment zero", new(raw).header(3, 0, 1).kvU32(KeyAlignment, 0).Bytes(), ErrCorrupt},
		{"alignment wrong type", new(raw).header(3, 0, 1).str(KeyAlignment).u32(uint32(TypeUint64)).u64(32).Bytes(), ErrCorrupt},
		{"tensor name too long", oneTensor(func(n *string, _ *GGMLType, _ *uint64, _ *[]uint64, _ *int) { *n = strings.Repeat("x", 65) }), ErrCorrupt},
		{"5 dims", oneTensor(func(_ *string, _ *GGMLType, _ *uint64, d *[]uint64, _ *int) { *d = []uint64{4, 1, 1, 1, 1} }), ErrCorrupt},
		{"zero dim", oneTensor(func(_ *string, _ *GGMLType, _ *uint64, d *[]uint64, _ *int) { *d = []uint64{4, 0} }), ErrCorrupt},
		{"dims overflow", oneTensor(func(_ *string, _ *GGMLType, _ *uint64, d *[]uint64, _ *int) { *d = []uint64{1 << 40, 1 << 40} }), ErrCorrupt},
		{"dims overflow uint64", oneTensor(func(_ *string, _ *GGMLType, _ *uint64, d *[]uint64, _ *int) { *d = []uint64{^uint64(0), 2} }), ErrCorrupt},
		{"bytes overflow", oneTensor(func(_ *string, _ *GGMLType, _ *uint64, d *[]uint64, _ *int) { *d = []uint64{1 << 62} }), ErrCorrupt},
		{"unknown ggml type", oneTensor(func(_ *string, ty *GGMLType, _ *uint64, _ *[]uint64, _ *int) { *ty = 100 }), ErrCorrupt},
		{"removed ggml type", oneTensor(func(_ *string, ty *GGMLType, _ *uint64, _ *[]uint64, _ *int) { *ty = 4 }), ErrCorrupt},
		{"row not multiple of block", oneTensor(func(_ *string, ty *GGMLType, _ *uint64, _ *[]uint64, _ *int) { *ty = GGMLTypeQ4_0 }), ErrCorrupt},
		{"misaligned offset", oneTensor(func(_ *string, _ *GGMLType, o *uint64, _ *[]uint64, n *int) { *o = 4; *n = 64 }), ErrCorrupt},
		{"offset out of bounds", oneTensor(func(_ *string, _ *GGMLType, o *uint64, _ *[]uint64, _ *int) { *o = 32 }), ErrCorrupt},
		{"offset huge", oneTensor(func(_ *string, _ *GGMLType, o *uint64, _ *[]uint64, _ *int) { *o = ^uint64(0) &^ 31 }), ErrCorrupt},
		{"data truncated", oneTensor(func(_ *string, _ *GGMLType, _ *uint64, _ *[]uint64, n *int) { *n = 15 }), ErrCorrupt},
		{"no data section", oneTensor(func(_ *string, _ *GGMLType, _ *uint64, _ *[]uint64, n *int) { *n = 0 }), ErrCorrupt},
		{"duplicate tensor", new(raw).header(3, 2, 0).tensor("w", GGMLTypeF32, 0, 4).tensor("w", GGMLTypeF32, 32, 4).padTo(32).zeros(64).Bytes(), ErrCorrupt},
		{"overlapping tensors", new(raw).header(3, 2, 0).tensor("a", GGMLTypeF32, 0, 16).tensor("b", GGMLTypeF32, 32, 4).padTo(32).zeros(64).Bytes(), ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Read(bytes.NewReader(c.data), int64(len(c.data)))
			require.Error(t, err)
			assert.Nil(t, f)
			assert.ErrorIs(t, err, c.want, "error: %v", err)
		})
	}

	// Truncating a valid file anywhere before the end of the last tensor's
	// data must fail (the padding after the last tensor is optional).
	f := readBytes(t, valid)
	last := f.Tensors[len(f.Tensors)-1]
	end := int(f.DataOffset) + int(last.Offset+last.Size)
	for n := 0; n < end; n++ {
		_, err := Read(bytes.NewReader(valid[:n]), int64(n))
		require.Error(t, err, "truncated to %d bytes", n)
		require.True(t, errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotGGUF), "truncated to %d: %v", n, err)
	}
	_ = readBytes(t, valid[:end])
}

// WriteString8 finishes a raw buffer with a string and returns the bytes.
func (r *raw) WriteString8(s string) []byte { r.WriteString(s); return r.Bytes() }

// deepArray builds a key whose value is an array nested depth levels deep.
func deepArray(depth int) []byte {
	r := new(raw).header(3, 0, 1).str("deep").u32(uint32(TypeArray))
	for i := 0; i < depth; i++ {
		r.u32(uint32(TypeArray)).u64(1)
	}
	r.u32(uint32(TypeUint8)).u64(0)
	return r.Bytes()
}

func TestDeepButAllowedNesting(t *testing.T) {
	b := deepArray(maxArrayDepth - 2)
	f := readBytes(t, b)
	v, ok := f.Get("deep")
	require.True(t, ok)
	assert.Equal(t, TypeArray, v.Type())
	// Re-encoding reproduces the input (plus the zero padding the writer
	// always adds before the data section).
	w := NewWriter()
	w.KV = f.KV
	out := writeBytes(t, w)
	require.GreaterOrEqual(t, len(out), len(b))
	assert.Equal(t, b, out[:len(b)])
	assert.Equal(t, make([]byte, len(out)-len(b)), out[len(b):])
}

// shortReader claims a size but has fewer bytes: reads must fail cleanly.
func TestReaderShorterThanSize(t *testing.T) {
	b := oneTensor(nil)
	_, err := Read(bytes.NewReader(b[:40]), int64(len(b)))
	assert.ErrorIs(t, err, ErrCorrupt)
}
