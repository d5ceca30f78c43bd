package gguf

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// allTypesKV returns metadata exercising every value type, empty values,
// and nested arrays.
func allTypesKV() Metadata {
	var m Metadata
	m.Set("u8", Uint8(200))
	m.Set("i8", Int8(-100))
	m.Set("u16", Uint16(60000))
	m.Set("i16", Int16(-30000))
	m.Set("u32", Uint32(4000000000))
	m.Set("i32", Int32(-2000000000))
	m.Set("f32", Float32(3.25))
	m.Set("bool.t", Bool(true))
	m.Set("bool.f", Bool(false))
	m.Set("str", String("héllo ▁wörld 日本"))
	m.Set("str.empty", String(""))
	m.Set("u64", Uint64(math.MaxUint64))
	m.Set("i64", Int64(math.MinInt64))
	m.Set("f64", Float64(-1e300))
	m.Set("f32.special", Float32(float32(math.Inf(-1))))
	m.Set("arr.u8", Slice([]uint8{0, 1, 255}))
	m.Set("arr.i8", Slice([]int8{-128, 0, 127}))
	m.Set("arr.u16", Slice([]uint16{1, 65535}))
	m.Set("arr.i16", Slice([]int16{-32768, 32767}))
	m.Set("arr.u32", Slice([]uint32{7, 8, 9}))
	m.Set("arr.i32", Slice([]int32{-1, 2, -3}))
	m.Set("arr.f32", Slice([]float32{0.5, -1.5, 1e-30}))
	m.Set("arr.bool", Slice([]bool{true, false, true}))
	m.Set("arr.str", Slice([]string{"a", "", "<0xFF>", "▁the"}))
	m.Set("arr.u64", Slice([]uint64{math.MaxUint64, 0}))
	m.Set("arr.i64", Slice([]int64{math.MinInt64, math.MaxInt64}))
	m.Set("arr.f64", Slice([]float64{math.Pi, -0.0}))
	m.Set("arr.empty", Slice([]int32{}))
	m.Set("arr.empty.str", Slice([]string{}))
	m.Set("arr.nested", ArrayValue(NestedArray(
		NewArray([]int32{1, 2, 3}),
		NewArray([]string{"x", "yz"}),
		NestedArray(NewArray([]float64{1.5}), NestedArray()),
		NewArray([]bool{}),
	)))
	return m
}

func writeBytes(t testing.TB, w *Writer) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := w.WriteTo(&buf)
	require.NoError(t, err)
	require.Equal(t, int64(buf.Len()), n)
	return buf.Bytes()
}

func readBytes(t testing.TB, b []byte) *File {
	t.Helper()
	f, err := Read(bytes.NewReader(b), int64(len(b)))
	require.NoError(t, err)
	return f
}

func TestRoundTripAllValueTypes(t *testing.T) {
	w := NewWriter()
	w.KV = allTypesKV()
	f := readBytes(t, writeBytes(t, w))

	assert.Equal(t, uint32(3), f.Version)
	assert.Equal(t, uint64(DefaultAlignment), f.Alignment)
	assert.Empty(t, f.Tensors)
	require.Equal(t, w.KV.Keys(), f.KV.Keys(), "order must be preserved")
	for _, kv := range w.KV {
		got, ok := f.Get(kv.Key)
		require.True(t, ok, kv.Key)
		assert.Equal(t, kv.Value, got, kv.Key)
	}

	// typed getters
	s, err := f.GetString("str")
	require.NoError(t, err)
	assert.Equal(t, "héllo ▁wörld 日本", s)
	u32, err := f.GetUint32("u32")
	require.NoError(t, err)
	assert.Equal(t, uint32(4000000000), u32)
	f32, err := f.GetFloat32("f32")
	require.NoError(t, err)
	assert.Equal(t, float32(3.25), f32)
	b, err := f.GetBool("bool.t")
	require.NoError(t, err)
	assert.True(t, b)
	strs, err := f.GetStrings("arr.str")
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "", "<0xFF>", "▁the"}, strs)
	fs, err := f.GetFloat32s("arr.f32")
	require.NoError(t, err)
	assert.Equal(t, []float32{0.5, -1.5, 1e-30}, fs)

	nested, err := f.GetArray("arr.nested")
	require.NoError(t, err)
	assert.Equal(t, TypeArray, nested.Type)
	assert.Equal(t, 4, nested.Len())
	inner, err := ArrayAs[string](nested.Values.([]Array)[1])
	require.NoError(t, err)
	assert.Equal(t, []string{"x", "yz"}, inner)
}

