package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// Minimum encoded sizes used to bound counts read from the header.
const (
	minKVSize         = 8 + 4 + 1     // key length, type, 1-byte value
	minTensorInfoSize = 8 + 4 + 4 + 8 // name length, n_dims, type, offset
)

// Read parses a GGUF file of the given size from r. Only the header,
// metadata and tensor infos are read; tensor data is accessed lazily through
// r, which must stay valid while the File is used.
func Read(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("gguf: negative size %d", size)
	}
	p := &parser{
		br:   bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 64<<10),
		size: size,
	}
	f, err := p.parse()
	if err != nil {
		return nil, err
	}
	f.r = r
	f.Size = size
	return f, nil
}

type parser struct {
	br   *bufio.Reader
	pos  int64
	size int64
	tmp  [8]byte
}

func (p *parser) remaining() int64 { return p.size - p.pos }

func (p *parser) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: at offset %d: %s", ErrCorrupt, p.pos, fmt.Sprintf(format, args...))
}

// fill reads exactly len(b) bytes. The caller must have checked that they
// are within the file, so any EOF means the reader is shorter than size.
func (p *parser) fill(b []byte, what string) error {
	if int64(len(b)) > p.remaining() {
		return p.corrupt("truncated: %s needs %d bytes, %d left", what, len(b), p.remaining())
	}
	n, err := io.ReadFull(p.br, b)
	p.pos += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return p.corrupt("unexpected end of data reading %s", what)
		}
		return fmt.Errorf("gguf: reading %s at offset %d: %w", what, p.pos, err)
	}
	return nil
}

func (p *parser) u32(what string) (uint32, error) {
	if err := p.fill(p.tmp[:4], what); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p.tmp[:4]), nil
}

func (p *parser) u64(what string) (uint64, error) {
	if err := p.fill(p.tmp[:8], what); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(p.tmp[:8]), nil
}

// str reads a length-prefixed string of at most maxLen bytes (maxLen < 0:
// bounded only by the file).
func (p *parser) str(what string, maxLen int64) (string, error) {
	n, err := p.u64(what)
	if err != nil {
		return "", err
	}
	if maxLen >= 0 && n > uint64(maxLen) {
		return "", p.corrupt("%s length %d exceeds limit %d", what, n, maxLen)
	}
	if n > uint64(p.remaining()) {
		return "", p.corrupt("%s length %d exceeds the %d bytes left in the file", what, n, p.remaining())
	}
	if n == 0 {
		return "", nil
	}
	b := make([]byte, n)
	if err := p.fill(b, what); err != nil {
		return "", err
	}
	return string(b), nil
}

