// Package gguf reads and writes GGUF files (the llama.cpp / ggml model
// format, versions 2 and 3, little-endian).
//
// Reading is strict and bounded: every count and length read from a file is
// checked against the bytes that remain before anything is allocated, so a
// corrupt or hostile file produces an error wrapping ErrNotGGUF or ErrCorrupt
// instead of a panic or a huge allocation. Tensor data is not read by Open /
// Read; it is fetched on demand with File.TensorData or File.TensorReader.
//
// Writing (Writer) streams tensor data from its sources, so a multi-GB model
// can be copied with extra metadata or tensors without loading it in memory.
package gguf

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Sentinel errors. Errors returned by this package wrap them, so test with
// errors.Is.
var (
	// ErrNotGGUF: the input does not start with the GGUF magic.
	ErrNotGGUF = errors.New("gguf: not a GGUF file")
	// ErrUnsupportedVersion: a GGUF version this package cannot read
	// (v1, big-endian files, or versions newer than 3).
	ErrUnsupportedVersion = errors.New("gguf: unsupported GGUF version")
	// ErrCorrupt: the file is structurally invalid or truncated.
	ErrCorrupt = errors.New("gguf: corrupt file")
	// ErrKeyNotFound: a metadata key is absent.
	ErrKeyNotFound = errors.New("gguf: key not found")
	// ErrTypeMismatch: a metadata value has a different type than requested.
	ErrTypeMismatch = errors.New("gguf: type mismatch")
	// ErrTensorNotFound: no tensor with that name.
	ErrTensorNotFound = errors.New("gguf: tensor not found")
)

// Magic is the 4-byte file signature.
const Magic = "GGUF"

// Version is the GGUF version written by this package.
const Version = 3

// DefaultAlignment is the data alignment used when general.alignment is absent.
const DefaultAlignment = 32

// Well-known keys.
const (
	KeyAlignment    = "general.alignment"
	KeyArchitecture = "general.architecture"
	KeyName         = "general.name"
	KeyFileType     = "general.file_type"
)

// MaxTensorNameLen is the longest tensor name accepted when reading (the
// GGUF specification's limit). Writer is stricter and rejects names longer
// than MaxTensorNameLen-1 bytes, because ggml stores names NUL-terminated in
// a 64-byte buffer and llama.cpp refuses longer ones.
const MaxTensorNameLen = 64

// maxArrayDepth bounds the nesting of arrays (the format allows nesting;
// real files use at most one level).
const maxArrayDepth = 64

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name string
	Type GGMLType
	// Dims are the dimensions in ggml order: Dims[0] is the innermost
	// (contiguous) one, i.e. a [rows x cols] weight matrix has
	// Dims = {cols, rows}.
	Dims []uint64
	// Offset is the offset of the tensor data relative to the start of the
	// data section (File.DataOffset). It is a multiple of the alignment.
	Offset uint64
	// Size is the size of the tensor data in bytes (computed from Type and Dims).
	Size uint64
}

// NumElements returns the product of the dimensions.
func (t TensorInfo) NumElements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// File is a parsed GGUF file. Metadata and tensor infos are in memory; tensor
// data is read lazily from the underlying io.ReaderAt.
type File struct {
	Version   uint32
	Alignment uint64
	KV        Metadata
	Tensors   []TensorInfo
	// DataOffset is the absolute file offset of the data section.
	DataOffset int64
	// Size is the total size of the file in bytes.
	Size int64

	r      io.ReaderAt
	closer io.Closer
	index  map[string]int
}

// Open opens and parses the GGUF file at path. The file stays open for lazy
// tensor data access until Close is called.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	f, err := Read(fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.closer = fh
	return f, nil
}

// Close closes the underlying file if the File was created by Open.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer = nil
	return err
}

// Get, GetString, ... are shorthands for the same methods on f.KV.
func (f *File) Get(key string) (Value, bool)              { return f.KV.Get(key) }
func (f *File) GetString(key string) (string, error)      { return f.KV.GetString(key) }
func (f *File) GetUint32(key string) (uint32, error)      { return f.KV.GetUint32(key) }
func (f *File) GetUint64(key string) (uint64, error)      { return f.KV.GetUint64(key) }
func (f *File) GetInt(key string) (int64, error)          { return f.KV.GetInt(key) }
func (f *File) GetUint(key string) (uint64, error)        { return f.KV.GetUint(key) }
func (f *File) GetFloat32(key string) (float32, error)    { return f.KV.GetFloat32(key) }
func (f *File) GetFloat(key string) (float64, error)      { return f.KV.GetFloat(key) }
func (f *File) GetBool(key string) (bool, error)          { return f.KV.GetBool(key) }
func (f *File) GetArray(key string) (Array, error)        { return f.KV.GetArray(key) }
func (f *File) GetStrings(key string) ([]string, error)   { return f.KV.GetStrings(key) }
func (f *File) GetFloat32s(key string) ([]float32, error) { return f.KV.GetFloat32s(key) }
func (f *File) GetInt32s(key string) ([]int32, error)     { return f.KV.GetInt32s(key) }
func (f *File) GetInts(key string) ([]int64, error)       { return f.KV.GetInts(key) }
func (f *File) Architecture() (string, error)             { return f.KV.Architecture() }

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// TensorReader returns a reader over the named tensor's data.
func (f *File) TensorReader(name string) (*io.SectionReader, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrTensorNotFound, name)
	}
	return f.sectionReader(t), nil
}

func (f *File) sectionReader(t TensorInfo) *io.SectionReader {
	return io.NewSectionReader(f.r, f.DataOffset+int64(t.Offset), int64(t.Size))
}

// TensorData reads the named tensor's data into memory.
func (f *File) TensorData(name string) ([]byte, error) {
	sr, err := f.TensorReader(name)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, sr.Size())
	if _, err := io.ReadFull(sr, buf); err != nil {
		return nil, fmt.Errorf("gguf: reading tensor %q: %w", name, err)
	}
	return buf, nil
}

// TensorFloat32s returns the named tensor's data converted to float32. It
// supports F32, F16, BF16 and Q8_0 tensors.
func (f *File) TensorFloat32s(name string) ([]float32, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrTensorNotFound, name)
	}
	data, err := f.TensorData(name)
	if err != nil {
		return nil, err
	}
	switch t.Type {
	case GGMLTypeF32:
		return DecodeF32(data), nil
	case GGMLTypeF16:
		return DecodeF16(data), nil
	case GGMLTypeBF16:
		return DecodeBF16(data), nil
	case GGMLTypeQ8_0:
		return DecodeQ8_0(data), nil
	}
	return nil, fmt.Errorf("gguf: tensor %q has type %s, cannot convert to float32", name, t.Type)
}

func alignUp(x, a uint64) uint64 {
	return (x + a - 1) / a * a
}
