package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// Writer assembles a GGUF file from metadata and tensors and writes it in
// GGUF v3 layout: header, metadata (in KV order), tensor infos (in tensor
// order), padding to the alignment, then each tensor's data padded to the
// alignment. Tensor data offsets are therefore contiguous and aligned, which
// is what llama.cpp requires.
//
// The alignment is taken from the general.alignment key (which must be a
// uint32 power of two) or DefaultAlignment when absent.
//
// Tensor data is streamed from its source at write time, so sources must
// remain readable until WriteTo / WriteFile returns.
type Writer struct {
	KV Metadata

	tensors []writerTensor
	index   map[string]int
}

type writerTensor struct {
	info TensorInfo // Offset is filled in by layout
	src  io.ReaderAt
}

// NewWriter returns an empty Writer.
func NewWriter() *Writer {
	return &Writer{index: map[string]int{}}
}

// NewWriterFrom returns a Writer that reproduces f: a deep copy of its
// metadata and all of its tensors, in order, whose data is streamed from f
// when the writer runs (f must stay open until then). Modify the result with
// KV.Set / KV.Delete and the tensor methods to derive a new file.
func NewWriterFrom(f *File) *Writer {
	w := NewWriter()
	w.KV = f.KV.Clone()
	for _, t := range f.Tensors {
		info := t
		info.Dims = append([]uint64(nil), t.Dims...)
		w.index[t.Name] = len(w.tensors)
		w.tensors = append(w.tensors, writerTensor{info: info, src: f.sectionReader(t)})
	}
	return w
}

// Set is shorthand for w.KV.Set.
func (w *Writer) Set(key string, v Value) { w.KV.Set(key, v) }

// Delete is shorthand for w.KV.Delete.
func (w *Writer) Delete(key string) bool { return w.KV.Delete(key) }