func (p *parser) parse() (*File, error) {
	// magic
	if p.size < 4 {
		if p.size == 0 {
			return nil, fmt.Errorf("%w: empty file", ErrNotGGUF)
		}
		return nil, fmt.Errorf("%w: file too short (%d bytes)", ErrNotGGUF, p.size)
	}
	var magic [4]byte
	if err := p.fill(magic[:], "magic"); err != nil {
		return nil, err
	}
	if string(magic[:]) != Magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrNotGGUF, magic[:])
	}

	// header
	version, err := p.u32("version")
	if err != nil {
		return nil, err
	}
	switch {
	case version != 0 && version&0xFFFF == 0:
		return nil, fmt.Errorf("%w: version field 0x%08x looks byte-swapped (big-endian files are not supported)", ErrUnsupportedVersion, version)
	case version < 2 || version > Version:
		return nil, fmt.Errorf("%w: version %d (supported: 2, 3)", ErrUnsupportedVersion, version)
	}
	nTensors, err := p.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nKV, err := p.u64("metadata count")
	if err != nil {
		return nil, err
	}
	rem := uint64(p.remaining())
	if nTensors > rem/minTensorInfoSize {
		return nil, p.corrupt("tensor count %d cannot fit in the %d bytes left", nTensors, rem)
	}
	if nKV > rem/minKVSize || nTensors*minTensorInfoSize+nKV*minKVSize > rem {
		return nil, p.corrupt("metadata count %d (with %d tensors) cannot fit in the %d bytes left", nKV, nTensors, rem)
	}

	f := &File{Version: version, Alignment: DefaultAlignment}

	// metadata
	f.KV = make(Metadata, 0, initialCap(nKV))
	seen := make(map[string]struct{}, initialCap(nKV))
	for i := uint64(0); i < nKV; i++ {
		key, err := p.str(fmt.Sprintf("key of metadata entry %d", i), -1)
		if err != nil {
			return nil, err
		}
		if key == "" {
			return nil, p.corrupt("metadata entry %d has an empty key", i)
		}
		if _, dup := seen[key]; dup {
			return nil, p.corrupt("duplicate metadata key %q", key)
		}
		seen[key] = struct{}{}
		t, err := p.u32(fmt.Sprintf("type of key %q", key))
		if err != nil {
			return nil, err
		}
		v, err := p.value(ValueType(t), key, 0)
		if err != nil {
			return nil, err
		}
		f.KV = append(f.KV, KV{Key: key, Value: v})
	}

	if v, ok := f.KV.Get(KeyAlignment); ok {
		a, err := v.AsUint32()
		if err != nil {
			return nil, fmt.Errorf("%w: %s must be uint32: %v", ErrCorrupt, KeyAlignment, err)
		}
		if a == 0 || a&(a-1) != 0 {
			return nil, fmt.Errorf("%w: %s = %d is not a power of two", ErrCorrupt, KeyAlignment, a)
		}
		f.Alignment = uint64(a)
	}

	// tensor infos
	f.Tensors = make([]TensorInfo, 0, initialCap(nTensors))
	f.index = make(map[string]int, initialCap(nTensors))
	for i := uint64(0); i < nTensors; i++ {
		t, err := p.tensorInfo(i)
		if err != nil {
			return nil, err
		}
		if _, dup := f.index[t.Name]; dup {
			return nil, p.corrupt("duplicate tensor name %q", t.Name)
		}
		f.index[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}

	// data section
	dataOff := alignUp(uint64(p.pos), f.Alignment)
	f.DataOffset = int64(dataOff)
	if len(f.Tensors) > 0 && dataOff > uint64(p.size) {
		return nil, fmt.Errorf("%w: data section starts at %d, beyond the end of the file (%d bytes)", ErrCorrupt, dataOff, p.size)
	}
	var dataSize uint64
	if dataOff < uint64(p.size) {
		dataSize = uint64(p.size) - dataOff
	}
	for _, t := range f.Tensors {
		if t.Offset%f.Alignment != 0 {
			return nil, fmt.Errorf("%w: tensor %q offset %d is not a multiple of the alignment %d", ErrCorrupt, t.Name, t.Offset, f.Alignment)
		}
		if t.Offset > dataSize || t.Size > dataSize-t.Offset {
			return nil, fmt.Errorf("%w: tensor %q data [%d, +%d) is outside the %d-byte data section", ErrCorrupt, t.Name, t.Offset, t.Size, dataSize)
		}
	}
	// tensors must not overlap
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		oa, ob := f.Tensors[a].Offset, f.Tensors[b].Offset
		switch {
		case oa < ob:
			return -1
		case oa > ob:
			return 1
		}
		return 0
	})
	for k := 1; k < len(order); k++ {
		prev, cur := f.Tensors[order[k-1]], f.Tensors[order[k]]
		if prev.Offset+prev.Size > cur.Offset {
			return nil, fmt.Errorf("%w: tensors %q and %q overlap", ErrCorrupt, prev.Name, cur.Name)
		}
	}
	return f, nil
}

func (p *parser) tensorInfo(i uint64) (TensorInfo, error) {
	name, err := p.str(fmt.Sprintf("name of tensor %d", i), MaxTensorNameLen)
	if err != nil {
		return TensorInfo{}, err
	}
	nDims, err := p.u32(fmt.Sprintf("n_dims of tensor %q", name))
	if err != nil {
		return TensorInfo{}, err
	}
	if nDims > MaxDims {
		return TensorInfo{}, p.corrupt("tensor %q has %d dimensions, max %d", name, nDims, MaxDims)
	}
	dims := make([]uint64, nDims)
	for j := range dims {
		if dims[j], err = p.u64(fmt.Sprintf("dimension %d of tensor %q", j, name)); err != nil {
			return TensorInfo{}, err
		}
	}
	typ, err := p.u32(fmt.Sprintf("type of tensor %q", name))
	if err != nil {
		return TensorInfo{}, err
	}
	_, nbytes, err := TensorSize(GGMLType(typ), dims)
	if err != nil {
		return TensorInfo{}, p.corrupt("tensor %q: %v", name, err)
	}
	off, err := p.u64(fmt.Sprintf("offset of tensor %q", name))
	if err != nil {
		return TensorInfo{}, err
	}
	return TensorInfo{Name: name, Type: GGMLType(typ), Dims: dims, Offset: off, Size: nbytes}, nil
}

