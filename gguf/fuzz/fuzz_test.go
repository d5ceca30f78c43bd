// Package fuzz fuzzes the GGUF reader. It is a package of its own, with no
// dependencies beyond gguf and the standard library, because fuzzing
// instruments every package the test binary links: gguf's own tests bring
// testify and, through it, net/http, which would make each `make test`
// spend a minute of compiling on ten seconds of fuzzing.
package fuzz

import (
	"bytes"
	"errors"
	"testing"

	"github.com/go-sdtp/sdtp/gguf"
)

// FuzzRead: any bytes are read or refused with one of the reader's error
// classes, never a panic; what is accepted is consistent (every tensor's
// data has its size) and its metadata re-encodes and re-reads. The seed
// corpus in testdata/fuzz/FuzzRead holds a file with every value type, one
// with a tensor, nested arrays and an alignment key (written by gguf's
// test helpers); every go test runs it.
func FuzzRead(f *testing.F) {
	f.Add([]byte("GGUF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := gguf.Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, gguf.ErrCorrupt) && !errors.Is(err, gguf.ErrNotGGUF) && !errors.Is(err, gguf.ErrUnsupportedVersion) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		for _, ti := range file.Tensors {
			d, err := file.TensorData(ti.Name)
			if err != nil {
				t.Fatalf("tensor %q: %v", ti.Name, err)
			}
			if uint64(len(d)) != ti.Size {
				t.Fatalf("tensor %q: %d bytes, want %d", ti.Name, len(d), ti.Size)
			}
		}
		mw := gguf.NewWriter()
		mw.KV = file.KV
		if _, err := mw.Alignment(); err != nil {
			t.Fatalf("accepted alignment rejected by writer: %v", err)
		}
		var out bytes.Buffer
		if _, err := mw.WriteTo(&out); err != nil {
			t.Fatalf("re-encoding accepted metadata: %v", err)
		}
		again, err := gguf.Read(bytes.NewReader(out.Bytes()), int64(out.Len()))
		if err != nil {
			t.Fatalf("re-reading: %v", err)
		}
		if len(again.KV) != len(file.KV) {
			t.Fatalf("re-read %d keys, want %d", len(again.KV), len(file.KV))
		}
	})
}