func (w *Writer) prepare(name string, typ GGMLType, dims []uint64) (TensorInfo, error) {
	if name == "" {
		return TensorInfo{}, errors.New("gguf: empty tensor name")
	}
	if len(name) >= MaxTensorNameLen {
		return TensorInfo{}, fmt.Errorf("gguf: tensor name %q is %d bytes, max %d", name, len(name), MaxTensorNameLen-1)
	}
	if len(dims) == 0 {
		return TensorInfo{}, fmt.Errorf("gguf: tensor %q has no dimensions", name)
	}
	_, n, err := TensorSize(typ, dims)
	if err != nil {
		return TensorInfo{}, fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	return TensorInfo{Name: name, Type: typ, Dims: append([]uint64(nil), dims...), Size: n}, nil
}

func (w *Writer) put(name string, typ GGMLType, dims []uint64, src io.ReaderAt, dataLen int64, mode int) error {
	info, err := w.prepare(name, typ, dims)
	if err != nil {
		return err
	}
	if dataLen >= 0 && uint64(dataLen) != info.Size {
		return fmt.Errorf("gguf: tensor %q: got %d bytes of data, %s %v needs %d", name, dataLen, typ, dims, info.Size)
	}
	if w.index == nil {
		w.index = map[string]int{}
	}
	i, exists := w.index[name]
	switch {
	case mode == modeAdd && exists:
		return fmt.Errorf("gguf: tensor %q already exists", name)
	case mode == modeReplace && !exists:
		return fmt.Errorf("%w: %q", ErrTensorNotFound, name)
	}
	t := writerTensor{info: info, src: src}
	if exists {
		w.tensors[i] = t
	} else {
		w.index[name] = len(w.tensors)
		w.tensors = append(w.tensors, t)
	}
	return nil
}

const (
	modeAdd = iota
	modeReplace
	modeAddOrReplace
)

// AddTensor appends a tensor. dims are in ggml order (dims[0] innermost);
// len(data) must equal the size implied by typ and dims. data is not copied
// and must not be modified until the file is written. Adding a name that
// already exists is an error.
func (w *Writer) AddTensor(name string, typ GGMLType, dims []uint64, data []byte) error {
	return w.put(name, typ, dims, byteReaderAt(data), int64(len(data)), modeAdd)
}

// AddTensorFrom appends a tensor whose data (exactly the size implied by typ
// and dims, starting at offset 0) is read from src at write time.
func (w *Writer) AddTensorFrom(name string, typ GGMLType, dims []uint64, src io.ReaderAt) error {
	return w.put(name, typ, dims, src, -1, modeAdd)
}

// ReplaceTensor replaces an existing tensor (keeping its position in the
// tensor order); its type and shape may change.
func (w *Writer) ReplaceTensor(name string, typ GGMLType, dims []uint64, data []byte) error {
	return w.put(name, typ, dims, byteReaderAt(data), int64(len(data)), modeReplace)
}

// ReplaceTensorFrom is ReplaceTensor with data streamed from src.
func (w *Writer) ReplaceTensorFrom(name string, typ GGMLType, dims []uint64, src io.ReaderAt) error {
	return w.put(name, typ, dims, src, -1, modeReplace)
}

// SetTensor replaces the tensor if it exists, otherwise appends it.
func (w *Writer) SetTensor(name string, typ GGMLType, dims []uint64, data []byte) error {
	return w.put(name, typ, dims, byteReaderAt(data), int64(len(data)), modeAddOrReplace)
}

// RemoveTensor removes a tensor and reports whether it existed.
func (w *Writer) RemoveTensor(name string) bool {
	i, ok := w.index[name]
	if !ok {
		return false
	}
	w.tensors = append(w.tensors[:i], w.tensors[i+1:]...)
	delete(w.index, name)
	for j := i; j < len(w.tensors); j++ {
		w.index[w.tensors[j].info.Name] = j
	}
	return true
}

// HasTensor reports whether a tensor with this name is present.
func (w *Writer) HasTensor(name string) bool {
	_, ok := w.index[name]
	return ok
}

// Alignment returns the alignment the writer will use, or an error if
// general.alignment is present but not a uint32 power of two.
func (w *Writer) Alignment() (uint64, error) {
	v, ok := w.KV.Get(KeyAlignment)
	if !ok {
		return DefaultAlignment, nil
	}
	a, err := v.AsUint32()
	if err != nil {
		return 0, fmt.Errorf("gguf: %s must be uint32: %w", KeyAlignment, err)
	}
	if a == 0 || a&(a-1) != 0 {
		return 0, fmt.Errorf("gguf: %s = %d is not a power of two", KeyAlignment, a)
	}
	return uint64(a), nil
}

// Tensors returns the tensor infos as they will be written, with offsets.
func (w *Writer) Tensors() ([]TensorInfo, error) {
	align, err := w.Alignment()
	if err != nil {
		return nil, err
	}
	out := make([]TensorInfo, len(w.tensors))
	var off uint64
	for i, t := range w.tensors {
		out[i] = t.info
		out[i].Dims = append([]uint64(nil), t.info.Dims...)
		out[i].Offset = off
		off = alignUp(off+t.info.Size, align)
	}
	return out, nil
}

func (w *Writer) validateKV() error {
	seen := make(map[string]struct{}, len(w.KV))
	for _, kv := range w.KV {
		if kv.Key == "" {
			return errors.New("gguf: empty metadata key")
		}
		if _, dup := seen[kv.Key]; dup {
			return fmt.Errorf("gguf: duplicate metadata key %q", kv.Key)
		}
		seen[kv.Key] = struct{}{}
		if err := kv.Value.validate(); err != nil {
			return fmt.Errorf("gguf: key %q: %w", kv.Key, err)
		}
	}
	return nil
}

// WriteTo writes the file to out. It returns the number of bytes written.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	if err := w.validateKV(); err != nil {
		return 0, err
	}
	infos, err := w.Tensors()
	if err != nil {
		return 0, err
	}
	align, _ := w.Alignment()

	cw := &countingWriter{w: bufio.NewWriterSize(out, 1<<20)}
	e := encoder{w: cw}
	e.raw([]byte(Magic))
	e.u32(Version)
	e.u64(uint64(len(infos)))
	e.u64(uint64(len(w.KV)))
	for _, kv := range w.KV {
		e.str(kv.Key)
		e.value(kv.Value)
	}
	for _, t := range infos {
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(t.Offset)
	}
	e.pad(align)
	if e.err != nil {
		return cw.n, e.err
	}
	dataStart := cw.n
	for i, t := range infos {
		if uint64(cw.n-dataStart) != t.Offset {
			return cw.n, fmt.Errorf("gguf: internal error: tensor %q at %d, want %d", t.Name, cw.n-dataStart, t.Offset)
		}
		n, err := io.Copy(cw, io.NewSectionReader(w.tensors[i].src, 0, int64(t.Size)))
		if err != nil {
			return cw.n, fmt.Errorf("gguf: writing tensor %q: %w", t.Name, err)
		}
		if uint64(n) != t.Size {
			return cw.n, fmt.Errorf("gguf: tensor %q: source provided %d bytes, want %d", t.Name, n, t.Size)
		}
		e.pad(align)
		if e.err != nil {
			return cw.n, e.err
		}
	}
	if err := cw.w.(*bufio.Writer).Flush(); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