// value reads one value of type t (for arrays: the element type and count
// follow). depth counts array nesting.
func (p *parser) value(t ValueType, key string, depth int) (Value, error) {
	switch t {
	case TypeArray:
		a, err := p.array(key, depth+1)
		if err != nil {
			return Value{}, err
		}
		return ArrayValue(a), nil
	case TypeString:
		s, err := p.str(fmt.Sprintf("string value of key %q", key), -1)
		if err != nil {
			return Value{}, err
		}
		return String(s), nil
	}
	size := t.fixedSize()
	if size == 0 {
		return Value{}, p.corrupt("key %q has invalid value type %d", key, uint32(t))
	}
	b := p.tmp[:size]
	if err := p.fill(b, fmt.Sprintf("value of key %q", key)); err != nil {
		return Value{}, err
	}
	le := binary.LittleEndian
	switch t {
	case TypeUint8:
		return Uint8(b[0]), nil
	case TypeInt8:
		return Int8(int8(b[0])), nil
	case TypeBool:
		return Bool(b[0] != 0), nil
	case TypeUint16:
		return Uint16(le.Uint16(b)), nil
	case TypeInt16:
		return Int16(int16(le.Uint16(b))), nil
	case TypeUint32:
		return Uint32(le.Uint32(b)), nil
	case TypeInt32:
		return Int32(int32(le.Uint32(b))), nil
	case TypeFloat32:
		return Float32(math.Float32frombits(le.Uint32(b))), nil
	case TypeUint64:
		return Uint64(le.Uint64(b)), nil
	case TypeInt64:
		return Int64(int64(le.Uint64(b))), nil
	default: // TypeFloat64
		return Float64(math.Float64frombits(le.Uint64(b))), nil
	}
}

func (p *parser) array(key string, depth int) (Array, error) {
	if depth > maxArrayDepth {
		return Array{}, p.corrupt("key %q: arrays nested deeper than %d", key, maxArrayDepth)
	}
	et, err := p.u32(fmt.Sprintf("array element type of key %q", key))
	if err != nil {
		return Array{}, err
	}
	elem := ValueType(et)
	if !elem.Valid() {
		return Array{}, p.corrupt("key %q: invalid array element type %d", key, et)
	}
	n, err := p.u64(fmt.Sprintf("array length of key %q", key))
	if err != nil {
		return Array{}, err
	}
	minSize := uint64(elem.minEncodedSize())
	if n > uint64(p.remaining())/minSize {
		return Array{}, p.corrupt("key %q: array of %d %s elements cannot fit in the %d bytes left", key, n, elem, p.remaining())
	}
	what := fmt.Sprintf("array elements of key %q", key)

	switch elem {
	case TypeString:
		s := make([]string, 0, initialCap(n))
		for i := uint64(0); i < n; i++ {
			e, err := p.str(what, -1)
			if err != nil {
				return Array{}, err
			}
			s = append(s, e)
		}
		return Array{elem, s}, nil
	case TypeArray:
		s := make([]Array, 0, initialCap(n))
		for i := uint64(0); i < n; i++ {
			e, err := p.array(key, depth+1)
			if err != nil {
				return Array{}, err
			}
			s = append(s, e)
		}
		return Array{elem, s}, nil
	}

	le := binary.LittleEndian
	switch elem {
	case TypeUint8:
		return fixedArray(p, elem, n, 1, what, func(b []byte) uint8 { return b[0] })
	case TypeInt8:
		return fixedArray(p, elem, n, 1, what, func(b []byte) int8 { return int8(b[0]) })
	case TypeBool:
		return fixedArray(p, elem, n, 1, what, func(b []byte) bool { return b[0] != 0 })
	case TypeUint16:
		return fixedArray(p, elem, n, 2, what, le.Uint16)
	case TypeInt16:
		return fixedArray(p, elem, n, 2, what, func(b []byte) int16 { return int16(le.Uint16(b)) })
	case TypeUint32:
		return fixedArray(p, elem, n, 4, what, le.Uint32)
	case TypeInt32:
		return fixedArray(p, elem, n, 4, what, func(b []byte) int32 { return int32(le.Uint32(b)) })
	case TypeFloat32:
		return fixedArray(p, elem, n, 4, what, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) })
	case TypeUint64:
		return fixedArray(p, elem, n, 8, what, le.Uint64)
	case TypeInt64:
		return fixedArray(p, elem, n, 8, what, func(b []byte) int64 { return int64(le.Uint64(b)) })
	default: // TypeFloat64
		return fixedArray(p, elem, n, 8, what, func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) })
	}
}

// initialCap bounds slice preallocation from an untrusted count: memory then
// grows only with data that was actually read.
func initialCap(n uint64) int {
	const maxPrealloc = 1 << 16
	if n > maxPrealloc {
		return maxPrealloc
	}
	return int(n)
}

// fixedArray reads n fixed-size elements in bounded chunks.
func fixedArray[T any](p *parser, elem ValueType, n uint64, size int, what string, dec func([]byte) T) (Array, error) {
	const chunk = 64 << 10
	out := make([]T, 0, initialCap(n))
	buf := make([]byte, min(uint64(chunk), n*uint64(size)))
	for left := n; left > 0; {
		k := min(left, uint64(chunk/size))
		b := buf[:k*uint64(size)]
		if err := p.fill(b, what); err != nil {
			return Array{}, err
		}
		for i := 0; i < len(b); i += size {
			out = append(out, dec(b[i:i+size]))
		}
		left -= k
	}
	return Array{elem, out}, nil
}