func TestGetters(t *testing.T) {
	m := allTypesKV()

	// GetInt accepts every integer type.
	for key, want := range map[string]int64{
		"u8": 200, "i8": -100, "u16": 60000, "i16": -30000, "u32": 4000000000,
		"i32": -2000000000, "i64": math.MinInt64,
	} {
		got, err := m.GetInt(key)
		require.NoError(t, err, key)
		assert.Equal(t, want, got, key)
	}
	_, err := m.GetInt("u64") // MaxUint64 does not fit
	assert.ErrorIs(t, err, ErrTypeMismatch)
	u, err := m.GetUint("u64")
	require.NoError(t, err)
	assert.Equal(t, uint64(math.MaxUint64), u)
	_, err = m.GetUint("i8")
	assert.ErrorIs(t, err, ErrTypeMismatch)
	fl, err := m.GetFloat("f32")
	require.NoError(t, err)
	assert.Equal(t, 3.25, fl)

	ints, err := m.GetInts("arr.i16")
	require.NoError(t, err)
	assert.Equal(t, []int64{-32768, 32767}, ints)
	_, err = m.GetInts("arr.str")
	assert.ErrorIs(t, err, ErrTypeMismatch)

	// wrong types / missing keys
	_, err = m.GetString("u32")
	assert.ErrorIs(t, err, ErrTypeMismatch)
	_, err = m.GetUint32("i32")
	assert.ErrorIs(t, err, ErrTypeMismatch)
	_, err = m.GetInt("str")
	assert.ErrorIs(t, err, ErrTypeMismatch)
	_, err = m.GetArray("str")
	assert.ErrorIs(t, err, ErrTypeMismatch)
	_, err = m.GetStrings("arr.i32")
	assert.ErrorIs(t, err, ErrTypeMismatch)
	_, err = m.GetString("nope")
	assert.ErrorIs(t, err, ErrKeyNotFound)
	_, err = m.GetInt("nope")
	assert.ErrorIs(t, err, ErrKeyNotFound)
	v, err := m.GetIntOr("nope", 42)
	require.NoError(t, err)
	assert.Equal(t, int64(42), v)

	// Set keeps position, Delete removes.
	keys := m.Keys()
	m.Set("u16", String("now a string"))
	assert.Equal(t, keys, m.Keys())
	assert.True(t, m.Delete("u16"))
	assert.False(t, m.Delete("u16"))
	assert.Equal(t, len(keys)-1, len(m))
}

func TestValueOf(t *testing.T) {
	for _, x := range []any{uint8(1), int8(1), uint16(1), int16(1), uint32(1), int32(1), float32(1),
		true, "s", uint64(1), int64(1), float64(1), []string{"a"}, []float32{1}, []bool{true},
		[]Array{NewArray([]int8{1})}} {
		v, err := ValueOf(x)
		require.NoError(t, err, "%T", x)
		assert.True(t, v.Valid())
	}
	_, err := ValueOf(42) // plain int has no GGUF type
	assert.Error(t, err)
	_, err = ValueOf(Array{Type: TypeString, Values: []int32{1}})
	assert.Error(t, err)

	// Invalid values are refused by the writer.
	w := NewWriter()
	w.Set("bad", Value{})
	_, err = w.WriteTo(&bytes.Buffer{})
	assert.Error(t, err)
}