// WriteFile writes the file to path atomically (a temporary file in the same
// directory is renamed over path on success), so path may be the file the
// writer's tensors are streamed from.
func (w *Writer) WriteFile(path string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = w.WriteTo(tmp); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

type byteReaderAt []byte

func (b byteReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("gguf: negative offset")
	}
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// encoder writes little-endian GGUF primitives, remembering the first error.
type encoder struct {
	w   *countingWriter
	err error
	buf [8]byte
}

func (e *encoder) raw(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *encoder) u8(v uint8)   { e.buf[0] = v; e.raw(e.buf[:1]) }
func (e *encoder) u16(v uint16) { binary.LittleEndian.PutUint16(e.buf[:], v); e.raw(e.buf[:2]) }
func (e *encoder) u32(v uint32) { binary.LittleEndian.PutUint32(e.buf[:], v); e.raw(e.buf[:4]) }
func (e *encoder) u64(v uint64) { binary.LittleEndian.PutUint64(e.buf[:], v); e.raw(e.buf[:8]) }

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	if e.err == nil {
		_, e.err = io.WriteString(e.w, s)
	}
}

var zeros [256]byte

func (e *encoder) pad(align uint64) {
	for n := alignUp(uint64(e.w.n), align) - uint64(e.w.n); n > 0 && e.err == nil; {
		k := min(n, uint64(len(zeros)))
		e.raw(zeros[:k])
		n -= k
	}
}

func (e *encoder) value(v Value) {
	if a, ok := v.x.(Array); ok {
		e.u32(uint32(TypeArray))
		e.array(a)
		return
	}
	e.u32(uint32(v.typ))
	e.scalar(v.x)
}

func (e *encoder) scalar(x any) {
	switch x := x.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case bool:
		if x {
			e.u8(1)
		} else {
			e.u8(0)
		}
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case string:
		e.str(x)
	}
}

func (e *encoder) array(a Array) {
	e.u32(uint32(a.Type))
	e.u64(uint64(a.Len()))
	switch s := a.Values.(type) {
	case []uint8:
		e.raw(s)
	case []int8:
		encodeAll(e, s)
	case []bool:
		encodeAll(e, s)
	case []uint16:
		encodeAll(e, s)
	case []int16:
		encodeAll(e, s)
	case []uint32:
		encodeAll(e, s)
	case []int32:
		encodeAll(e, s)
	case []float32:
		encodeAll(e, s)
	case []uint64:
		encodeAll(e, s)
	case []int64:
		encodeAll(e, s)
	case []float64:
		encodeAll(e, s)
	case []string:
		for _, v := range s {
			e.str(v)
		}
	case []Array:
		for _, v := range s {
			e.array(v)
		}
	}
}

func encodeAll[T Elem](e *encoder, s []T) {
	for _, v := range s {
		e.scalar(v)
	}
}
