package bridge

// #include <stdbool.h>
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// goProgress forwards llama.cpp's load progress to the Go callback whose
// cgo.Handle is stored at handle; returning false aborts the load.
//
//export goProgress
func goProgress(progress C.float, handle unsafe.Pointer) C.bool {
	fn := (*(*cgo.Handle)(handle)).Value().(func(float32) bool)
	return C.bool(fn(float32(progress)))
}