func randBytes(r *rand.Rand, n uint64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

type testTensor struct {
	name string
	typ  GGMLType
	dims []uint64
}

var testTensors = []testTensor{
	{"token_embd.weight", GGMLTypeF32, []uint64{8, 5}},
	{"odd.i8", GGMLTypeI8, []uint64{3}}, // 3 bytes: forces padding
	{"blk.0.attn_q.weight", GGMLTypeF16, []uint64{7, 3}},
	{"q4", GGMLTypeQ4_0, []uint64{64, 2}},
	{"q6k", GGMLTypeQ6_K, []uint64{256}},
	{"bf16.4d", GGMLTypeBF16, []uint64{2, 3, 1, 2}},
}

func buildTestWriter(t testing.TB, align uint32) (*Writer, map[string][]byte) {
	r := rand.New(rand.NewPCG(1, 2))
	w := NewWriter()
	w.KV = allTypesKV()
	if align != 0 {
		w.Set(KeyAlignment, Uint32(align))
	}
	data := map[string][]byte{}
	for _, tt := range testTensors {
		_, n, err := TensorSize(tt.typ, tt.dims)
		require.NoError(t, err)
		data[tt.name] = randBytes(r, n)
		require.NoError(t, w.AddTensor(tt.name, tt.typ, tt.dims, data[tt.name]))
	}
	return w, data
}

func TestAlignmentAndPadding(t *testing.T) {
	for _, align := range []uint32{0, 1, 8, 64, 4096} {
		w, data := buildTestWriter(t, align)
		raw := writeBytes(t, w)
		f := readBytes(t, raw)

		wantAlign := uint64(align)
		if align == 0 {
			wantAlign = DefaultAlignment
		}
		assert.Equal(t, wantAlign, f.Alignment)
		assert.Zero(t, uint64(f.DataOffset)%wantAlign, "data section aligned")
		assert.Zero(t, uint64(len(raw))%wantAlign, "file ends padded")
		require.Len(t, f.Tensors, len(testTensors))

		var next uint64
		for i, ti := range f.Tensors {
			tt := testTensors[i]
			assert.Equal(t, tt.name, ti.Name)
			assert.Equal(t, tt.typ, ti.Type)
			assert.Equal(t, tt.dims, ti.Dims)
			assert.Equal(t, next, ti.Offset, "offsets are contiguous (llama.cpp requires this)")
			assert.Zero(t, ti.Offset%wantAlign)
			got, err := f.TensorData(ti.Name)
			require.NoError(t, err)
			assert.Equal(t, data[ti.Name], got)
			// padding after the tensor is zero
			end := uint64(f.DataOffset) + ti.Offset + ti.Size
			padEnd := alignUp(end, wantAlign)
			assert.Equal(t, make([]byte, padEnd-end), raw[end:padEnd])
			next = alignUp(ti.Offset+ti.Size, wantAlign)
		}
		// The writer's planned layout is what was read back.
		infos, err := w.Tensors()
		require.NoError(t, err)
		assert.Equal(t, f.Tensors, infos)
	}
}

func TestWriterErrors(t *testing.T) {
	w := NewWriter()
	assert.Error(t, w.AddTensor("x", GGMLTypeF32, []uint64{4}, make([]byte, 15)), "wrong data size")
	assert.Error(t, w.AddTensor("x", GGMLTypeQ4_0, []uint64{33}, make([]byte, 100)), "row not multiple of block")
	assert.Error(t, w.AddTensor("x", GGMLType(4), []uint64{1}, make([]byte, 4)), "removed type")
	assert.Error(t, w.AddTensor("x", GGMLTypeF32, []uint64{1, 1, 1, 1, 1}, make([]byte, 4)), "5 dims")
	assert.Error(t, w.AddTensor("x", GGMLTypeF32, []uint64{0}, nil), "zero dim")
	assert.Error(t, w.AddTensor(string(make([]byte, 64)), GGMLTypeF32, []uint64{1}, make([]byte, 4)), "long name")
	require.NoError(t, w.AddTensor("x", GGMLTypeF32, []uint64{1}, make([]byte, 4)))
	assert.Error(t, w.AddTensor("x", GGMLTypeF32, []uint64{1}, make([]byte, 4)), "duplicate")
	assert.ErrorIs(t, w.ReplaceTensor("y", GGMLTypeF32, []uint64{1}, make([]byte, 4)), ErrTensorNotFound)

	w.Set(KeyAlignment, Uint64(32))
	_, err := w.WriteTo(&bytes.Buffer{})
	assert.Error(t, err, "alignment must be uint32")
	w.Set(KeyAlignment, Uint32(48))
	_, err = w.WriteTo(&bytes.Buffer{})
	assert.Error(t, err, "alignment must be a power of two")
	w.Set(KeyAlignment, Uint32(16))
	w.KV = append(w.KV, KV{Key: KeyAlignment, Value: Uint32(16)})
	_, err = w.WriteTo(&bytes.Buffer{})
	assert.Error(t, err, "duplicate key")
}

func TestCopyAndAddTensor(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "model.gguf")
	w, data := buildTestWriter(t, 0)
	require.NoError(t, w.WriteFile(src))

	f, err := Open(src)
	require.NoError(t, err)
	defer f.Close()

	// An unmodified copy is byte-identical.
	orig, err := os.ReadFile(src)
	require.NoError(t, err)
	assert.Equal(t, orig, writeBytes(t, NewWriterFrom(f)))

	// Copy, add a tensor and keys, replace a key.
	cw := NewWriterFrom(f)
	cw.Set("sdtp.head.count", Uint32(2))
	cw.Set("str", String("replaced"))
	head := EncodeF32([]float32{1, 2, 3, 4, 5, 6})
	require.NoError(t, cw.AddTensor("sdtp.head.0.weight", GGMLTypeF32, []uint64{3, 2}, head))
	headF16 := EncodeF16([]float32{0.1, 0.2, 0.3, 0.4})
	require.NoError(t, cw.AddTensorFrom("sdtp.head.1.weight", GGMLTypeF16, []uint64{4}, bytes.NewReader(headF16)))
	dst := filepath.Join(dir, "model+head.gguf")
	require.NoError(t, cw.WriteFile(dst))

	g, err := Open(dst)
	require.NoError(t, err)
	defer g.Close()

	// Original metadata kept in order, values identical except the replaced one.
	require.Equal(t, append(f.KV.Keys(), "sdtp.head.count"), g.KV.Keys())
	for _, kv := range f.KV {
		got, _ := g.Get(kv.Key)
		if kv.Key == "str" {
			assert.Equal(t, String("replaced"), got)
			continue
		}
		assert.Equal(t, kv.Value, got, kv.Key)
	}
	// Original tensors byte-identical, in the same order, new ones appended.
	require.Len(t, g.Tensors, len(f.Tensors)+2)
	for i, ti := range f.Tensors {
		gi := g.Tensors[i]
		assert.Equal(t, ti.Name, gi.Name)
		assert.Equal(t, ti.Type, gi.Type)
		assert.Equal(t, ti.Dims, gi.Dims)
		got, err := g.TensorData(ti.Name)
		require.NoError(t, err)
		assert.Equal(t, data[ti.Name], got, ti.Name)
	}
	got, err := g.TensorData("sdtp.head.0.weight")
	require.NoError(t, err)
	assert.Equal(t, head, got)
	vals, err := g.TensorFloat32s("sdtp.head.1.weight")
	require.NoError(t, err)
	assert.InDeltaSlice(t, []float32{0.1, 0.2, 0.3, 0.4}, vals, 1e-3)

	// Replacing and removing tensors.
	require.NoError(t, cw.ReplaceTensor("odd.i8", GGMLTypeI8, []uint64{5}, []byte{1, 2, 3, 4, 5}))
	assert.True(t, cw.RemoveTensor("q4"))
	assert.False(t, cw.RemoveTensor("q4"))
	h := readBytes(t, writeBytes(t, cw))
	_, ok := h.Tensor("q4")
	assert.False(t, ok)
	d, err := h.TensorData("odd.i8")
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 2, 3, 4, 5}, d)
	d, err = h.TensorData("q6k")
	require.NoError(t, err)
	assert.Equal(t, data["q6k"], d)
	_, err = h.TensorData("q4")
	assert.ErrorIs(t, err, ErrTensorNotFound)

	// Writing over the source file itself works (atomic rename).
	inPlace := NewWriterFrom(f)
	inPlace.Set("extra", Bool(true))
	require.NoError(t, inPlace.WriteFile(src))
	k, err := Open(src)
	require.NoError(t, err)
	defer k.Close()
	b, err := k.GetBool("extra")
	require.NoError(t, err)
	assert.True(t, b)
	d, err = k.TensorData("token_embd.weight")
	require.NoError(t, err)
	assert.Equal(t, data["token_embd.weight"], d)
}

func TestTypeTable(t *testing.T) {
	cases := []struct {
		typ         GGMLType
		name        string
		block, size uint64
	}{
		{GGMLTypeF32, "f32", 1, 4}, {GGMLTypeF16, "f16", 1, 2}, {GGMLTypeBF16, "bf16", 1, 2},
		{GGMLTypeQ4_0, "q4_0", 32, 18}, {GGMLTypeQ4_1, "q4_1", 32, 20}, {GGMLTypeQ5_0, "q5_0", 32, 22},
		{GGMLTypeQ5_1, "q5_1", 32, 24}, {GGMLTypeQ8_0, "q8_0", 32, 34}, {GGMLTypeQ2_K, "q2_K", 256, 84},
		{GGMLTypeQ3_K, "q3_K", 256, 110}, {GGMLTypeQ4_K, "q4_K", 256, 144}, {GGMLTypeQ5_K, "q5_K", 256, 176},
		{GGMLTypeQ6_K, "q6_K", 256, 210}, {GGMLTypeQ8_K, "q8_K", 256, 292}, {GGMLTypeIQ2_XXS, "iq2_xxs", 256, 66},
		{GGMLTypeIQ4_NL, "iq4_nl", 32, 18}, {GGMLTypeIQ4_XS, "iq4_xs", 256, 136}, {GGMLTypeI8, "i8", 1, 1},
		{GGMLTypeI16, "i16", 1, 2}, {GGMLTypeI32, "i32", 1, 4}, {GGMLTypeI64, "i64", 1, 8}, {GGMLTypeF64, "f64", 1, 8},
		{GGMLTypeMXFP4, "mxfp4", 32, 17},
	}
	for _, c := range cases {
		assert.Equal(t, c.name, c.typ.String())
		assert.Equal(t, c.block, c.typ.BlockSize(), c.name)
		assert.Equal(t, c.size, c.typ.TypeSize(), c.name)
		p, err := ParseGGMLType(c.name)
		require.NoError(t, err)
		assert.Equal(t, c.typ, p)
	}
	for _, bad := range []GGMLType{4, 5, 31, 32, 33, 36, 37, 38, 40, 1000} {
		assert.False(t, bad.Valid(), "%d", bad)
	}
	_, n, err := TensorSize(GGMLTypeQ4_K, []uint64{4096, 4096})
	require.NoError(t, err)
	assert.Equal(t, uint64(4096*4096/256*144), n)
	_, _, err = TensorSize(GGMLTypeF32, []uint64{1 << 32, 1 << 32})
	assert.Error(t, err)
}
